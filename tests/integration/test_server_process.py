"""The test harness itself: ``ServerProcess.start()`` called outside ``with`` must not leak its child process
or its log file when start-up fails after the child was spawned (issue 13)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.support.server import ServerProcess


def test_failed_health_check_outside_with_stops_the_child_and_closes_the_log(tmp_path: Path) -> None:
    # TLS credentials against the plaintext server: the process starts and writes its port file, then the
    # health check raises (UNAVAILABLE: the handshake fails), after the child exists.
    server = ServerProcess(tmp_path / "data", channel_credentials=grpc.ssl_channel_credentials())
    try:
        with pytest.raises(grpc.RpcError):
            server.start()
        assert server.proc is not None
        assert server.proc.poll() is not None, "the child is still running"
        assert server._log is None, "the log file is still open"
    finally:
        server.kill()
        server.cleanup()
