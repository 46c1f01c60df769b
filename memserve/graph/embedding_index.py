"""Inner-product index over phrase or fact embeddings, keyed by stable int64 ids (FAISS flat + id map).

Kept private to the graph. The exact flat index is the store (vectors are read back from it), and below
``approximate_above`` synonym pairs come from it by range search, so the graph stays deterministic and an
incremental build equals a from-scratch one. Query-time ``search`` over a large
set (the fact index of a big namespace: 98k facts on the 2Wiki corpus, ~15 ms per exact scan on 2 cores) can
go through an IVF copy instead, built once the set passes ``approximate_above`` and rebuilt when it has grown
4x since: it scans ``nprobe`` of ``nlist`` lists, a few percent of the vectors.

The same IVF serves the graph's phrase index, where ``range_pairs`` (synonym candidates of new phrases, cosine
above a threshold) is what grows with the graph: past ``approximate_above`` it range-searches the IVF too.

Training the IVF (k-means) takes seconds to minutes, so a server does it off its locks: ``ivf_job()`` snapshots
the vectors (a read), ``IVFJob.run()`` trains and fills a new IVF (no lock), ``install_ivf()`` swaps it in after
catching up with what changed since the snapshot. The trained, empty IVF (its centroids) serialises to a small
blob; ``restore_ivf`` rebuilds the IVF from it at start-up by assigning vectors to lists, with no k-means.
``train_inline=True`` keeps the simple behaviour (train inside ``add``) for callers without a background worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

IdArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def _fill(ivf: faiss.IndexIVFFlat, ids: IdArray, vecs: np.ndarray, nprobe: int) -> faiss.IndexIVFFlat:
    """Fill an empty, trained IVF with each list written once, at its exact size. ``add_with_ids`` appends entry
    by entry, and the lists' doubling growth then holds ~300 spare bytes per 384-d vector (measured: 243 MB
    against 196 MB of codes and ids for 133k vectors). Same lists, same order within each, as ``add_with_ids``."""
    if len(ids):
        x = np.ascontiguousarray(vecs, dtype=np.float32)
        xids = np.ascontiguousarray(ids, dtype=np.int64)
        _, assign = ivf.quantizer.search(x, 1)  # the list add_with_ids would put each vector in
        assign = assign.ravel()
        order = np.argsort(assign, kind="stable")
        bounds = np.searchsorted(assign[order], np.arange(ivf.nlist + 1))
        for list_no in np.flatnonzero(np.diff(bounds)).tolist():
            rows = order[bounds[list_no]:bounds[list_no + 1]]
            list_ids, codes = np.ascontiguousarray(xids[rows]), np.ascontiguousarray(x[rows])
            ivf.invlists.add_entries(list_no, len(rows), faiss.swig_ptr(list_ids), faiss.swig_ptr(codes.view(np.uint8)))
        ivf.ntotal = len(xids)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # remove_ids without a scan of every list (built from the lists)
    ivf.nprobe = min(nprobe, ivf.nlist)
    return ivf


@dataclass(frozen=True)
class TrainedIVF:
    """A filled IVF for the ids of a snapshot, and its centroids as a blob to persist (``restore_ivf``)."""

    index: faiss.IndexIVFFlat
    ids: IdArray  # what the snapshot held
    blob: bytes  # faiss.serialize_index of the trained, still empty IVF
    built_at: int  # vectors in the snapshot: the next retraining is due at 4x this


@dataclass(frozen=True)
class IVFJob:
    """Everything k-means needs, copied out of the index: ``run()`` touches no shared state."""

    dim: int
    nlist: int
    nprobe: int
    ids: IdArray
    vecs: FloatArray
    sample: FloatArray

    def run(self) -> TrainedIVF:
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(np.ascontiguousarray(self.sample))
        blob = faiss.serialize_index(ivf).tobytes()
        return TrainedIVF(_fill(ivf, self.ids, self.vecs, self.nprobe), self.ids, blob, len(self.ids))


class EmbeddingIndex:
    def __init__(
        self, dim: int, *, approximate_above: int | None = None, nprobe: int = 128, train_inline: bool = True
    ) -> None:
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.approximate_above = approximate_above
        self.nprobe = nprobe
        self.train_inline = train_inline
        self._ivf: faiss.IndexIVFFlat | None = None
        self._ivf_built_at = 0

    @property
    def approximate(self) -> bool:
        return self._ivf is not None

    def _ids(self) -> IdArray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def needs_ivf(self) -> bool:
        """True when the set is past ``approximate_above`` and has no IVF, or has grown 4x since it was built."""
        n = len(self)
        if self.approximate_above is None or n <= self.approximate_above:
            return False
        return self._ivf is None or n > 4 * self._ivf_built_at

    def ivf_job(self) -> IVFJob | None:
        """Snapshot for an IVF (re)build, or None when none is due. A pure read (copies the vectors)."""
        if not self.needs_ivf():
            return None
        n = len(self)
        ids = self._ids()
        vecs = self._index.index.reconstruct_n(0, n)
        nlist = int(min(4096, max(64, 4 * math.sqrt(n)), n))  # k-means needs a point per centroid
        # Training on a fixed-seed sample keeps the build bounded (k-means is the expensive part).
        sample = vecs if n <= 64 * nlist else vecs[np.random.default_rng(0).choice(n, 64 * nlist, replace=False)]
        return IVFJob(self.dim, nlist, self.nprobe, ids, vecs, np.ascontiguousarray(sample))

    def install_ivf(self, trained: TrainedIVF) -> bool:
        """Use ``trained`` (consumed) after adding and removing what changed since its snapshot: O(changes)
        assignments, no k-means. False (nothing installed) if the set has since fallen back to exact search."""
        if self.approximate_above is None or len(self) <= self.approximate_above:
            return False
        current = self._ids()
        gone = np.setdiff1d(trained.ids, current, assume_unique=True)
        new = np.setdiff1d(current, trained.ids, assume_unique=True)
        if len(gone):
            trained.index.remove_ids(gone)
        if len(new):
            trained.index.add_with_ids(self._index.reconstruct_batch(new), new)
        self._ivf, self._ivf_built_at = trained.index, trained.built_at
        return True

    def restore_ivf(self, blob: bytes, built_at: int) -> bool:
        """Rebuild the IVF from persisted centroids (assign every vector to its list; no k-means). Returns
        False, leaving search exact, if the blob is unusable: the IVF is derived data, never worth failing for."""
        if self.approximate_above is None or len(self) <= self.approximate_above:
            return False
        try:
            ivf = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        except (RuntimeError, ValueError, TypeError):
            return False
        if not isinstance(ivf, faiss.IndexIVFFlat) or ivf.d != self.dim or not ivf.is_trained or ivf.ntotal:
            return False
        ids = self._ids()
        self._ivf = _fill(ivf, ids, self._index.index.reconstruct_n(0, len(ids)), self.nprobe)
        self._ivf_built_at = int(built_at)
        return True

    def _maybe_build_ivf(self) -> None:
        if self.approximate_above is None or len(self) <= self.approximate_above:
            self._ivf = None
            return
        if self.train_inline:
            job = self.ivf_job()
            if job is not None:
                trained = job.run()
                self._ivf, self._ivf_built_at = trained.index, trained.built_at

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: IdArray, vecs: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if vecs.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vecs.shape}")
        self._index.add_with_ids(vecs, np.ascontiguousarray(ids, dtype=np.int64))
        if self._ivf is not None:
            self._ivf.add_with_ids(vecs, np.ascontiguousarray(ids, dtype=np.int64))
        self._maybe_build_ivf()

    def remove(self, ids: IdArray) -> None:
        # One pass over the flat index per call: callers batch their removals.
        if len(ids):
            self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
            if self._ivf is not None:
                self._ivf.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
                if len(self) <= (self.approximate_above or 0):
                    self._ivf = None

    def vectors(self, ids: IdArray) -> FloatArray:
        if len(ids) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> tuple[FloatArray, IdArray]:
        """Top-k ids and scores for one query vector, best first, never padded."""
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        index = self._ivf if self._ivf is not None else self._index
        scores, ids = index.search(np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), k)
        keep = ids[0] != -1  # FAISS pads with -1; our hashed ids may be any other negative number
        return scores[0][keep], ids[0][keep]

    def range_pairs(self, ids: IdArray, vecs: np.ndarray, radius: float) -> tuple[IdArray, IdArray]:
        """(query id, hit id) pairs with inner product above ``radius`` (self-pairs dropped). Exact until an IVF
        is installed, then approximate like ``search``: a pair is missed only when its ends fall in lists more
        than ``nprobe`` centroids apart, rare for pairs this close (tested: recall >= 0.95 against exact)."""
        if len(ids) == 0 or len(self) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        index = self._ivf if self._ivf is not None else self._index  # IVF: the ``nprobe`` nearest lists only
        lims, _, hits = index.range_search(np.ascontiguousarray(vecs, dtype=np.float32), float(radius))
        queries = np.repeat(np.asarray(ids, dtype=np.int64), np.diff(lims).astype(np.int64))
        keep = queries != hits
        return queries[keep], hits[keep].astype(np.int64)
