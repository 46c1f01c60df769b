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


# Pools of one: the graph modes see only the top_k dense candidates, so the graph finds hits beyond them. An exact
# index takes dense_pool, an HNSW one dense_pool_hnsw (the other is left so large that it would cover every doc).
POOLS = {"flat": {"dense_pool": 1, "dense_pool_hnsw": 5000},
         "hnsw": {"dense_pool": 5000, "dense_pool_hnsw": 1, "hnsw_threshold": 1}}


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
