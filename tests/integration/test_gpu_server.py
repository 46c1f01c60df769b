"""The server with ``use_gpu=true`` on a real GPU: writes, queries, deletes and a restart through the real SDK
give the same answers a CPU index gives (skipped, with the reason, where no GPU is usable)."""

from __future__ import annotations

from pathlib import Path

import pytest
from memserve_client import EpisodeInput, MemoryClient

from tests.support.gates import LONG
from tests.support.server import ServerProcess

pytestmark = pytest.mark.gpu

TEXTS = [f"episode {i}: the {w} crossed the {c} in spring" for i, (w, c) in
         enumerate((w, c) for w in ("river", "train", "falcon", "courier", "comet") for c in
                   ("valley", "border", "harbour", "desert", "square", "bridge"))]


def answers(target: str) -> list[list[str]]:
    with MemoryClient(target, timeout=LONG) as client:
        return [[h.episode.text for h in client.query("g", text, top_k=5, mode="dense").hits]
                for text in TEXTS[:8]]


def test_gpu_server_answers_like_the_cpu_one(tmp_path: Path) -> None:
    results = {}
    for use_gpu in ("true", "false"):
        data = tmp_path / use_gpu
        with ServerProcess(data, settings={"use_gpu": use_gpu, "snapshot_interval_s": "1"}) as srv:
            with MemoryClient(srv.target, timeout=LONG) as client:
                client.write("g", [EpisodeInput(text=t) for t in TEXTS])
                ids = client.query("g", TEXTS[0], top_k=1, mode="dense").hits[0].episode.id
                assert client.delete("g", [ids]).deleted_count == 1
                assert client.stats("g").gpu is (use_gpu == "true")
            before = answers(srv.target)
        with ServerProcess(data, settings={"use_gpu": use_gpu}) as srv:  # restart: the snapshot, replayed
            after = answers(srv.target)
        assert before == after
        assert all(TEXTS[0] not in hits for hits in after)
        results[use_gpu] = after
    assert results["true"] == results["false"]
