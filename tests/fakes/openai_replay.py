"""A local OpenAI-compatible server (chat and text completions) that replays scripted responses.

litellm's real client talks to it over loopback (model "openai/<name>", api_base=server.url), so tests run
the real request/response path. Scripting, first match wins:

1. the FIFO queue (``server.enqueue(reply, ...)``): one reply per request, consumed in order;
2. rules (``server.on("substring of the last user message", reply_or_list)``): a list is played in order and
   its last element then repeats — ``[Reply.status(429), Reply.text("ok")]`` is "429 once, then success";
3. the responder (``server.responder = fn``): a function of the request that returns a Reply, or None to pass
   (a deterministic stand-in model whose answer depends on the prompt, for contract tests);
4. the default reply (``server.default = Reply.text(...)``);
otherwise the server answers 400 "no scripted reply" (not retried, so a missing script fails fast).

Text-completions requests (``/v1/completions``, the completion prompt style) are matched on their whole prompt.
Every request is recorded in ``server.requests`` (parsed JSON body), so tests can assert that a cached prompt
made no second HTTP call.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from memserve.llm import LLMClient


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build with the classmethods."""

    status: int = 200
    content: str | None = None
    raw_body: bytes | None = None  # sent verbatim instead of a chat completion (malformed HTTP bodies)
    delay_s: float = 0.0
    prompt_tokens: int = 10
    completion_tokens: int = 5
    headers: tuple[tuple[str, str], ...] = ()
    hold: threading.Event | None = field(default=None, compare=False)  # sent only once the test sets it

    @classmethod
    def text(cls, content: str, *, prompt_tokens: int = 10, completion_tokens: int = 5) -> Reply:
        return cls(content=content, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    @classmethod
    def json(cls, obj: Any) -> Reply:
        return cls.text(json.dumps(obj))

    @classmethod
    def error(cls, status: int, message: str = "scripted error", *, retry_after: float | None = None) -> Reply:
        headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
        body = json.dumps({"error": {"message": message, "type": "scripted", "code": status}}).encode()
        return cls(status=status, raw_body=body, headers=headers)

    @classmethod
    def raw(cls, body: bytes, status: int = 200) -> Reply:
        return cls(status=status, raw_body=body)

    def after(self, delay_s: float) -> Reply:
        """The same reply, sent only after ``delay_s`` (longer than the client timeout = a timeout)."""
        return Reply(self.status, self.content, self.raw_body, delay_s, self.prompt_tokens,
                     self.completion_tokens, self.headers, self.hold)

    def held(self, gate: threading.Event) -> Reply:
        """The same reply, sent only once ``gate`` is set: a slow LLM whose end the test decides, not a clock."""
        return Reply(self.status, self.content, self.raw_body, self.delay_s, self.prompt_tokens,
                     self.completion_tokens, self.headers, gate)


@dataclass
class _Rule:
    needle: str
    replies: list[Reply]
    hits: int = 0

    def next(self) -> Reply:
        reply = self.replies[min(self.hits, len(self.replies) - 1)]
        self.hits += 1
        return reply


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def last_user_message(self) -> str:
        return _last_user_message(self.body)


def _last_user_message(body: dict[str, Any]) -> str:
    """The last user message of a chat request, or the whole prompt of a text-completions request."""
    if "prompt" in body and "messages" not in body:
        prompt = body["prompt"]
        return " ".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt)
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return ""


class ReplayServer:
    """Context manager: ``with ReplayServer() as server: ... server.url ...``."""

    def __init__(self, model_name: str = "replay-model") -> None:
        self.model_name = model_name
        self.default: Reply | None = None
        self.responder: Callable[[RecordedRequest], Reply | None] | None = None
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ---------------------------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def on(self, needle: str, replies: Reply | Sequence[Reply]) -> None:
        seq = [replies] if isinstance(replies, Reply) else list(replies)
        if not seq:
            raise ValueError("a rule needs at least one reply")
        with self._lock:
            self._rules.append(_Rule(needle, seq))

    def requests_matching(self, needle: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if needle in r.last_user_message]

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def litellm_model(self) -> str:
        return f"openai/{self.model_name}"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> ReplayServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-replay", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # wakes handlers sleeping in a scripted delay
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving -----------------------------------------------------------------------------------------------

    def _record_and_pick(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply | None:
        with self._lock:
            self.requests.append(RecordedRequest(path, body, headers))
            if self._queue:
                return self._queue.popleft()
            prompt = _last_user_message(body)
            for rule in self._rules:
                if rule.needle in prompt:
                    return rule.next()
            if self.responder is not None:
                reply = self.responder(self.requests[-1])
                if reply is not None:
                    return reply
            return self.default

    def _text_completion_body(self, reply: Reply) -> bytes:
        return json.dumps({
            "id": f"cmpl-replay-{len(self.requests)}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "text": reply.content}],
            "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                      "total_tokens": reply.prompt_tokens + reply.completion_tokens},
        }).encode()

    def _completion_body(self, reply: Reply) -> bytes:
        return json.dumps({
            "id": f"chatcmpl-replay-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply.content}}],
            "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                      "total_tokens": reply.prompt_tokens + reply.completion_tokens},
        }).encode()


def _wait_either(gate: threading.Event, closing: threading.Event) -> bool:
    """Block until ``gate`` is set (True) or the server closes (False); no deadline of its own."""
    while not gate.wait(0.05):
        if closing.is_set():
            return False
    return True


def _make_handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"_unparsed": raw.decode("utf-8", "replace")}
            headers = {k.lower(): v for k, v in self.headers.items()}
            chat = self.path.rstrip("/").endswith("/chat/completions")
            if not chat and not self.path.rstrip("/").endswith("/completions"):
                self._send(404, json.dumps({"error": {"message": f"unknown path {self.path}"}}).encode())
                return
            reply = server._record_and_pick(self.path, body, headers)
            if reply is None:
                msg = f"no scripted reply for: {_last_user_message(body)[:200]!r}"
                self._send(400, json.dumps({"error": {"message": msg, "type": "replay"}}).encode())
                return
            if reply.delay_s and server._closing.wait(reply.delay_s):
                return
            if reply.hold is not None and not _wait_either(reply.hold, server._closing):
                return
            if reply.raw_body is not None:
                payload = reply.raw_body
            else:
                payload = server._completion_body(reply) if chat else server._text_completion_body(reply)
            try:
                self._send(reply.status, payload, reply.headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and hung up: exactly what a delay test provokes

        def _send(self, status: int, payload: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def replay_server() -> Iterator[ReplayServer]:
    """A started ReplayServer, closed after the test. Import it into a test module to use it."""
    with ReplayServer() as server:
        yield server


@contextmanager
def overloaded_server() -> Iterator[ReplayServer]:
    """A replay server whose every answer is 503: the model is down."""
    with ReplayServer() as server:
        server.default = Reply.error(503, "model overloaded")
        yield server


def replay_llm_client(server: ReplayServer, **settings: Any) -> LLMClient:
    """A real ``LLMClient`` (litellm underneath) pointed at ``server``: one retry, no backoff, a short timeout."""
    from memserve.llm import LLMClient, LLMSettings

    base = {"model": server.litellm_model, "api_base": server.url, "api_key": "sk-test", "timeout_s": 10.0,
            "max_retries": 1, "backoff_base_s": 0.0, "backoff_cap_s": 0.0}
    return LLMClient(LLMSettings(**{**base, **settings}))
