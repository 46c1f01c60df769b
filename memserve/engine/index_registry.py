"""Per-namespace vector indexes: derived from DuckDB, snapshotted to disk, repaired at start-up.

The index of a namespace is never trusted on its own: at start-up its id set is compared with the live
episode seqs in DuckDB, and whatever is missing is added (from the stored embeddings) and whatever is extra
is removed. A crash between a DuckDB commit and the index update, a lost snapshot or a corrupt file all
end in the same place: an index that agrees with the database.

Id sets alone cannot see damaged vectors, so every snapshot's SHA-256 is recorded in DuckDB
(``index_snapshots``) after it is written and checked before it is loaded: a snapshot that does not match
(flipped bytes that still parse, a crash between the file and the record, a file from elsewhere) is not
loaded but rebuilt from the embeddings in DuckDB, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..store import episodes_repo, snapshots_repo
from ..store.db import Database
from ..vector import VectorIndex, load_index, make_index
from .rwlock import RWLock

log = logging.getLogger(__name__)


@contextmanager
def single_query_threads() -> Iterator[None]:
    """One OpenMP thread for a single-query FAISS search (2 threads made it 2-2.6x slower on 2 cores: see
    FIELD-NOTES). OpenMP's thread count is per thread, so this leaves the encoder's threads alone."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


