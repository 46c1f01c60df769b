"""The grpc.aio server: MemoryService + grpc.health.v1 + reflection, graceful shutdown.

Start-up order: bind the port first (a port in use is a one-line error, not a traceback after the model
loaded), then load the engine (model, indexes, graphs) off the event loop, then start serving. Shutdown is
bounded: in-flight calls get ``shutdown_grace_s``; RPC threads still running after that (a call stuck in a
slow encode) are not waited for past a second grace, and the engine's workers get the same bound.

When DuckDB invalidates the database (a fatal storage error: docs/DURABILITY.md) the server turns health to
NOT_SERVING at once, answers UNAVAILABLE (reason STORAGE_FAILED), shuts down as on SIGTERM and exits with
``EXIT_STORAGE_FAILED`` so that a supervisor restarts it; start-up replays the WAL and repairs the indexes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from memserve_client._proto import memory_pb2 as pb
from memserve_client._proto import memory_pb2_grpc

from ..config import Settings, check_exposure, is_loopback
from ..engine.memory import MemoryEngine
from ..errors import ConfigError
from .auth import AuthInterceptor
from .interceptors import Admission, MemserveInterceptor
from .keys import KeyRing
from .observability import Metrics, MetricsServer, ObservabilityInterceptor
from .servicer import MemoryServicer

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MemoryService"].full_name

# EX_TEMPFAIL: the database failed and the process must be restarted (every acknowledged write is in the WAL).
EXIT_STORAGE_FAILED = 75


def _request_types() -> dict[str, type]:
    service = pb.DESCRIPTOR.services_by_name["MemoryService"]
    return {m.name: getattr(pb, m.input_type.name) for m in service.methods}


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"setting {setting}: cannot read {path}: {exc}", field=setting) from exc


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS when a certificate is configured; with a client CA, clients must present a certificate (mTLS)."""
    if not settings.tls_cert_file:
        return None
    pair = (_read("tls_key_file", settings.tls_key_file), _read("tls_cert_file", settings.tls_cert_file))
    ca = _read("tls_client_ca_file", settings.tls_client_ca_file) if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


