"""The commit mark: the last episode seq known to be committed, kept in a file beside the database.

DuckDB replays its WAL at start-up and stops, silently, where the WAL ends: a WAL cut short (a copy taken
while the server ran, a damaged disk, a file system that lost its tail) starts without the acknowledged
writes of that tail. The mark is written after every commit that stored episodes and is read before the
database is used, so start-up can tell that replay stopped short and say so loudly. It is written without
fsync (a rename of a few bytes): it survives a process crash, which is what the WAL itself survives too.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

MARK_FILE = "memserve.commit-mark"


class CommitMark:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.recorded = self._read()
        self._written = self.recorded or 0

    def _read(self) -> int | None:
        try:
            return int(json.loads(self.path.read_text())["seq"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable commit mark %s (%s)", self.path, exc)
            return None

    def check(self, replayed_seq: int) -> str | None:
        """A warning when the database stops before the mark read at start-up, else None."""
        if self.recorded is None or replayed_seq >= self.recorded:
            return None
        return (f"WAL REPLAY STOPPED SHORT: the database ends at episode seq {replayed_seq}, but seq "
                f"{self.recorded} had been committed and acknowledged ({self.path.name}). The WAL "
                f"({self.path.parent / 'memserve.duckdb.wal'}) was cut short and the writes after seq "
                f"{replayed_seq} are lost: restore the data directory from a backup taken after them, or "
                "re-send them (writes are idempotent)")

    def advance(self, seq: int) -> None:
        """Record that ``seq`` is committed (never moves back)."""
        with self._lock:
            if seq <= self._written:
                return
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            try:
                tmp.write_text(json.dumps({"seq": seq}))
                os.replace(tmp, self.path)
            except OSError as exc:  # a full disk: the write itself is committed; only the check weakens
                log.warning("cannot update the commit mark %s: %s", self.path, exc)
                return
            self._written = seq

    def reset(self, seq: int) -> None:
        """After start-up (and its warning): from now on the database as it is is the reference."""
        with self._lock:
            self._written = -1
        self.advance(seq)
