"""A real grpc.aio server on 127.0.0.1:0 with a scripted MemoryService, for testing the SDK's transport side.

The server runs in its own thread and event loop so the blocking client and the asyncio client (which lives in
pytest-asyncio's loop) can both talk to it. Each RPC follows a script of steps (respond / abort / hang); the
last step repeats (steps are built with the servicer's static methods, so tests need no import from here).
Every request is recorded with its metadata and the deadline the server saw.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from memserve_client._proto import memory_pb2 as pb
from memserve_client._proto import memory_pb2_grpc as pb_grpc

Step = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
METHODS = list(pb.DESCRIPTOR.services_by_name["MemoryService"].methods_by_name)


@dataclass
class Received:
    request: Any
    metadata: dict[str, str]
    time_remaining: float | None


class ScriptedServicer(pb_grpc.MemoryServiceServicer):
    def __init__(self) -> None:
        self.scripts: dict[str, list[Step]] = {}
        self.calls: dict[str, list[Received]] = defaultdict(list)

    @staticmethod
    def respond(message: Any) -> Step:
        async def step(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return message

        return step

    @staticmethod
    def respond_with(build: Callable[[Any], Any]) -> Step:
        async def step(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return build(request)

        return step

    @staticmethod
    def abort(
        code: grpc.StatusCode,
        details: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        request_id: str | None = "req-42",
    ) -> Step:
        async def step(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = [("memserve-reason", reason or code.name)]
            if field:
                metadata.append(("memserve-field", field))
            if request_id:
                metadata.append(("memserve-request-id", request_id))
            context.set_trailing_metadata(tuple(metadata))
            await context.abort(code, details)

        return step

    @staticmethod
    def hang() -> Step:
        """Never answer: the call ends only when the client's deadline cancels it (no clock in the test)."""

        async def step(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await asyncio.Event().wait()

        return step

    def script(self, method: str, *steps: Step) -> None:
        assert method in METHODS, method
        self.scripts[method] = list(steps)

    def reset(self) -> None:
        self.scripts.clear()
        self.calls.clear()

    async def handle(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.calls[method].append(
            Received(request, dict(context.invocation_metadata() or ()), context.time_remaining())
        )
        steps = self.scripts.get(method)
        if not steps:
            return getattr(pb, f"{method}Response")()
        step = steps.pop(0) if len(steps) > 1 else steps[0]
        return await step(request, context)


def _handler(method: str) -> Callable[..., Awaitable[Any]]:
    async def handler(self: ScriptedServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self.handle(method, request, context)

    handler.__name__ = method
    return handler


for _method in METHODS:
    setattr(ScriptedServicer, _method, _handler(_method))


class ServerThread:
    def __init__(self, servicer: ScriptedServicer) -> None:
        self.servicer = servicer
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="grpc-test-server", daemon=True)

    async def _start(self) -> int:
        # grpc.aio binds a server to the loop it is created in, hence creating it inside the thread's loop.
        self.server = grpc.aio.server()
        pb_grpc.add_MemoryServiceServicer_to_server(self.servicer, self.server)
        health_servicer = health.aio.HealthServicer()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    def start(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def server() -> Iterator[tuple[ScriptedServicer, str]]:
    servicer = ScriptedServicer()
    thread = ServerThread(servicer)
    port = thread.start()
    yield servicer, f"127.0.0.1:{port}"
    thread.stop()


@pytest.fixture
def servicer(server: tuple[ScriptedServicer, str]) -> Iterator[ScriptedServicer]:
    server[0].reset()
    yield server[0]
    server[0].reset()


@pytest.fixture
def target(server: tuple[ScriptedServicer, str]) -> str:
    return server[1]
