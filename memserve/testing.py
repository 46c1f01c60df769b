"""A real `memserve serve` subprocess on 127.0.0.1 port 0, for tests, benchmarks and evals.

    with ServerProcess(settings={"embedding_model": "hash:64"}) as server:
        client = MemoryClient(server.target)

The data directory is a fresh temporary one unless given (and then kept). ``stop()`` is the graceful path
(SIGTERM: drain, snapshot, checkpoint) and returns the exit code; ``kill()`` is a crash (SIGKILL).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


class ServerStartError(RuntimeError):
    pass


class ServerProcess:
    def __init__(self, data_dir: Path | None = None, *, settings: dict[str, str] | None = None,
                 env: dict[str, str] | None = None, start_timeout: float = 180.0, stop_timeout: float = 30.0,
                 channel_credentials: grpc.ChannelCredentials | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="memserve-")) / "data"
        self.settings = dict(settings or {})
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.stop_overran = False  # set when a graceful stop ran past stop_timeout and was SIGKILLed
        self.channel_credentials = channel_credentials  # for the start-up health check of a TLS server
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        self._log: IO[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        port_file = self.data_dir.parent / f"{self.data_dir.name}.port"
        port_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "memserve", "serve", "--data-dir", str(self.data_dir), "--port", "0",
               "--port-file", str(port_file)]
        for name, value in self.settings.items():
            cmd += ["--set", f"{name}={value}"]
        # Offline by default: the bundled model needs no hub, and litellm must not fetch its price list.
        env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               **os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._log = open(self.log_path, "ab")
        # Run from the folder holding this memserve package, so `-m memserve` is the caller's code even when
        # memserve is used from a checkout rather than installed.
        package_root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(cmd, cwd=package_root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while not port_file.exists():
            if self.proc.poll() is not None:
                self._close_log()
                raise ServerStartError(f"memserve exited with status {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServerStartError(f"memserve did not start within {self.start_timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        with (grpc.secure_channel(self.target, self.channel_credentials) if self.channel_credentials
              else grpc.insecure_channel(self.target)) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                              timeout=30).status
        if status != health_pb2.HealthCheckResponse.SERVING:
            raise ServerStartError(f"memserve is up but reports {status}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, timeout: float | None = None) -> int:
        """Graceful: SIGTERM, wait for the drain and flush; returns the exit code (SIGKILL after ``timeout``,
        default ``stop_timeout``)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.stop_overran = True
                self.proc.kill()
                self.proc.wait(10)
        self._close_log()
        return int(self.proc.returncode)

    def kill(self) -> None:
        """Crash: SIGKILL, no chance to flush anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()

    def cleanup(self) -> None:
        """Remove the data directory if this object created it."""
        if self._own_dir:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def __enter__(self) -> ServerProcess:
        try:
            return self.start()
        except BaseException:
            self.kill()
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                code = self.stop()
                # A clean shutdown is part of the contract: drain, snapshot, checkpoint, exit 0.
                if code != 0 and exc[0] is None:
                    why = f"did not exit within {self.stop_timeout:.0f} s of SIGTERM and was killed" \
                        if self.stop_overran else f"exited with {code} on SIGTERM"
                    raise AssertionError(f"memserve {why}:\n{self.log_tail(60)}")
        finally:
            self.cleanup()
