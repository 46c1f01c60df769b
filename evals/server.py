"""The memserve an eval talks to: a fresh subprocess on a temporary data directory, or a running one.

Either way the eval sees only a target address and speaks to it through the SDK.
"""

from __future__ import annotations

from pathlib import Path

from memserve.testing import ServerProcess, ServerStartError

ROOT = Path(__file__).resolve().parents[1]


class EvalServerError(RuntimeError):
    pass


class EvalServer:
    """``with EvalServer(settings) as target:`` runs ``python -m memserve serve`` on port 0 until the block ends.

    ``settings`` are ``--set NAME=VALUE`` overrides. The server log is kept beside the temporary data directory
    and its tail is shown if the server fails to start.
    """

    def __init__(self, settings: dict[str, str], *, start_timeout: float = 600.0) -> None:  # busy shared machines
        self.settings = dict(settings)
        self._server = ServerProcess(settings=self.settings, start_timeout=start_timeout)
        self.target = ""

    @property
    def proc(self):
        return self._server.proc

    def start(self) -> str:
        try:
            self._server.start()
        except ServerStartError as exc:
            raise EvalServerError(str(exc)) from None
        self.target = self._server.target
        return self.target

    def log_tail(self, lines: int = 40) -> str:
        return self._server.log_tail(lines)

    def close(self, timeout: float = 30.0) -> None:
        if self._server.proc is not None:
            self._server.stop(timeout)
        self._server.cleanup()

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
