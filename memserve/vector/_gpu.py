"""The whole GPU path, isolated: a GPU copy of a CPU flat index, used only for unfiltered searches.

The CPU index stays the source of truth for save/remove; the mirror follows adds and is dropped (rebuilt lazily
on the next search) after removals, because GPU flat indexes cannot remove ids. Filtered searches stay on the
CPU: GPU indexes do not take IDSelectors.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from memserve.vector.base import FloatArray, IdArray

# GPU flat k-selection is limited to 2048 in FAISS; larger k falls back to the CPU index.
GPU_MAX_K = 2048

_resources: Any = None


def faiss_gpu_available() -> bool:
    """True when this faiss build has GPU support and a device is visible."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _shared_resources() -> Any:
    # One StandardGpuResources per process: each one reserves scratch memory, and there is an index per namespace.
    global _resources
    if _resources is None:
        _resources = faiss.StandardGpuResources()
    return _resources


class GpuMirror:
    def __init__(self) -> None:
        self._index: Any = None

    def invalidate(self) -> None:
        self._index = None

    def add(self, vectors: FloatArray) -> None:
        if self._index is not None:
            self._index.add(vectors)

    def search(self, cpu_flat: faiss.Index, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        """Search by position in ``cpu_flat`` (labels are slots, like the CPU inner index)."""
        if self._index is None:
            self._index = faiss.index_cpu_to_gpu(_shared_resources(), 0, cpu_flat)
        scores, slots = self._index.search(queries, k)
        return scores, slots.astype(np.int64, copy=False)
