"""The DuckDB database: one file per data directory, the source of truth.

Only this process may open the file (DuckDB allows one writer process). Writes are serialised through
``transaction()``, which holds a lock: DuckDB raises "Conflict on update" when two transactions touch the
same row, and our writes are short, so one writer at a time is both simpler and fast enough. Reads use
per-thread cursors and run concurrently with each other.

Storage failures are translated here, once (``storage_error``): a write that fails for lack of space is
``DiskFull`` (nothing committed, the database keeps serving); a fatal error after which DuckDB has invalidated
the database (typically a checkpoint that could not be written) is ``StorageFailed``, and ``failed`` is set
and every ``on_fatal`` callback runs once, so the server can stop serving and exit (docs/DURABILITY.md).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import duckdb

from ..errors import ConfigError, DiskFull, MemserveError, StorageCorrupt, StorageFailed

log = logging.getLogger(__name__)

DB_FILE = "memserve.duckdb"

_NO_SPACE = ("no space left on device", "disk quota exceeded", "not enough space")


def one_row(cursor: duckdb.DuckDBPyConnection) -> tuple:
    """The row of a query that always returns exactly one (an aggregate): ``fetchone()`` types it optional."""
    row = cursor.fetchone()
    if row is None:
        raise StorageCorrupt("an aggregate query returned no row")
    return row


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _no_space(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (28, 122):  # ENOSPC, EDQUOT
        return True
    return any(marker in str(exc).lower() for marker in _NO_SPACE)


def _invalidated(exc: BaseException) -> bool:
    return "database has been invalidated" in str(exc)


def is_fatal(exc: BaseException) -> bool:
    """DuckDB has invalidated (or is invalidating) the database: it must be reopened."""
    return isinstance(exc, duckdb.FatalException) or _invalidated(exc)


def storage_error(exc: BaseException) -> MemserveError | None:
    """The domain error for a DuckDB or file-system failure, or None when ``exc`` is neither.

    Lack of space is ``DiskFull`` even when it was fatal (the write that ran into it is told why); every
    call that reaches an already-invalidated database gets ``StorageFailed``."""
    if isinstance(exc, MemserveError):
        return exc
    if _invalidated(exc):
        return _storage_failed(exc)
    if isinstance(exc, (duckdb.Error, OSError)) and _no_space(exc):
        return DiskFull("the disk holding the data directory is full: this call was not acknowledged; free "
                        "space and re-send it (writes are idempotent)")
    if isinstance(exc, duckdb.FatalException):
        return _storage_failed(exc)
    return None


def _storage_failed(exc: BaseException) -> StorageFailed:
    cause = "disk full" if _no_space(exc) else _one_line(exc)[:300]
    return StorageFailed(f"the database failed and must be reopened ({cause}); the server is restarting: "
                         "retry once it is serving again (every acknowledged write is kept)")


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
    def __init__(self, path: Path | str, *, checkpoint_threshold_mb: int | None = None) -> None:
        self.path = Path(path)
        try:
            self._conn = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if _no_space(exc):
                raise StorageCorrupt(f"cannot open database {self.path}: the disk is full; free space and "
                                     "start again") from exc
            raise ConfigError(f"cannot open database {self.path}: {_one_line(exc)} "
                              "(is another memserve using this data directory?)") from exc
        except duckdb.Error as exc:
            raise StorageCorrupt(_open_failure(self.path, exc)) from exc
        if checkpoint_threshold_mb is not None:
            self._conn.execute(f"SET checkpoint_threshold = '{int(checkpoint_threshold_mb)}MB'")
        # Set once, after the first fatal error; the callbacks run once, on the thread that saw it.
        self.failed: StorageFailed | None = None
        self.on_fatal: list[Callable[[StorageFailed], None]] = []
        self._fatal_lock = threading.Lock()
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
        return int(one_row(self._conn.execute("SELECT max(version) FROM schema_migrations"))[0] or 0)

    def checkpoint(self) -> bool:
        """Fold the WAL into the database file. Only an optimisation (DuckDB replays the WAL at the next
        start), so a checkpoint refused because a transaction is still open, or skipped because the
        database has failed, is logged, not raised."""
        with self._write_lock:
            if self.failed is not None:
                log.warning("checkpoint skipped: the database has failed; its WAL is replayed at the next start")
                return False
            try:
                self._conn.execute("CHECKPOINT")
                return True
            except duckdb.TransactionException as exc:
                log.warning("checkpoint skipped (%s); the WAL will be replayed at the next start", exc)
                return False
            except duckdb.Error as exc:
                mapped = self.note_failure(exc)
                if mapped is None:
                    raise
                log.error("checkpoint failed (%s); the WAL will be replayed at the next start", mapped.message)
                return False

    def checkpoint_locked(self) -> None:
        """CHECKPOINT for a caller that holds the write lock and needs it to happen (a backup): raises the
        domain error instead of logging. A checkpoint refused for an open read transaction is not an error:
        the caller copies the WAL too, and no commit can change it while the lock is held."""
        if self.failed is not None:
            raise StorageFailed(self.failed.message)
        try:
            self._conn.execute("CHECKPOINT")
        except duckdb.TransactionException as exc:
            log.info("checkpoint refused (%s): the backup copies the WAL as well", exc)
        except duckdb.Error as exc:
            mapped = self.note_failure(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def note_failure(self, exc: BaseException) -> MemserveError | None:
        """Translate ``exc`` (``storage_error``); on the first fatal one, mark the database failed and run the
        ``on_fatal`` callbacks. Returns the domain error, or None for an error that is not about storage."""
        mapped = storage_error(exc)
        if mapped is not None and is_fatal(exc):
            with self._fatal_lock:
                first, self.failed = self.failed is None, self.failed or _storage_failed(exc)
            if first:
                log.critical("DuckDB invalidated the database: %s. Every call now gets UNAVAILABLE and the "
                             "server exits so that its supervisor restarts it (docs/DURABILITY.md)",
                             _one_line(exc))
                for callback in list(self.on_fatal):
                    try:
                        callback(self.failed)
                    except Exception:  # a callback must not hide the others
                        log.exception("on_fatal callback failed")
        return mapped

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
            try:
                self._conn.close()
            except duckdb.Error as exc:  # a failed database still closes; its WAL holds what was committed
                if self.note_failure(exc) is None:
                    raise

    # -- access ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction; committed when the block exits normally, rolled back otherwise."""
        with self._write_lock:
            if self.failed is not None:
                raise StorageFailed(self.failed.message)
            try:
                cur = self._conn.cursor()
                try:
                    cur.execute("BEGIN TRANSACTION")
                    try:
                        yield cur
                    except BaseException:
                        with contextlib.suppress(duckdb.Error):  # a failed database has no transaction left
                            cur.execute("ROLLBACK")
                        raise
                    cur.execute("COMMIT")
                    self.commits += 1
                finally:
                    cur.close()
            except (duckdb.Error, OSError) as exc:
                mapped = self.note_failure(exc)
                if mapped is None:
                    raise
                raise mapped from exc

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The write lock with no transaction: nothing commits until the block ends (a backup's copy)."""
        with self._write_lock:
            yield

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

    def max_seq(self) -> int:
        """The last episode seq handed out (0 before the first write): what WAL replay must have reached."""
        row = self.reader().execute(
            "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'episode_seq'").fetchone()
        return int(row[0] or 0) if row else 0

    def file_bytes(self) -> int:
        total = 0
        for suffix in ("", ".wal"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += p.stat().st_size
        return total


def _open_failure(path: Path, exc: duckdb.Error) -> str:
    """One line for a data directory DuckDB refuses to open: which file, and what to do."""
    text = _one_line(exc)
    wal = Path(str(path) + ".wal")
    if "wal" in text.lower():
        return (f"the write-ahead log {wal} is damaged ({text[:200]}). Restore the data directory from a "
                f"backup (`memserve restore BACKUP --data-dir {path.parent}`), or move {wal.name} aside to start "
                "from the last checkpoint, losing the writes committed since then")
    return (f"the database file {path} cannot be opened ({text[:200]}). Restore the data directory from a "
            f"backup (`memserve restore BACKUP --data-dir {path.parent}`)")
