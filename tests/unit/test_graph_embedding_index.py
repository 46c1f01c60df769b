from __future__ import annotations

import numpy as np

from memserve.graph.embedding_index import EmbeddingIndex


def _clustered(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim))
    x = centres[rng.integers(0, 50, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_large_sets_search_through_ivf_with_high_recall():
    vecs = _clustered(6000)
    ids = np.arange(6000, dtype=np.int64) * 7 - 20_000  # arbitrary, partly negative, like hashed ids
    exact = EmbeddingIndex(64)
    approx = EmbeddingIndex(64, approximate_above=2000)
    for start in range(0, 6000, 1000):  # grows past the threshold, as a graph does
        exact.add(ids[start:start + 1000], vecs[start:start + 1000])
        approx.add(ids[start:start + 1000], vecs[start:start + 1000])
    assert approx.approximate and not exact.approximate
    queries = _clustered(200, seed=1)
    hits = sum(len(set(exact.search(q, 5)[1]) & set(approx.search(q, 5)[1])) for q in queries)
    assert hits / (5 * len(queries)) >= 0.9


def test_removed_ids_never_come_back_and_small_sets_are_exact_again():
    vecs = _clustered(3000)
    ids = np.arange(3000, dtype=np.int64)
    index = EmbeddingIndex(64, approximate_above=1000)
    index.add(ids, vecs)
    assert index.approximate
    gone = ids[:2500]
    index.remove(gone)
    assert not index.approximate  # 500 left: back to the exact scan
    for q in vecs[:50]:
        assert not set(index.search(q, 10)[1]) & set(gone.tolist())
    index.add(np.arange(10_000, 11_000, dtype=np.int64), vecs[:1000])
    assert index.approximate
    found = index.search(vecs[0], 3)[1]
    assert 10_000 in found  # the re-added vector is its own best match


def test_background_ivf_recall_at_fact_top_k_against_exact():
    """The worker's path (snapshot job, train off the lock, install after catching up with later adds and
    removes, then restore from the persisted centroids): recall@fact_top_k (5, the default) >= 0.95."""
    from memserve.config import Settings

    k = Settings().fact_top_k
    vecs = _clustered(24_000, seed=3)
    ids = np.arange(24_000, dtype=np.int64) * 13 - 100_000
    exact = EmbeddingIndex(64)
    approx = EmbeddingIndex(64, approximate_above=10_000, train_inline=False)
    for index in (exact, approx):
        index.add(ids[:20_000], vecs[:20_000])
    job = approx.ivf_job()
    assert job is not None and not approx.approximate  # exact until the trained IVF is installed
    for index in (exact, approx):  # changes between the snapshot and the install
        index.add(ids[20_000:], vecs[20_000:])
        index.remove(ids[:500])
    trained = job.run()
    assert approx.install_ivf(trained) and approx.approximate
    restored = EmbeddingIndex(64, approximate_above=10_000, train_inline=False)
    keep = ids[500:]
    restored.add(keep, vecs[500:])
    assert restored.restore_ivf(trained.blob, trained.built_at) and restored.approximate
    queries = _clustered(300, seed=4)
    for candidate in (approx, restored):
        hits = sum(len(set(exact.search(q, k)[1]) & set(candidate.search(q, k)[1])) for q in queries)
        assert hits / (k * len(queries)) >= 0.95
        assert not set(np.concatenate([candidate.search(q, k)[1] for q in queries[:50]])) & set(ids[:500].tolist())


def test_list_by_list_fill_builds_the_index_add_with_ids_would():
    """_fill writes each inverted list once (no growth slack); the index must be the one add_with_ids builds:
    same lists in the same order, same search results, and removes and adds afterwards work the same."""
    import faiss

    from memserve.graph.embedding_index import _fill

    rng = np.random.default_rng(3)
    dim, n, nlist = 24, 3_000, 40
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    built = []
    for way in ("fill", "add_with_ids"):
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vecs)
        if way == "fill":
            _fill(ivf, ids, vecs, nprobe=8)
        else:
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            ivf.add_with_ids(vecs, ids)
            ivf.nprobe = 8
        built.append(ivf)
    fill, reference = built
    assert fill.ntotal == reference.ntotal == n
    for list_no in range(nlist):
        size = fill.invlists.list_size(list_no)
        assert size == reference.invlists.list_size(list_no)
        got = faiss.rev_swig_ptr(fill.invlists.get_ids(list_no), size).copy() if size else np.zeros(0)
        want = faiss.rev_swig_ptr(reference.invlists.get_ids(list_no), size).copy() if size else np.zeros(0)
        assert np.array_equal(got, want)
    queries = vecs[:50]
    for ivf in built:  # the same edits on both, through the direct map _fill built from the lists
        assert ivf.remove_ids(ids[:30]) == 30
        ivf.add_with_ids(vecs[:10], ids[:10])
    assert [np.array_equal(a, b) for a, b in zip(fill.search(queries, 10), reference.search(queries, 10),
                                                  strict=True)] == [True, True]
    assert fill.ntotal == reference.ntotal == n - 20
