"""The GPU mirror of a flat index: the torch backend's logic on the CPU here, both backends on a real GPU.

``TorchCopy`` is the same code on ``cuda`` and on ``cpu``, so the CPU runs check what the mirror does with adds,
removals (invalidate, rebuild), upserts, a migration to HNSW, k larger than the index, and filtered searches
(which must stay on the CPU index); the ``gpu`` marked tests repeat the agreement on the real device."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from memserve.vector import FaissIndex, load_index
from memserve.vector import _gpu as gpu_mod
from memserve.vector import faiss_index as faiss_mod
from memserve.vector._gpu import GPU_MAX_K, GpuBackend, GpuMirror, TorchCopy, faiss_gpu_available, torch_cuda_available
from tests.support.vectors import clustered


def assert_same_hits(a: FaissIndex, b: FaissIndex, queries: np.ndarray, k: int) -> None:
    """Same ranking; positions may differ only between (near-)tied scores, whose order float sums decide."""
    same = total = 0
    for got, want in zip(a.search(queries, k), b.search(queries, k), strict=True):
        assert got.ids.size == want.ids.size
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-4, atol=1e-5)
        differ = got.ids != want.ids
        np.testing.assert_allclose(got.scores[differ], want.scores[differ], atol=1e-5)
        same += int((~differ).sum())
        total += got.ids.size
    assert same >= 0.98 * total


@pytest.fixture
def torch_mirror_on_cpu(monkeypatch: pytest.MonkeyPatch) -> list[GpuMirror]:
    """FaissIndex believes a GPU is there and mirrors onto a torch copy on the CPU; returns the mirrors made."""
    made: list[GpuMirror] = []

    def factory() -> GpuMirror:
        mirror = GpuMirror(backend="torch", device="cpu")
        made.append(mirror)
        return mirror

    monkeypatch.setattr(faiss_mod, "gpu_available", lambda: True)
    monkeypatch.setattr(faiss_mod, "GpuMirror", factory)
    return made


def test_torch_copy_matches_exact_products() -> None:
    x = clustered(3_000, 24, seed=1)
    copy = TorchCopy(x[:100], device="cpu")
    copy.add(x[100:2_000])  # past the first capacity: the buffer grows
    copy.add(x[2_000:])
    assert len(copy) == 3_000
    scores, slots = copy.search(x[:20], 5)
    want = np.argsort(-(x[:20] @ x.T), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(slots, want)
    np.testing.assert_allclose(scores, np.take_along_axis(x[:20] @ x.T, want, axis=1), rtol=1e-5)


def test_torch_copy_pads_when_k_exceeds_rows() -> None:
    x = clustered(3, 8, seed=2, clusters=3)
    scores, slots = TorchCopy(x, device="cpu").search(x[:2], 5)
    assert slots.shape == (2, 5) and (slots[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert sorted(slots[0, :3].tolist()) == [0, 1, 2]


def test_mirror_follows_adds_removes_and_upserts(torch_mirror_on_cpu: list[GpuMirror]) -> None:
    x = clustered(4_000, 32, seed=3)
    mirrored, cpu = FaissIndex(32, use_gpu=True), FaissIndex(32, use_gpu=False)
    assert mirrored.gpu and not cpu.gpu
    for index in (mirrored, cpu):
        index.add(np.arange(3_000), x[:3_000])
    assert_same_hits(mirrored, cpu, x[:40], 10)
    assert len(torch_mirror_on_cpu) == 1
    for index in (mirrored, cpu):
        index.add(np.arange(3_000, 4_000), x[3_000:])  # the built copy follows the add
        index.remove(np.arange(0, 4_000, 9))  # flat removal: the copy is dropped and rebuilt
        index.add(np.arange(10, 20), x[-10:])  # upsert: a remove, then an add
    assert_same_hits(mirrored, cpu, x[:60], 10)
    removed = set(range(0, 4_000, 9)) - set(range(10, 20))
    assert not any(set(h.ids.tolist()) & removed for h in mirrored.search(x[:60], 10))


def test_filtered_and_large_k_searches_stay_on_the_cpu(torch_mirror_on_cpu: list[GpuMirror]) -> None:
    x = clustered(3_000, 16, seed=4)
    mirrored, cpu = FaissIndex(16, use_gpu=True, exact_filter_max=10), FaissIndex(16, use_gpu=False,
                                                                                  exact_filter_max=10)
    for index in (mirrored, cpu):
        index.add(np.arange(3_000), x)
    allowed = np.arange(0, 3_000, 2)
    got = mirrored.search(x[:10], 5, allowed=allowed)
    assert not torch_mirror_on_cpu  # a filtered search never builds the copy
    assert all(set(h.ids.tolist()) <= set(allowed.tolist()) for h in got)
    assert_same_hits(mirrored, cpu, x[:3], GPU_MAX_K + 1)
    assert not torch_mirror_on_cpu


def test_mirrored_index_saves_and_loads_like_a_cpu_one(torch_mirror_on_cpu: list[GpuMirror],
                                                       tmp_path: Path) -> None:
    x = clustered(2_000, 16, seed=5)
    index = FaissIndex(16, use_gpu=True)
    index.add(np.arange(2_000), x)
    before = index.search(x[:10], 5)
    index.save(tmp_path / "i")
    loaded = load_index(tmp_path / "i", use_gpu=False)
    for a, b in zip(before, loaded.search(x[:10], 5), strict=True):
        np.testing.assert_array_equal(a.ids, b.ids)


def test_forced_backend_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_mod.gpu_backend.cache_clear()
    try:
        monkeypatch.setenv("MEMSERVE_GPU_BACKEND", "opencl")
        with pytest.raises(ValueError, match="MEMSERVE_GPU_BACKEND"):
            gpu_mod.gpu_backend()
        if not faiss_gpu_available():
            monkeypatch.setenv("MEMSERVE_GPU_BACKEND", "faiss")
            with pytest.raises(ValueError, match="no GPU support"):
                gpu_mod.gpu_backend()
        if not torch_cuda_available():
            monkeypatch.setenv("MEMSERVE_GPU_BACKEND", "torch")
            with pytest.raises(ValueError, match="no CUDA device"):
                gpu_mod.gpu_backend()
    finally:
        gpu_mod.gpu_backend.cache_clear()


# -- on a real GPU --------------------------------------------------------------------------------------------

BACKENDS = [
    pytest.param("faiss", marks=pytest.mark.skipif(not faiss_gpu_available(), reason="faiss sees no GPU")),
    pytest.param("torch", marks=pytest.mark.skipif(not torch_cuda_available(), reason="torch sees no CUDA")),
]


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_flat_matches_cpu(backend: GpuBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faiss_mod, "GpuMirror", functools.partial(GpuMirror, backend=backend))
    x = clustered(20_000, 64, seed=6)
    gpu, cpu = FaissIndex(64, use_gpu=True), FaissIndex(64, use_gpu=False)
    for index in (gpu, cpu):
        index.add(np.arange(15_000), x[:15_000])
    assert gpu.gpu and not cpu.gpu
    assert_same_hits(gpu, cpu, x[:50], 10)
    for index in (gpu, cpu):
        index.add(np.arange(15_000, 20_000), x[15_000:])
        index.remove(np.arange(0, 20_000, 7))
    assert_same_hits(gpu, cpu, x[:200], 10)
    assert_same_hits(gpu, cpu, x[:5], GPU_MAX_K)
