"""No acknowledged write is lost: across SIGKILL, lost or corrupt index snapshots, and clean restarts."""

from __future__ import annotations

from memserve_client import EpisodeInput, MemoryClient

from tests.support.gates import LONG
from tests.support.server import ServerProcess

N = 300
WIDE = {"embedding_model": "hash:512"}  # near-duplicate texts need a wider hash space


def _texts(n: int) -> list[str]:
    return [f"durable episode {i} about topic {i * 7919 % 1000} and place {i * 104729 % 977}" for i in range(n)]


def _assert_all_present(target: str, texts: list[str]) -> None:
    with MemoryClient(target, timeout=LONG) as client:
        stored = {e.text for e in client.iter_episodes("dur", page_size=500)}
        assert stored == set(texts)
        stats = client.stats("dur").namespaces[0]
        assert stats.episode_count == len(texts) and stats.vector_count == len(texts)
        for text in texts[:: max(1, len(texts) // 25)]:
            top = client.query("dur", text, top_k=1).hits[0]
            assert top.episode.text == text


def test_sigkill_right_after_acks_loses_nothing(tmp_path):
    texts = _texts(N)
    server = ServerProcess(tmp_path / "d", settings=WIDE).start()
    try:
        with MemoryClient(server.target, timeout=LONG) as client:
            for start in range(0, N, 30):
                result = client.write("dur", [EpisodeInput(text=t, session_id="s") for t in texts[start:start + 30]])
                assert all(result.created)
    finally:
        server.kill()  # no shutdown hook runs: no snapshot, no checkpoint
    with ServerProcess(tmp_path / "d", settings=WIDE) as again:
        _assert_all_present(again.target, texts)
        assert "index repaired" in again.log()


def test_clean_restart_uses_the_snapshot(tmp_path):
    texts = _texts(50)
    with ServerProcess(tmp_path / "d", settings=WIDE) as server, MemoryClient(server.target, timeout=LONG) as client:
        client.write("dur", texts)
    assert (tmp_path / "d" / "indexes" / "dur.faiss").exists()
    with ServerProcess(tmp_path / "d", settings=WIDE) as again:
        _assert_all_present(again.target, texts)
        assert "index repaired" not in again.log()


def test_corrupt_or_missing_snapshot_is_rebuilt_from_duckdb(tmp_path):
    texts = _texts(40)
    with ServerProcess(tmp_path / "d", settings=WIDE) as server, MemoryClient(server.target, timeout=LONG) as client:
        client.write("dur", texts)
    snapshot = tmp_path / "d" / "indexes" / "dur.faiss"
    snapshot.write_bytes(b"IxMp" + b"\x00garbage" * 10)
    with ServerProcess(tmp_path / "d", settings=WIDE) as again:
        _assert_all_present(again.target, texts)
    snapshot.unlink()
    with ServerProcess(tmp_path / "d", settings=WIDE) as third:
        _assert_all_present(third.target, texts)


def test_deletes_survive_a_crash(tmp_path):
    texts = _texts(20)
    server = ServerProcess(tmp_path / "d", settings=WIDE).start()
    try:
        with MemoryClient(server.target, timeout=LONG) as client:
            ids = client.write("dur", texts).ids
    finally:
        server.stop()  # clean stop: the snapshot holds all 20; the delete below reaches only DuckDB
    server = ServerProcess(tmp_path / "d", settings=WIDE).start()
    try:
        with MemoryClient(server.target, timeout=LONG) as client:
            assert client.delete("dur", list(ids[:5])).deleted_count == 5
    finally:
        server.kill()
    with ServerProcess(tmp_path / "d", settings=WIDE) as again:
        _assert_all_present(again.target, texts[5:])
