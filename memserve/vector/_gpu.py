"""The whole GPU path, isolated: a GPU copy of a CPU flat index, used only for unfiltered searches.

Two ways to hold that copy, chosen once per process by ``gpu_backend()``:

- ``faiss``: a FAISS GPU flat index (``faiss-gpu-cu12``: the ``[gpu]`` extra), when this faiss build has GPU
  support and sees a device.
- ``torch``: the vectors as a CUDA tensor searched by one matrix product and ``topk``, when faiss has no GPU
  support but PyTorch (a dependency already, for the embedder) sees a CUDA device. This is the path for machines
  whose CUDA runtime is not the one faiss-gpu-cu12 was built against (CUDA 13 images; no faiss wheel for it).

The CPU index stays the source of truth for save/remove; the mirror follows adds and is dropped (rebuilt lazily
on the next search) after removals, because GPU flat indexes cannot remove ids. Filtered searches stay on the
CPU: GPU indexes do not take IDSelectors.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from typing import Any, Literal, Protocol

import faiss
import numpy as np

from memserve.vector.base import FloatArray, IdArray

# GPU flat k-selection is limited to 2048 in FAISS; larger k falls back to the CPU index. (torch.topk has no
# such limit, but one rule for both keeps the two backends interchangeable.)
GPU_MAX_K = 2048

GpuBackend = Literal["faiss", "torch"]

_resources: Any = None


def faiss_gpu_available() -> bool:
    """True when this faiss build has GPU support and a device is visible."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _nvidia_driver_visible() -> bool:
    return shutil.which("nvidia-smi") is not None or os.path.exists("/dev/nvidiactl")


def torch_cuda_available() -> bool:
    """True when PyTorch is importable and sees a CUDA device. Importing torch costs a second or two, so a
    process that has not imported it yet and shows no NVIDIA driver is answered False without importing it."""
    if "torch" not in sys.modules and not _nvidia_driver_visible():
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency; guard for trimmed installs
        return False
    return bool(torch.cuda.is_available())


@functools.cache
def gpu_backend() -> GpuBackend | None:
    """The GPU search backend this process uses, or None without a usable GPU.

    ``MEMSERVE_GPU_BACKEND=faiss|torch`` forces one (an error if it is unavailable); unset, faiss wins."""
    forced = os.environ.get("MEMSERVE_GPU_BACKEND", "").strip().lower()
    if forced not in ("", "faiss", "torch"):
        raise ValueError(f"MEMSERVE_GPU_BACKEND must be faiss or torch, got {forced!r}")
    if forced == "faiss" or (not forced and faiss_gpu_available()):
        if not faiss_gpu_available():
            raise ValueError("MEMSERVE_GPU_BACKEND=faiss but this faiss build has no GPU support or sees no GPU")
        return "faiss"
    if torch_cuda_available():
        return "torch"
    if forced == "torch":
        raise ValueError("MEMSERVE_GPU_BACKEND=torch but PyTorch sees no CUDA device")
    return None


def gpu_available() -> bool:
    """True when some GPU search backend is usable in this process."""
    return gpu_backend() is not None


def _shared_resources() -> Any:
    # One StandardGpuResources per process: each one reserves scratch memory, and there is an index per namespace.
    global _resources
    if _resources is None:
        _resources = faiss.StandardGpuResources()
    return _resources


class _Copy(Protocol):
    def add(self, vectors: FloatArray) -> None: ...

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]: ...


class _FaissCopy:
    def __init__(self, cpu_flat: faiss.Index) -> None:
        self._index = faiss.index_cpu_to_gpu(_shared_resources(), 0, cpu_flat)

    def add(self, vectors: FloatArray) -> None:
        self._index.add(vectors)

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        scores, slots = self._index.search(queries, k)
        return scores, slots.astype(np.int64, copy=False)


class TorchCopy:
    """Inner-product flat search on a torch device: rows are slots, like the CPU inner index.

    Capacity doubles as vectors are added, so a stream of small adds costs amortised O(rows added), not a copy
    of the whole matrix each time. ``device`` is ``cuda`` in the server; tests also run it on ``cpu``."""

    def __init__(self, vectors: FloatArray, device: str = "cuda") -> None:
        import torch

        self._torch = torch
        self._device = torch.device(device)
        self._n = 0
        self._buf = torch.empty((max(len(vectors), 1024), vectors.shape[1]), dtype=torch.float32,
                                device=self._device)
        self.add(vectors)

    def __len__(self) -> int:
        return self._n

    def add(self, vectors: FloatArray) -> None:
        torch, n = self._torch, len(vectors)
        if n == 0:
            return
        if self._n + n > self._buf.shape[0]:
            grown = torch.empty((max(2 * self._buf.shape[0], self._n + n), self._buf.shape[1]),
                                dtype=torch.float32, device=self._device)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : self._n + n] = torch.from_numpy(np.ascontiguousarray(vectors, np.float32)).to(
            self._device)
        self._n += n

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        torch = self._torch
        q = torch.from_numpy(np.ascontiguousarray(queries, np.float32)).to(self._device)
        kk = min(k, self._n)
        with torch.inference_mode():
            scores, slots = torch.topk(q @ self._buf[: self._n].T, kk, dim=1, largest=True, sorted=True)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), -1, np.int64)
        out_s[:, :kk] = scores.cpu().numpy()
        out_i[:, :kk] = slots.cpu().numpy()
        return out_s, out_i


class GpuMirror:
    """A lazily built GPU copy of a CPU flat index, on the process's ``gpu_backend()``."""

    def __init__(self, backend: GpuBackend | None = None, device: str = "cuda") -> None:
        self.backend: GpuBackend = backend or gpu_backend() or "faiss"
        self._device = device
        self._copy: _Copy | None = None

    def invalidate(self) -> None:
        self._copy = None

    def add(self, vectors: FloatArray) -> None:
        if self._copy is not None:
            self._copy.add(vectors)

    def search(self, cpu_flat: faiss.Index, vectors: FloatArray, queries: FloatArray,
               k: int) -> tuple[FloatArray, IdArray]:
        """Search by position in ``cpu_flat`` (labels are slots, like the CPU inner index); ``vectors`` is its
        matrix (read only when the copy is (re)built)."""
        if self._copy is None:
            self._copy = _FaissCopy(cpu_flat) if self.backend == "faiss" else TorchCopy(vectors, self._device)
        return self._copy.search(queries, k)