class IndexRegistry:
    """Lock order: DuckDB's write lock (when a caller holds it), then ``_registry_lock`` (a dict lookup, never
    held while waiting for anything), then one namespace's RWLock. Searches share the namespace lock; add,
    remove and replacing the index take it alone. Snapshots clone under the shared lock and write the file
    with no lock held, so neither queries nor writes wait for an fsync (docs/CONCURRENCY.md)."""

    def __init__(self, db: Database, folder: Path, *, dim: int, kind: str, hnsw_threshold: int,
                 use_gpu: str) -> None:
        self._db = db
        self._folder = folder
        self._folder.mkdir(parents=True, exist_ok=True)
        self._dim = dim
        # Migration to HNSW never runs inside add (under the write lock, minutes at 1M vectors): see _migrate.
        # use_gpu is the setting's string: "false" must reach FaissIndex as False, not as a truthy string.
        gpu = {"true": True, "false": False}.get(str(use_gpu).lower(), "auto")
        self._settings = {"hnsw_threshold": hnsw_threshold, "use_gpu": gpu, "migrate_inline": False}
        self._migrations: dict[str, threading.Thread] = {}
        self._kind = kind
        self._indexes: dict[str, VectorIndex] = {}
        self._locks: dict[str, RWLock] = {}
        self._dirty: set[str] = set()
        self._registry_lock = threading.Lock()
        # One snapshot writer at a time: two writers of the same file would race on its temporary name.
        self._snapshot_lock = threading.Lock()

    def _path(self, namespace: str) -> Path:
        return self._folder / f"{namespace}.faiss"

    def _files(self, namespace: str) -> list[Path]:
        """The files one snapshot consists of (the index, and FAISS's tombstone side file when present)."""
        path = self._path(namespace)
        return [p for p in (path, path.with_name(path.name + ".tombstones.npz")) if p.exists()]

    def checksum(self, namespace: str) -> str:
        """SHA-256 over the snapshot's files (name, then bytes, in name order)."""
        digest = hashlib.sha256()
        for path in self._files(namespace):
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()

    def _new(self) -> VectorIndex:
        if self._kind == "exact":
            return make_index("exact", self._dim)
        return make_index(self._kind, self._dim, **self._settings)

    def _load_settings(self) -> dict[str, object]:
        """FAISS settings for a loaded snapshot: the same switch rules as a new index of this kind."""
        forced = {"flat": None, "hnsw": 0}
        threshold = forced.get(self._kind, self._settings["hnsw_threshold"])
        return {**self._settings, "hnsw_threshold": threshold}

    def lock(self, namespace: str) -> RWLock:
        with self._registry_lock:
            return self._locks.setdefault(namespace, RWLock())

    def _get(self, namespace: str, create: bool) -> VectorIndex | None:
        with self._registry_lock:
            index = self._indexes.get(namespace)
            if index is None and create:
                index = self._indexes[namespace] = self._new()
            return index

    # -- access ------------------------------------------------------------------------------------------
    @contextmanager
    def reading(self, namespace: str) -> Iterator[VectorIndex]:
        """The namespace's index for searching; other searches run at the same time (FAISS searches are
        const). An unknown namespace reads as an empty index."""
        lock = self.lock(namespace)
        with lock.read():
            index = self._get(namespace, create=False)
            yield index if index is not None else self._new()

    @contextmanager
    def writing(self, namespace: str, create: bool = True) -> Iterator[VectorIndex | None]:
        """The namespace's index alone (FAISS indexes are not safe for a search during an add)."""
        lock = self.lock(namespace)
        with lock.write():
            yield self._get(namespace, create)

    def add(self, namespace: str, seqs: np.ndarray, vectors: np.ndarray) -> None:
        if len(seqs) == 0:
            return
        with self.writing(namespace) as index:
            index.add(np.asarray(seqs, dtype=np.int64), vectors)  # type: ignore[union-attr]
            self._dirty.add(namespace)
        self._maybe_migrate(namespace)

    # -- flat -> HNSW, in the background -------------------------------------------------------------------
    def _maybe_migrate(self, namespace: str) -> None:
        index = self._get(namespace, create=False)
        due = getattr(index, "migration_due", None)
        if due is None or not due():
            return
        with self._registry_lock:
            if namespace in self._migrations:
                return
            thread = threading.Thread(target=self._migrate, args=(namespace, index), daemon=True,
                                      name=f"memserve-hnsw-{namespace}")
            self._migrations[namespace] = thread
        thread.start()

    def _migrate(self, namespace: str, index: VectorIndex) -> None:
        """Copy the vectors under the shared lock (queries go on), build the HNSW graph with no lock, swap it in
        under the exclusive lock after replaying what changed meanwhile (FaissIndex.install_migration). The
        flat index answers exactly until then. A namespace dropped or reloaded meanwhile discards the build."""
        try:
            lock = self.lock(namespace)
            with lock.read():
                if self._get(namespace, create=False) is not index:
                    return
                job = index.migration_job()  # type: ignore[attr-defined]
            store = job.run()
            with lock.write():
                if self._get(namespace, create=False) is index and index.install_migration(job, store):  # type: ignore[attr-defined]
                    self._dirty.add(namespace)
                    log.info("namespace %s: index switched to HNSW at %d vectors", namespace, len(index))
        except Exception:  # a failed build leaves the exact flat index serving
            log.exception("namespace %s: HNSW build failed; search stays exact", namespace)
        finally:
            with self._registry_lock:
                self._migrations.pop(namespace, None)

    def wait_migrations(self, timeout: float | None = None) -> None:
        """Join the background HNSW builds running now (tests, shutdown)."""
        with self._registry_lock:
            threads = list(self._migrations.values())
        for thread in threads:
            thread.join(timeout)

    def remove(self, namespace: str, seqs: np.ndarray) -> None:
        if len(seqs) == 0:
            return
        with self.writing(namespace, create=False) as index:
            if index is not None:
                index.remove(np.asarray(seqs, dtype=np.int64))
                self._dirty.add(namespace)

    def drop(self, namespace: str) -> None:
        """Forget the namespace's index. The engine calls this inside the transaction that deletes the
        namespace, so a concurrent write that re-creates it commits (and adds its vectors) strictly after."""
        with self.writing(namespace, create=False):
            with self._registry_lock:
                self._indexes.pop(namespace, None)
                self._dirty.discard(namespace)
            self._unlink(namespace)

    def _unlink(self, namespace: str) -> None:
        for path in self._folder.glob(f"{namespace}.faiss*"):  # the index and its tombstones
            path.unlink(missing_ok=True)

    def describe(self, namespace: str) -> tuple[int, str, int]:
        """(vector count, index kind, bytes)."""
        index = self._get(namespace, create=False)
        if index is None:
            return 0, "none", 0
        with self.lock(namespace).read():
            return len(index), index.kind, int(index.nbytes())

    @property
    def gpu(self) -> bool:
        with self._registry_lock:
            indexes = list(self._indexes.values())
        return any(getattr(i, "gpu", False) for i in indexes)

    # -- persistence -------------------------------------------------------------------------------------
    def load_all(self, namespaces: list[str]) -> dict[str, tuple[int, int]]:
        """Load every namespace's snapshot and reconcile it with DuckDB; returns {ns: (added, removed)}."""
        repairs = {}
        for ns in namespaces:
            repairs[ns] = self.reload(ns)
        # Snapshots of namespaces that no longer exist (deleted while a snapshot was being written).
        for path in self._folder.glob("*.faiss"):
            if path.stem not in set(namespaces):
                path.unlink()
        with self._db.transaction() as tx:
            snapshots_repo.forget_others(tx, namespaces)
        return repairs

    def _verified(self, namespace: str, path: Path) -> bool:
        recorded = snapshots_repo.checksum(self._db.reader(), namespace)
        if recorded is None:
            log.warning("index snapshot %s has no checksum recorded in the database (written by an older "
                        "version, or the server stopped between writing it and recording it): rebuilding it "
                        "from the database", path)
            return False
        actual = self.checksum(namespace)
        if actual != recorded:
            log.warning("INDEX SNAPSHOT CORRUPT: %s has SHA-256 %s, but %s was recorded when it was written: "
                        "not loading it; rebuilding the index of namespace %s from the database",
                        path, actual[:16], recorded[:16], namespace)
            return False
        return True

    def reload(self, namespace: str) -> tuple[int, int]:
        """Load the snapshot (if any) and make it agree with DuckDB; returns (added, removed)."""
        path = self._path(namespace)
        index: VectorIndex | None = None
        if path.exists() and self._verified(namespace, path):
            try:
                index = load_index(path, **self._load_settings())
                if index.dim != self._dim:
                    log.warning("index %s has dim %d, expected %d: rebuilding", path, index.dim, self._dim)
                    index = None
            except (RuntimeError, OSError, ValueError) as exc:
                log.warning("cannot read index snapshot %s (%s): rebuilding from the database", path, exc)
                index = None
        if index is None:
            index = self._new()
        cur = self._db.reader()
        live = episodes_repo.live_seqs(cur, namespace)
        present = index.ids()
        missing = np.setdiff1d(live, present, assume_unique=True)
        extra = np.setdiff1d(present, live, assume_unique=True)
        if len(extra):
            index.remove(extra)
        if len(missing):
            # Bounded chunks: a full rebuild of a large namespace must not hold every vector twice.
            for start in range(0, len(missing), 50_000):
                chunk = missing[start:start + 50_000]
                seqs, vectors = episodes_repo.load_embeddings(cur, namespace, chunk.tolist())
                index.add(seqs, vectors)
        with self.lock(namespace).write(), self._registry_lock:
            self._indexes[namespace] = index
        self._maybe_migrate(namespace)
        if len(missing) or len(extra):
            log.info("namespace %s: index repaired (+%d missing, -%d stale)", namespace, len(missing), len(extra))
            self._dirty.add(namespace)
        return len(missing), len(extra)

    def snapshot(self, *, all_namespaces: bool = False) -> int:
        """Write dirty indexes to disk (atomic per file); returns how many were written."""
        with self._snapshot_lock:
            with self._registry_lock:
                names = list(self._indexes) if all_namespaces else list(self._dirty)
            written = 0
            for ns in names:
                lock = self.lock(ns)
                with lock.read():
                    # Cleared under the lock that every change takes: a change after this point marks the
                    # namespace dirty again and is written by the next snapshot.
                    self._dirty.discard(ns)
                    index = self._get(ns, create=False)
                    copy = index.clone() if index is not None else None
                if copy is None:
                    continue
                copy.save(self._path(ns))
                with self._db.transaction() as tx:
                    snapshots_repo.record(tx, ns, self.checksum(ns), len(copy))
                with self._registry_lock:
                    dropped = ns not in self._indexes
                if dropped:  # deleted while we wrote: the file must not outlive the namespace
                    self._unlink(ns)
                    with self._db.transaction() as tx:
                        snapshots_repo.forget(tx, ns)
                written += 1
            return written

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._folder.glob("*") if p.is_file())