class MemoryServer:
    """Owns the engine and the gRPC server. ``await start()``, then ``await wait()`` or ``await stop()``."""

    def __init__(self, settings: Settings, engine: MemoryEngine | None = None) -> None:
        self.settings = settings
        self.engine: MemoryEngine | None = engine
        self._executor = ThreadPoolExecutor(max_workers=settings.rpc_threads, thread_name_prefix="memserve-rpc")
        self.admission = Admission(settings.max_concurrent_rpcs)
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        self._snapshot_task: asyncio.Task | None = None
        self._keys_task: asyncio.Task | None = None
        self._not_serving: asyncio.Future[None] | None = None
        self.keys = KeyRing(api_key=settings.api_key,
                            keys_file=Path(settings.api_keys_file).expanduser() if settings.api_keys_file else None)
        self._stopped = asyncio.Event()
        self.storage_failed = asyncio.Event()
        self.port: int = 0
        self.metrics = Metrics()
        self.metrics_server: MetricsServer | None = None

    def _bind(self, server: grpc.aio.Server) -> int:
        check_exposure(self.settings)
        address = f"{self.settings.host}:{self.settings.port}"
        if ":" in self.settings.host and not self.settings.host.startswith("["):
            address = f"[{self.settings.host}]:{self.settings.port}"
        credentials = server_credentials(self.settings)
        try:
            port = (server.add_secure_port(address, credentials) if credentials is not None
                    else server.add_insecure_port(address))
        except RuntimeError as exc:  # grpc raises RuntimeError("Failed to bind ...")
            raise ConfigError(f"cannot listen on {address} (is the port in use?): {exc}", field="port") from exc
        if port == 0:
            raise ConfigError(f"cannot listen on {address} (is the port in use?)", field="port")
        return port

    async def start(self) -> int:
        limit = self.settings.max_message_bytes
        server = grpc.aio.server(
            interceptors=[ObservabilityInterceptor(self.metrics, self.settings.access_log),
                          AuthInterceptor(self.keys, reflection_without_key=self.settings.reflection_without_key),
                          MemserveInterceptor(_request_types(), self.admission, self._storage_errors)],
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                     ("grpc.so_reuseport", 0)],
        )
        self.port = self._bind(server)  # before the slow part: fail fast on a taken port
        if self.settings.metrics_port:
            self.metrics_server = MetricsServer.bind(self.metrics, self.settings.host, self.settings.metrics_port)
        loop = asyncio.get_running_loop()
        if self.engine is None:
            self.engine = await loop.run_in_executor(self._executor, MemoryEngine, self.settings)

        def storage_failed(_exc: Exception) -> None:  # on whichever thread saw the failure
            loop.call_soon_threadsafe(self._on_storage_failed)

        self.engine.db.on_fatal.append(storage_failed)
        await loop.run_in_executor(self._executor, self.engine.start)
        memory_pb2_grpc.add_MemoryServiceServicer_to_server(MemoryServicer(self.engine, self._executor), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server)
        if self.metrics_server is not None:
            self.metrics_server.attach(self.engine)
        await server.start()
        self._server = server
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        if self.settings.snapshot_interval_s > 0:
            self._snapshot_task = asyncio.create_task(self._snapshot_loop())
        if self.keys.keys_file is not None and self.settings.api_keys_poll_s > 0:
            self._keys_task = asyncio.create_task(self._keys_loop())
        log.info("memserve listening on %s:%d (%s; data: %s)", self.settings.host, self.port,
                 "TLS" if self.settings.tls_cert_file else "plaintext", self.settings.data_dir)
        if self.keys.enabled and not self.settings.tls_cert_file and not is_loopback(self.settings.host):
            log.warning("API keys cross the network in clear: set tls_cert_file and tls_key_file")
        return self.port

    def _storage_errors(self, exc: BaseException):
        return self.engine.db.note_failure(exc) if self.engine is not None else None

    def _on_storage_failed(self) -> None:
        """On the event loop: stop advertising SERVING before anything else; ``serve`` then shuts down."""
        if not self.storage_failed.is_set():
            self.storage_failed.set()
            # Held: the loop keeps only a weak reference to a task, so an unreferenced one may be collected mid-run.
            self._not_serving = asyncio.ensure_future(self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING))

    @property
    def exit_code(self) -> int:
        failed = self.engine is not None and self.engine.db.failed is not None
        return EXIT_STORAGE_FAILED if failed else 0

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
                await loop.run_in_executor(self._executor, self.engine.flush)  # type: ignore[union-attr]
            except Exception:  # a failed snapshot is repaired from DuckDB at next start; keep serving
                log.exception("index snapshot failed")

    async def _keys_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.api_keys_poll_s)
            self.keys.reload()  # a small file read; a bad file is logged and the old keys stay

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let in-flight calls finish (up to ``grace`` s), then flush and close."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        for task in (self._snapshot_task, self._keys_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        grace = self.settings.shutdown_grace_s if grace is None else grace
        await server.stop(grace)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        # Calls cancelled by server.stop may still run on RPC threads (a thread cannot be interrupted).
        # Their writes check the deadline before committing; give them one more grace, then close anyway:
        # a write that never got its answer was never acknowledged.
        self._executor.shutdown(wait=False, cancel_futures=True)
        loop = asyncio.get_running_loop()
        closer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memserve-close")
        try:
            await asyncio.wait_for(loop.run_in_executor(closer, self._drain_and_close, grace), 2 * grace + 30.0)
        except TimeoutError:
            log.error("engine did not close within %.0fs; exiting anyway (DuckDB replays its WAL at start)",
                      2 * grace + 30.0)
        closer.shutdown(wait=False)
        self._stopped.set()
        log.info("memserve stopped")

    def _drain_and_close(self, grace: float) -> None:
        threads = list(getattr(self._executor, "_threads", ()))
        deadline = time.monotonic() + grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = sum(t.is_alive() for t in threads)
        if busy:
            log.warning("closing with %d RPC threads still busy", busy)
        if self.engine is not None:
            try:
                self.engine.close(timeout=grace)
            except Exception as exc:
                if self.engine.db.failed is None:
                    raise
                # The database is gone already: what it committed is in its WAL, replayed at the next start.
                log.error("closing after the storage failure: %s", " ".join(str(exc).split())[:300])

    async def wait(self) -> None:
        await self._stopped.wait()


async def serve(settings: Settings, port_file: Path | None = None) -> int:
    """Run until SIGINT/SIGTERM (or a fatal storage error), then shut down gracefully; returns the exit code
    (0, or ``EXIT_STORAGE_FAILED``). ``port_file`` receives the bound port (atomically) once serving, for
    scripts that start the server on port 0."""
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
    loop.add_signal_handler(signal.SIGHUP, server.keys.reload)
    signalled = asyncio.ensure_future(stopping.wait())
    failed = asyncio.ensure_future(server.storage_failed.wait())
    await asyncio.wait([signalled, failed], return_when=asyncio.FIRST_COMPLETED)
    for task in (signalled, failed):
        task.cancel()
    log.info("shutting down%s: draining in-flight calls",
             " after a storage failure" if server.storage_failed.is_set() else "")
    await server.stop()
    code = server.exit_code
    if code:
        log.error("exiting with status %d: the database failed; restart memserve (a supervisor does) once the "
                  "cause is fixed (docs/DURABILITY.md)", code)
    return code
