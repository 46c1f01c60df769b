"""Hit scores of the graph modes for hits outside the dense candidate pool (in-process engine, pool shrunk)."""

from __future__ import annotations

import pytest

from memserve.config import Settings
from memserve.engine.background import Settled
from memserve.engine.memory import MemoryEngine
from memserve.types import EpisodeIn, QueryIn, QueryMode
from tests.support.gates import LONG

DOCS = [
    "Polish-Russian War is a 2009 Polish film directed by Xawery Żuławski.",
    "Xawery Żuławski is a Polish film director, the son of actress Małgorzata Braunek.",
    "Małgorzata Braunek was a Polish actress born in Szamotuły.",
    "Lake Baikal is a rift lake in Siberia, Russia.",
    "The kiwifruit is an edible berry grown in New Zealand.",
]


# Pools as small as top_k: the graph modes see only the top_k dense candidates, so the graph finds hits beyond
# them. An exact index takes dense_pool; an HNSW one takes dense_pool_hnsw (the other is left so large that it
# would cover every doc) but never more than dense_pool, the rank whose score is the prior's zero.
POOLS = {"flat": {"dense_pool": 1, "dense_pool_hnsw": 5000},
         "hnsw": {"dense_pool": 2, "dense_pool_hnsw": 1, "hnsw_threshold": 1}}


@pytest.fixture(params=sorted(POOLS))
def engine(tmp_path, request):
    settings = Settings(data_dir=tmp_path / "data", embedding_model="hash:64", snapshot_interval_s=0,
                        extractor="offline", summarizer="none", query_encoder_replica=False, **POOLS[request.param])
    engine = MemoryEngine(settings)
    engine.start()
    engine.kind = request.param
    yield engine
    engine.close(timeout=10)


def test_dense_score_is_the_cosine_even_outside_the_dense_pool(engine):
    engine.store("ns", [EpisodeIn(text=t) for t in DOCS])
    assert engine.graph.wait("ns", LONG) is Settled.IDLE
    engine.indexes.wait_migrations(LONG)  # past hnsw_threshold the HNSW build runs in the background
    assert engine.indexes.describe("ns")[1] == engine.kind
    question = "Polish actress born in Szamotuły"  # dense ranks the film second, the graph the director
    dense = engine.query(QueryIn("ns", question, top_k=len(DOCS), mode=QueryMode.DENSE))
    cosine = {h.episode.seq: h.score for h in dense.hits}
    assert len(cosine) == len(DOCS)
    top_k = 2
    pool = {h.episode.seq for h in dense.hits[:top_k]}
    for mode in (QueryMode.GRAPH, QueryMode.HYBRID):
        result = engine.query(QueryIn("ns", question, top_k=top_k, mode=mode))
        assert result.mode == mode
        outside = [h for h in result.hits if h.episode.seq not in pool]
        assert outside and all(h.graph_score > 0 for h in outside)  # the graph found what dense did not
        for h in result.hits:
            assert h.dense_score == pytest.approx(cosine[h.episode.seq], abs=1e-5), (mode, h.episode.text)


def _engine(path, **overrides) -> MemoryEngine:
    settings = Settings(data_dir=path, embedding_model="hash:64", snapshot_interval_s=0, extractor="offline",
                        summarizer="none", query_encoder_replica=False, **overrides)
    engine = MemoryEngine(settings)
    engine.start()
    engine.store("ns", [EpisodeIn(text=t) for t in DOCS])
    assert engine.graph.wait("ns", LONG) is Settled.IDLE
    engine.indexes.wait_migrations(LONG)
    return engine


@pytest.mark.parametrize("mode", [QueryMode.GRAPH, QueryMode.HYBRID])
def test_a_short_hnsw_pool_weighs_its_candidates_as_the_full_pool_does(tmp_path, mode):
    """HNSW returns dense_pool_hnsw (3) candidates; the score at rank dense_pool (4) stays the prior's zero. The
    fourth candidate weighs 0 in the full pool, so both indexes seed the walk identically: same hits, same scores.
    With the short pool's own lowest score as the zero, the third candidate would weigh 0 and the scores move."""
    exact = _engine(tmp_path / "flat", dense_pool=4)
    beam = _engine(tmp_path / "hnsw", dense_pool=4, dense_pool_hnsw=3, hnsw_threshold=1)
    try:
        assert exact.indexes.describe("ns")[1] == "flat" and beam.indexes.describe("ns")[1] == "hnsw"
        question = "Polish actress born in Szamotuły"
        want = exact.query(QueryIn("ns", question, top_k=3, mode=mode))  # top_k within the short pool
        got = beam.query(QueryIn("ns", question, top_k=3, mode=mode))
        assert [h.episode.text for h in got.hits] == [h.episode.text for h in want.hits]
        for g, w in zip(got.hits, want.hits, strict=True):
            assert g.graph_score == pytest.approx(w.graph_score, rel=1e-5)
            assert g.score == pytest.approx(w.score, rel=1e-5)
    finally:
        exact.close(timeout=10)
        beam.close(timeout=10)
