"""The memserve an eval talks to: a fresh subprocess on a temporary data directory, or a running one.

Either way the eval sees only a target address and speaks to it through the SDK.
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

from memserve_client import MemoryClient

ROOT = Path(__file__).resolve().parents[1]


class EvalServerError(RuntimeError):
    pass


class EvalServer:
    """``with EvalServer(settings) as target:`` runs ``python -m memserve serve`` on port 0 until the block ends.

    ``settings`` are ``--set NAME=VALUE`` overrides. The server log is kept in the temporary directory and
    its tail is shown if the server fails to start.
    """

    def __init__(self, settings: dict[str, str], *, start_timeout: float = 180.0) -> None:
        self.settings = dict(settings)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.target = ""
        self._tmp: Path | None = None
        self._log = None

    def start(self) -> str:
        self._tmp = Path(tempfile.mkdtemp(prefix="memserve-eval-"))
        port_file = self._tmp / "port"
        cmd = [sys.executable, "-m", "memserve", "serve", "--data-dir", str(self._tmp / "data"), "--port", "0",
               "--port-file", str(port_file)]
        for name, value in self.settings.items():
            cmd += ["--set", f"{name}={value}"]
        # Offline by default: the bundled model needs no hub, and litellm must not fetch its price list.
        env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               **os.environ, "PYTHONUNBUFFERED": "1"}
        self._log = open(self._tmp / "server.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None:
                raise EvalServerError(f"memserve exited with status {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.close()
                raise EvalServerError(f"memserve did not start within {self.start_timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.target = f"127.0.0.1:{int(port_file.read_text())}"
        with MemoryClient(self.target) as client:
            client.wait_ready(timeout=30)
        return self.target

    def log_tail(self, lines: int = 40) -> str:
        if self._tmp is None or not (self._tmp / "server.log").exists():
            return ""
        text = (self._tmp / "server.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
