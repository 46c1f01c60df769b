"""Helpers for tests that run ``memserve serve`` as a command and read how it fails."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator


@contextlib.contextmanager
def occupied_port() -> Iterator[int]:
    """A 127.0.0.1 port that a listening socket holds for the duration, so a server cannot bind it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def startup_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The first ``memserve:`` line of a failed start-up's stderr, after checking it came without a traceback."""
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("memserve:")]
    assert lines, proc.stderr
    return lines[0]
