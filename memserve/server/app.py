"""The grpc.aio server: MemoryService + grpc.health.v1 + reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .._proto import memory_pb2 as pb
from .._proto import memory_pb2_grpc
from ..config import Settings
from ..engine.memory import MemoryEngine
from .interceptors import MemserveInterceptor
from .servicer import MemoryServicer

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MemoryService"].full_name


def _request_types() -> dict[str, type]:
    service = pb.DESCRIPTOR.services_by_name["MemoryService"]
    return {m.name: getattr(pb, m.input_type.name) for m in service.methods}


class MemoryServer:
    """Owns the engine and the gRPC server. ``await start()``, then ``await wait()`` or ``await stop()``."""

    def __init__(self, settings: Settings, engine: MemoryEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or MemoryEngine(settings)
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="memserve-rpc")
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        self._snapshot_task: asyncio.Task | None = None
        self._stopped = asyncio.Event()
        self.port: int = 0

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.engine.start)
        limit = self.settings.max_message_bytes
        server = grpc.aio.server(
            interceptors=[MemserveInterceptor(self.settings.api_key, _request_types())],
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                     ("grpc.so_reuseport", 0)],
        )
        memory_pb2_grpc.add_MemoryServiceServicer_to_server(MemoryServicer(self.engine, self._executor), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server)
        address = f"{self.settings.host}:{self.settings.port}"
        if ":" in self.settings.host and not self.settings.host.startswith("["):
            address = f"[{self.settings.host}]:{self.settings.port}"
        self.port = server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot bind {address}")
        await server.start()
        self._server = server
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        if self.settings.snapshot_interval_s > 0:
            self._snapshot_task = asyncio.create_task(self._snapshot_loop())
        log.info("memserve listening on %s:%d (data: %s)", self.settings.host, self.port, self.settings.data_dir)
        return self.port

    async def _set_health(self, status) -> None:
        for name in ("", SERVICE_NAME):
            result = self._health.set(name, status)
            if asyncio.iscoroutine(result):
                await result

    async def _snapshot_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.snapshot_interval_s)
            try:
                await loop.run_in_executor(self._executor, self.engine.flush)
            except Exception:  # a failed snapshot is repaired from DuckDB at next start; keep serving
                log.exception("index snapshot failed")

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let in-flight calls finish (up to ``grace`` s), then flush and close."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._snapshot_task:
            self._snapshot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshot_task
        await server.stop(self.settings.shutdown_grace_s if grace is None else grace)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.engine.close)
        self._executor.shutdown(wait=True)
        self._stopped.set()
        log.info("memserve stopped")

    async def wait(self) -> None:
        await self._stopped.wait()


async def serve(settings: Settings, port_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully. ``port_file`` receives the bound port (atomically)
    once serving, for scripts that start the server on port 0."""
    server = MemoryServer(settings)
    port = await server.start()
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        tmp.replace(port_file)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("shutting down: draining in-flight calls")
    await server.stop()
