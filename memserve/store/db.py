"""The DuckDB database: one file per data directory, the source of truth.

Only this process may open the file (DuckDB allows one writer process). Writes are serialised through
``transaction()``, which holds a lock: DuckDB raises "Conflict on update" when two transactions touch the
same row, and our writes are short, so one writer at a time is both simpler and fast enough. Reads use
per-thread cursors and run concurrently with each other.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import duckdb

from ..errors import ConfigError

log = logging.getLogger(__name__)

DB_FILE = "memserve.duckdb"


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every numbered migration, in order."""
    folder = resources.files("memserve.store") / "migrations"
    out = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text()))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return out


class Database:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._conn = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            raise ConfigError(f"cannot open database {self.path}: {exc} "
                              "(is another memserve using this data directory?)") from exc
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[duckdb.DuckDBPyConnection] = []
        self._readers_lock = threading.Lock()
        self._generation = 0
        # Bumped after every commit (under the write lock): readers that cache what they computed from the
        # database (GetStats) know when it may have changed. Read it *before* computing.
        self.commits = 0
        self.migrate()

    # -- lifecycle ---------------------------------------------------------------------------------------
    def migrate(self) -> None:
        conn = self._conn
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                     "name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, name, sql in migration_files():
            if version in done:
                continue
            with self.transaction() as tx:
                tx.execute(sql)
                tx.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            log.info("applied migration %s", name)

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def checkpoint(self) -> bool:
        """Fold the WAL into the database file. Only an optimisation (DuckDB replays the WAL at the next
        start), so a checkpoint refused because a transaction is still open is logged, not raised."""
        with self._write_lock:
            try:
                self._conn.execute("CHECKPOINT")
                return True
            except duckdb.TransactionException as exc:
                log.warning("checkpoint skipped (%s); the WAL will be replayed at the next start", exc)
                return False

    def close_readers(self) -> None:
        """Close every thread's read cursor (at shutdown: an idle cursor can still pin a transaction)."""
        with self._readers_lock:
            readers, self._readers = self._readers, []
            self._generation += 1  # threads holding a closed cursor get a fresh one on their next read
        for cur in readers:
            cur.close()

    def close(self) -> None:
        with self._write_lock:
            self.close_readers()
            self._conn.close()

    # -- access ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction; committed when the block exits normally, rolled back otherwise."""
        with self._write_lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN TRANSACTION")
                try:
                    yield cur
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
                self.commits += 1
            finally:
                cur.close()

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread (DuckDB cursors are not shared across threads)."""
        held = getattr(self._local, "cursor", None)
        if held is not None and held[0] == self._generation:
            return held[1]
        cur = self._conn.cursor()
        with self._readers_lock:
            self._readers.append(cur)
            self._local.cursor = (self._generation, cur)
        return cur

    def file_bytes(self) -> int:
        total = 0
        for suffix in ("", ".wal"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += p.stat().st_size
        return total
