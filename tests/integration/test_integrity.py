"""Damaged state is noticed, named and repaired: index snapshots that still parse, WALs cut short or corrupt."""

from __future__ import annotations

import subprocess
import sys

from memserve_client import MemoryClient

from tests.integration.test_durability import WIDE, _assert_all_present, _texts
from tests.support.server import REPO, ServerProcess


def _new_log(data_dir) -> None:
    """ServerProcess appends to one log per data directory: start the next server's log afresh."""
    (data_dir.parent / f"{data_dir.name}-server.log").unlink(missing_ok=True)


def _flip(path, at: int, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    for i in range(at, at + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_snapshot_with_flipped_bytes_is_rebuilt_from_duckdb(tmp_path):
    texts = _texts(40)
    with ServerProcess(tmp_path / "d", settings=WIDE) as server, MemoryClient(server.target, timeout=30) as client:
        client.write("dur", texts)
    snapshot = tmp_path / "d" / "indexes" / "dur.faiss"
    # The vectors of a flat IDMap sit after a short header: flip 64 bytes (16 floats) inside them. FAISS still
    # reads the file and the id set is unchanged, so only the checksum can tell.
    _flip(snapshot, snapshot.stat().st_size // 2)
    import faiss

    assert faiss.read_index(str(snapshot)).ntotal == 40  # it still parses
    with ServerProcess(tmp_path / "d", settings=WIDE) as again:
        assert "INDEX SNAPSHOT CORRUPT" in again.log() and "dur.faiss" in again.log()
        _assert_all_present(again.target, texts)
        with MemoryClient(again.target, timeout=30) as client:
            for text in texts:  # every episode, not a sample: the damage hit one or two of them
                assert client.query("dur", text, top_k=1).hits[0].episode.text == text
    # The rebuilt index was saved (with a fresh checksum): the next start loads it without a repair.
    _new_log(tmp_path / "d")
    with ServerProcess(tmp_path / "d", settings=WIDE) as third:
        assert "INDEX SNAPSHOT CORRUPT" not in third.log() and "index repaired" not in third.log()
        _assert_all_present(third.target, texts)


def _write_then_crash(data_dir, texts: list[str]) -> None:
    server = ServerProcess(data_dir, settings=WIDE).start()
    try:
        with MemoryClient(server.target, timeout=30) as client:
            for start in range(0, len(texts), 20):
                client.write("dur", texts[start:start + 20])
    finally:
        server.kill()  # no checkpoint: every write since the start is only in the WAL


def test_wal_cut_short_is_reported_loudly(tmp_path):
    texts = _texts(200)
    with ServerProcess(tmp_path / "d", settings=WIDE):
        pass  # a clean stop: the schema is checkpointed into the database file
    _write_then_crash(tmp_path / "d", texts)
    wal = tmp_path / "d" / "memserve.duckdb.wal"
    with open(wal, "r+b") as fh:
        fh.truncate(wal.stat().st_size // 2)
    with ServerProcess(tmp_path / "d", settings=WIDE) as again:
        log = again.log()
        assert "WAL REPLAY STOPPED SHORT" in log and "memserve.duckdb.wal" in log, again.log_tail()
        with MemoryClient(again.target, timeout=30) as client:
            stored = {e.text for e in client.iter_episodes("dur", page_size=500)}
        assert stored < set(texts)  # the tail really is gone: the warning is not a false alarm
    # Said once: the database as it now is becomes the reference for the next start.
    _new_log(tmp_path / "d")
    with ServerProcess(tmp_path / "d", settings=WIDE) as third:
        assert "WAL REPLAY STOPPED SHORT" not in third.log()


def test_clean_restart_and_crash_do_not_warn(tmp_path):
    texts = _texts(60)
    _write_then_crash(tmp_path / "d", texts)
    with ServerProcess(tmp_path / "d", settings=WIDE) as again:
        assert "WAL REPLAY STOPPED SHORT" not in again.log()
        _assert_all_present(again.target, texts)


def test_corrupt_wal_stops_start_up_with_one_line(tmp_path):
    texts = _texts(200)
    with ServerProcess(tmp_path / "d", settings=WIDE):
        pass
    _write_then_crash(tmp_path / "d", texts)
    wal = tmp_path / "d" / "memserve.duckdb.wal"
    _flip(wal, wal.stat().st_size // 2)
    result = subprocess.run([sys.executable, "-m", "memserve", "serve", "--data-dir", str(tmp_path / "d"),
                             "--port", "0", "--set", "embedding_model=hash:512"],
                            check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("memserve:")]
    assert len(lines) == 1, result.stderr
    assert str(wal) in lines[0] and "memserve restore" in lines[0] and "aside" in lines[0]
