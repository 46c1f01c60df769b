"""FAISS index for one namespace: exact flat search while small, HNSW once it grows past ``hnsw_threshold``.

Layout: an ``IndexIDMap`` over ``IndexFlatIP`` or ``IndexHNSWFlat``. We search the inner index, whose labels
are insertion positions ("slots"), and map slots to ids through ``Slots``; the IDMap keeps the ids inside the
standard FAISS file. (Plain IDMap, not IDMap2: its reverse map would cost ~40 bytes/vector for lookups we
already do in ``Slots``, and it expects ids to be unique while a tombstoned id may be re-added.)

Deletes: flat indexes remove at once (one pass over the index: batch them). HNSW cannot remove, so deleted
slots become tombstones, filtered out during the graph search with an IDSelector; when tombstones exceed
``compact_fraction`` of the slots the HNSW graph is rebuilt without them. Tombstones are saved beside the index
in ``<path>.tombstones.npz``.

Compaction rebuilds the graph synchronously inside ``remove``: call it off the event loop. Migration to HNSW
(minutes at 1M vectors on 2 cores) too, unless ``migrate_inline=False``: then the index stays flat (exact, so
always correct) past the threshold until its owner runs the migration off its lock: ``migration_job()`` copies
the live vectors (a read: searches go on), ``MigrationJob.run()`` builds the HNSW graph with no lock held, and
``install_migration()`` (exclusive) swaps it in after replaying the ids added or removed since the copy, so no
vector is lost and none comes back.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Literal, NamedTuple

import faiss
import numpy as np
import numpy.typing as npt

from memserve.vector._gpu import GPU_MAX_K, GpuMirror, gpu_available
from memserve.vector._slots import BoolArray, Slots
from memserve.vector.base import (
    FloatArray,
    Hits,
    IdArray,
    IndexFileError,
    atomic_write,
    check_ids,
    check_new_ids,
    check_query,
    check_rank,
    check_vectors,
    empty_hits,
    score_at_rank_of,
    write_atomically,
)

# This wheel ships distance_compute_blas_threshold = 128000, i.e. batched flat search never uses BLAS
# (100 queries at 1M: 3.9 s instead of 0.6 s). Only a speed knob, so lowering it process-wide is safe.
if faiss.cvar.distance_compute_blas_threshold > 20:
    faiss.cvar.distance_compute_blas_threshold = 20

# HNSW with a selective filter needs a wider beam to find k matches; beyond this it is cheaper to be exact.
_MAX_EF = 1024
# Vectors an HNSW index samples (uniformly) to estimate score_at_rank: 6 MB at 384-d, ~0.15 ms a query. Among
# 333k vectors rank 5000 is the sample's ~61st score, which lands within ~13% of rank 5000 (one binomial
# standard deviation). Redrawn once the index has grown by a quarter, so new vectors are represented.
_RANK_SAMPLE = 4096
_RANK_SAMPLE_REDRAW = 1.25


def tombstone_path(path: Path) -> Path:
    return path.with_name(path.name + ".tombstones.npz")


class FaissIndex:
    def __init__(
        self,
        dim: int,
        *,
        hnsw_threshold: int | None = 50_000,
        ef_search: int = 64,
        ef_construction: int = 80,
        hnsw_m: int = 32,
        compact_fraction: float = 0.2,
        exact_filter_max: int = 2_000,
        use_gpu: bool | Literal["auto"] = "auto",
        migrate_inline: bool = True,
    ) -> None:
        """``hnsw_threshold``: live count above which the index becomes HNSW (0: HNSW from the start, None: stay
        flat). ``exact_filter_max``: an ``allowed`` set up to this size is searched exactly by dot products."""
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if hnsw_threshold is not None and hnsw_threshold < 0:
            raise ValueError(f"hnsw_threshold must be >= 0 or None, got {hnsw_threshold}")
        if not 0.0 < compact_fraction < 1.0:
            raise ValueError(f"compact_fraction must be in (0, 1), got {compact_fraction}")
        if min(ef_search, ef_construction, hnsw_m) < 1 or exact_filter_max < 0:
            raise ValueError("ef_search, ef_construction and hnsw_m must be >= 1, exact_filter_max >= 0")
        if use_gpu is True and not gpu_available():
            raise ValueError("use_gpu=True but no GPU is usable: this faiss build has no GPU support or sees no "
                             "GPU, and PyTorch sees no CUDA device")
        self._dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self.hnsw_m = hnsw_m
        self.compact_fraction = compact_fraction
        self.exact_filter_max = exact_filter_max
        self._use_gpu = gpu_available() if use_gpu == "auto" else use_gpu
        self._gpu: GpuMirror | None = None
        self._slots = Slots()
        self._store: Any = self._new_store(hnsw=hnsw_threshold == 0)
        self.migrate_inline = migrate_inline
        self._touched: set[int] | None = None  # ids changed since migration_job() (None: no job out)
        self._rank_sample: _RankSample | None = None  # score_at_rank's sample (HNSW only)

    # -- properties ---------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def kind(self) -> str:
        return "hnsw" if self._is_hnsw else "flat"

    @property
    def gpu(self) -> bool:
        """Whether unfiltered searches run on a GPU copy (flat indexes only)."""
        return self._use_gpu and not self._is_hnsw

    @property
    def tombstones(self) -> int:
        return self._slots.n_dead

    def __len__(self) -> int:
        return self._slots.n_live

    def ids(self) -> IdArray:
        return self._slots.live_ids()

    def nbytes(self) -> int:
        total = self._store.ntotal * (self._dim * 4 + 8) + self._slots.total * 25
        if self._is_hnsw:
            hnsw = self._inner.hnsw
            total += hnsw.neighbors.size() * 4 + hnsw.levels.size() * 4 + hnsw.offsets.size() * 8
        return int(total)

    # -- mutation -----------------------------------------------------------------------------------

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        id_arr = check_ids(ids)
        vecs = check_vectors(vectors, self._dim, id_arr.size)
        check_new_ids(id_arr)
        if id_arr.size == 0:
            return
        present, _ = self._slots.find(id_arr)
        if present.any():  # upsert: the new vector replaces the old one
            self.remove(id_arr[present])
        self._store.add_with_ids(vecs, id_arr)
        self._slots.append(id_arr)
        if self._touched is not None:
            self._touched.update(id_arr.tolist())
        if self._gpu is not None:
            self._gpu.add(vecs)
        if self.migrate_inline and self.migration_due():
            self._rebuild(hnsw=True)

    def remove(self, ids: npt.ArrayLike) -> int:
        id_arr = check_ids(ids)
        slots = self._slots.kill(id_arr)
        if slots.size == 0:
            return 0
        if self._touched is not None:
            self._touched.update(id_arr.tolist())
        if self._is_hnsw:
            if self._slots.n_dead > self.compact_fraction * self._slots.total:
                self._rebuild(hnsw=True)
        else:
            # Flat indexes never hold tombstones, so ids are unique and removing by id is exact.
            self._store.remove_ids(faiss.IDSelectorBatch(self._slots.labels[slots]))
            self._slots = self._slots.compacted()
            if self._gpu is not None:
                self._gpu.invalidate()
        return int(slots.size)

    # -- migration to HNSW off the owner's lock -------------------------------------------------------

    def migration_due(self) -> bool:
        """Flat, past ``hnsw_threshold``: the next step is an HNSW graph."""
        return not self._is_hnsw and self.hnsw_threshold is not None and len(self) > self.hnsw_threshold

    def migration_job(self) -> MigrationJob:
        """Copy of the live vectors for an HNSW build (the owner's shared lock suffices: searches go on).
        From now on the index records which ids change, for ``install_migration`` to replay."""
        alive = self._slots.alive
        self._touched = set()
        return MigrationJob(self._dim, self.hnsw_m, self.ef_construction, self.ef_search,
                            np.ascontiguousarray(self._vectors()[alive]), self._slots.labels[alive].copy())

    def install_migration(self, job: MigrationJob, store: Any) -> bool:
        """Exclusive lock. Swap in ``store`` (``job.run()``) after replaying the adds and removes since the
        job's copy: O(changes). False (nothing changes) if the index is HNSW already or no job is out."""
        touched, self._touched = self._touched, None
        if touched is None or self._is_hnsw:
            return False
        slots = Slots(job.labels)
        if touched:
            ids = np.fromiter(touched, np.int64, len(touched))
            slots.kill(ids)  # their copied vector is stale or gone: tombstones
            found, live_slots = self._slots.find(ids)
            if found.any():
                vecs = np.ascontiguousarray(self._vectors()[live_slots[found]])
                store.add_with_ids(vecs, ids[found])
                slots.append(ids[found])
        self._store, self._slots = store, slots
        self._rank_sample = None
        if self._gpu is not None:
            self._gpu.invalidate()
        return True

    # -- search -------------------------------------------------------------------------------------

    def search(self, query: npt.ArrayLike, k: int, allowed: npt.ArrayLike | None = None) -> list[Hits]:
        queries = check_query(query, self._dim, k)
        mask: BoolArray | None = None
        if allowed is not None:
            slots = self._live_slots(allowed)
            if slots.size <= self.exact_filter_max:
                return self._search_exact(queries, k, slots)
            mask = np.zeros(self._slots.total, bool)
            mask[slots] = True
        elif self._slots.n_dead:
            mask = self._slots.alive
        n_selected = len(self) if mask is None else int(np.count_nonzero(mask))
        if n_selected == 0:
            return empty_hits(queries.shape[0])
        k_eff = min(k, n_selected)
        if mask is None and self.gpu and k_eff <= GPU_MAX_K:
            if self._gpu is None:
                self._gpu = GpuMirror()
            scores, slots_found = self._gpu.search(self._inner, self._vectors(), queries, k_eff)
        else:
            params = self._search_params(mask, n_selected, k_eff)
            scores, slots_found = self._inner.search(queries, k_eff, params=params)
        return [self._hits(s, i) for s, i in zip(scores, slots_found, strict=True)]

    def score_at_rank(self, query: npt.ArrayLike, rank: int, allowed: npt.ArrayLike | None = None) -> float | None:
        """Flat: exact (one scan, what a search costs). HNSW: from the sample (``_RANK_SAMPLE``), restricted to
        live and allowed slots, the rank scaled to the share of the index they stand for."""
        q = check_rank(query, self._dim, rank)
        selected: BoolArray | None = None
        if allowed is not None:
            selected = np.zeros(self._slots.total, bool)
            selected[self._live_slots(allowed)] = True
        population = len(self) if selected is None else int(np.count_nonzero(selected))
        if not self._is_hnsw:
            live = self._slots.alive if selected is None else selected
            return score_at_rank_of((self._vectors() @ q)[live], rank, population)
        sample = self._sample()  # scored whole, then masked: masking the vectors first would copy 6 MB
        keep = self._slots.alive[sample.slots] if selected is None else selected[sample.slots]
        return score_at_rank_of((sample.vectors @ q)[keep], rank, population)

    def _sample(self) -> _RankSample:
        """The HNSW index's uniform sample of live slots and a copy of their vectors (drawn on first use, again
        after the index is rebuilt or has grown by ``_RANK_SAMPLE_REDRAW``). A deleted slot stays in the sample
        and is skipped when read. Two readers drawing at once draw the same sample: the seed is the slot count."""
        sample = self._rank_sample
        total = self._slots.total
        if sample is not None and total <= _RANK_SAMPLE_REDRAW * sample.total:
            return sample
        live = np.flatnonzero(self._slots.alive)
        rng = np.random.default_rng(total)
        slots = np.sort(rng.choice(live, min(_RANK_SAMPLE, live.size), replace=False)).astype(np.int64)
        sample = _RankSample(total, slots, np.ascontiguousarray(self._vectors()[slots]))
        self._rank_sample = sample
        return sample

    def _live_slots(self, allowed: npt.ArrayLike) -> IdArray:
        """The slots of the live ids among ``allowed`` (unknown and removed ids ignored)."""
        found, slots = self._slots.find(np.unique(check_ids(allowed)))
        return slots[found]

    def _search_params(self, mask: BoolArray | None, n_selected: int, k: int) -> Any:
        sel = None if mask is None else faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        if not self._is_hnsw:
            return None if sel is None else faiss.SearchParameters(sel=sel)
        # Widen the beam in proportion to how much of the graph the filter hides.
        ef = self.ef_search * self._slots.total / max(n_selected, 1)
        ef = min(max(math.ceil(ef), self.ef_search, k), max(_MAX_EF, k))
        return faiss.SearchParametersHNSW(efSearch=ef, sel=sel)

    def _search_exact(self, queries: FloatArray, k: int, slots: IdArray) -> list[Hits]:
        if slots.size == 0:
            return empty_hits(queries.shape[0])
        scores = queries @ self._vectors()[slots].T
        kk = min(k, slots.size)
        hits = []
        for row in scores:
            top = np.argpartition(-row, kk - 1)[:kk] if kk < row.size else np.arange(row.size)
            top = top[np.argsort(-row[top], kind="stable")]
            hits.append(Hits(row[top].astype(np.float32), self._slots.labels[slots[top]]))
        return hits

    def _hits(self, scores: FloatArray, slots: IdArray) -> Hits:
        valid = slots >= 0  # FAISS pads with -1 when it finds fewer than k
        return Hits(scores[valid].astype(np.float32), self._slots.labels[slots[valid]])

    # -- structure ----------------------------------------------------------------------------------

    @property
    def _inner(self) -> Any:
        return faiss.downcast_index(self._store.index)

    @property
    def _is_hnsw(self) -> bool:
        return isinstance(self._inner, faiss.IndexHNSWFlat)

    def _vectors(self) -> FloatArray:
        """Zero-copy view of every stored vector by slot (invalidated by the next add)."""
        inner = self._inner
        flat = faiss.downcast_index(inner.storage) if self._is_hnsw else inner
        n = flat.ntotal
        if n == 0:
            return np.empty((0, self._dim), np.float32)
        return faiss.rev_swig_ptr(flat.get_xb(), n * self._dim).reshape(n, self._dim)

    def _new_store(self, *, hnsw: bool) -> Any:
        if hnsw:
            inner = faiss.IndexHNSWFlat(self._dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        else:
            inner = faiss.IndexFlatIP(self._dim)
        return faiss.IndexIDMap(inner)

    def _rebuild(self, *, hnsw: bool) -> None:
        """Re-create the store from the live vectors (migration to HNSW, or compaction)."""
        alive = self._slots.alive
        vectors = np.ascontiguousarray(self._vectors()[alive])
        labels = self._slots.labels[alive].copy()
        store = self._new_store(hnsw=hnsw)
        if labels.size:
            store.add_with_ids(vectors, labels)
        self._store = store
        self._slots = Slots(labels)
        self._rank_sample = None
        if self._gpu is not None:
            self._gpu.invalidate()

    # -- persistence --------------------------------------------------------------------------------

    def clone(self) -> FaissIndex:
        """A CPU copy of the store and the slot table (a memcpy: ~40 ms per 100k 384-d vectors)."""
        twin = FaissIndex.__new__(FaissIndex)
        twin.__dict__.update(self.__dict__)
        twin._gpu = None
        twin._use_gpu = False
        twin._touched = None
        twin._store = faiss.clone_index(self._store)
        twin._slots = Slots(self._slots.labels.copy(), self._slots.alive.copy())
        return twin

    def save(self, path: Path) -> None:
        """Write ``path`` (a standard FAISS file) and ``<path>.tombstones.npz``.

        The side file goes first and records a hash of the index's id list: after a crash between the two
        replaces, either the new tombstones apply to an unchanged index (correct) or load() detects the
        mismatch and raises IndexFileError.
        """
        path = Path(path)
        dead = np.flatnonzero(~self._slots.alive).astype(np.int64)
        write_atomically(
            tombstone_path(path),
            lambda fh: np.savez(
                fh,
                slots=dead,
                ids=self._slots.labels[dead],
                labels_digest=np.frombuffer(_digest(self._slots.labels), np.uint8),
            ),
        )
        with atomic_write(path) as tmp:
            faiss.write_index(self._store, str(tmp))

    @classmethod
    def load(cls, path: Path, **settings: Any) -> FaissIndex:
        path = Path(path)
        try:
            store = faiss.read_index(str(path))
            with np.load(tombstone_path(path), allow_pickle=False) as side:
                dead, dead_ids, digest = side["slots"], side["ids"], side["labels_digest"].tobytes()
        except (RuntimeError, OSError, KeyError, ValueError) as exc:
            raise IndexFileError(f"cannot read FAISS index {path}: {exc}") from exc
        # read_index already returns the concrete class, and it owns the object: never replace it with a
        # downcast_index() proxy, which does not own it (the original would be freed under us).
        inner = faiss.downcast_index(store.index) if isinstance(store, faiss.IndexIDMap) else None
        supported = isinstance(inner, (faiss.IndexFlat, faiss.IndexHNSWFlat))
        if inner is None or not supported or inner.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise IndexFileError(f"{path} is not an inner-product IndexIDMap over Flat or HNSWFlat")
        labels = faiss.vector_to_array(store.id_map).astype(np.int64)
        if digest != _digest(labels):
            raise IndexFileError(f"{tombstone_path(path)} does not belong to {path} (saved by another version)")
        if dead.size and (dead.max() >= labels.size or np.any(labels[dead] != dead_ids)):
            raise IndexFileError(f"{tombstone_path(path)} names slots that do not match {path}")
        alive = np.ones(labels.size, bool)
        alive[dead] = False
        index = cls(store.d, **settings)
        if isinstance(inner, faiss.IndexHNSWFlat):
            inner.hnsw.efSearch = index.ef_search
        try:
            index._slots = Slots(labels, alive)
        except ValueError as exc:
            raise IndexFileError(f"{path}: {exc}") from exc
        index._store = store
        return index


class _RankSample(NamedTuple):
    total: int  # slots in the index when drawn
    slots: IdArray  # sampled slots, ascending
    vectors: FloatArray  # their vectors, copied (the index's own view moves with every add)


class MigrationJob:
    """The live vectors of a flat index, to build its HNSW replacement with no lock held (``run``)."""

    def __init__(self, dim: int, m: int, ef_construction: int, ef_search: int, vectors: FloatArray,
                 labels: IdArray) -> None:
        self.dim, self.m, self.ef_construction, self.ef_search = dim, m, ef_construction, ef_search
        self.vectors, self.labels = vectors, labels

    def run(self) -> Any:
        inner = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = self.ef_construction
        inner.hnsw.efSearch = self.ef_search
        store = faiss.IndexIDMap(inner)
        if self.labels.size:
            store.add_with_ids(self.vectors, self.labels)
        return store


def _digest(labels: IdArray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(labels, np.int64).tobytes(), digest_size=16).digest()
