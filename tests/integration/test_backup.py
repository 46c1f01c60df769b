"""Backup and restore of a live server, and moving a namespace between servers, through the real CLI."""

from __future__ import annotations

import json
import threading

import pytest
from memserve_client import FailedPreconditionError, MemoryClient

from tests.integration.test_cli import memserve
from tests.integration.test_durability import WIDE, _texts
from tests.support.gates import wait_until
from tests.support.server import ServerProcess


def test_backup_during_concurrent_writes_restores_every_acknowledged_write(tmp_path):
    texts = _texts(2000)
    batches = [texts[i:i + 10] for i in range(0, len(texts), 10)]
    acked: list[list[str]] = []
    stop = threading.Event()
    with ServerProcess(tmp_path / "live", settings=WIDE) as server:
        def writer() -> None:
            with MemoryClient(server.target, timeout=60) as client:
                for batch in batches:
                    if stop.is_set():
                        return
                    client.write("dur", batch)
                    acked.append(batch)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            wait_until(lambda: len(acked) >= 5, "the writer has written a few batches")
            before = [t for batch in list(acked) for t in batch]  # acknowledged before the backup started
            out = memserve("backup", "--server", server.target, str(tmp_path / "bk"))
            wait_until(lambda: len(acked) >= len(before) // 10 + 5 or not thread.is_alive(),
                       "writes went on after the backup")
        finally:
            stop.set()
            thread.join(60)
        assert "restore with" in out.stderr
    manifest = json.loads((tmp_path / "bk" / "MANIFEST.json").read_text())
    assert manifest["last_seq"] >= len(before)

    memserve("restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "restored"))
    again = memserve("restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "restored"), check=False)
    assert again.returncode == 2 and "already holds a database" in again.stderr
    with ServerProcess(tmp_path / "restored", settings=WIDE) as copy, MemoryClient(copy.target, timeout=30) as c:
        restored = {e.text for e in c.iter_episodes("dur", page_size=1000)}
        assert set(before) <= restored  # every write acknowledged before the backup
        written = {t for batch in acked for t in batch}
        assert restored <= written
        # Whole batches only (each write is atomic), and exactly the episodes up to the backup's last seq.
        assert all(set(b) <= restored or not set(b) & restored for b in batches)
        assert len(restored) == manifest["last_seq"]
        for text in sorted(restored)[::50]:
            assert c.query("dur", text, top_k=1).hits[0].episode.text == text  # indexes rebuilt


def test_restore_refuses_a_damaged_backup(tmp_path):
    with ServerProcess(tmp_path / "d", settings=WIDE) as server:
        MemoryClient(server.target).write("dur", _texts(5))
        memserve("backup", "--server", server.target, str(tmp_path / "bk"))
        taken = memserve("backup", "--server", server.target, str(tmp_path / "bk"), check=False)
        assert taken.returncode == 1 and "already holds a backup" in taken.stderr
    db = tmp_path / "bk" / "memserve.duckdb"
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 0xFF
    db.write_bytes(bytes(data))
    out = memserve("restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "r"), check=False)
    assert out.returncode == 2 and "does not match the checksum" in out.stderr
    assert not (tmp_path / "r" / "memserve.duckdb").exists()


QUESTIONS = ["Which river runs through the capital?", "Where was Zorblax born?", "durable episode 7",
             "topic 42 and place 9", "Who founded the company in Lisbon?"]


def _facts() -> list[dict]:
    rows = [{"id": f"f{i}", "text": t, "session_id": f"s{i % 3}", "speaker": "user" if i % 2 else "bot",
             "metadata": {"k": str(i % 4)}, "time": f"2024-01-{1 + i % 28:02d}T10:00:00Z", "importance": 0.25 + i % 3 / 4}
            for i, t in enumerate(_texts(40))]
    rows += [{"id": "z1", "text": "Zorblax was born in Quuxville, a town near Lisbon."},
             {"id": "z2", "text": "The Tagus river flows through Lisbon, the capital of Portugal.", "pinned": True},
             {"id": "z3", "text": "Ada Moreira founded the company Quuxcorp in Lisbon in 1999."}]
    return rows


def _answers(target: str, namespace: str) -> list:
    out = []
    with MemoryClient(target, timeout=30) as client:
        for q in QUESTIONS:
            for mode in ("dense", "graph", "hybrid"):
                r = client.query(namespace, q, top_k=8, mode=mode)
                out.append([(h.episode.id, round(h.score, 5), h.rank, h.episode.text, h.episode.session_id,
                             dict(h.episode.metadata), h.episode.event_time, h.episode.create_time)
                            for h in r.hits])
    return out


def test_export_import_moves_a_namespace_with_identical_answers(tmp_path):
    settings = {**WIDE, "extractor": "offline"}
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in _facts()) + "\n")
    with ServerProcess(tmp_path / "a", settings=settings) as a, ServerProcess(tmp_path / "b", settings=settings) as b:
        memserve("ingest", "--server", a.target, "--namespace", "src", str(tmp_path / "in.jsonl"), "--wait-for-graph")
        memserve("export-namespace", "--server", a.target, "--namespace", "src", "-o", str(tmp_path / "src.jsonl"))
        lines = (tmp_path / "src.jsonl").read_text().splitlines()
        assert json.loads(lines[0])["embedding_model"] == "hash-512|512" and len(lines) == 1 + len(_facts())
        assert all(json.loads(line)["extraction"] is not None for line in lines[1:])

        out = memserve("import-namespace", "--server", b.target, str(tmp_path / "src.jsonl"))
        assert f"imported {len(_facts())} episodes into 'src' ({len(_facts())} new)" in out.stderr
        again = memserve("import-namespace", "--server", b.target, str(tmp_path / "src.jsonl"))
        assert "(0 new)" in again.stderr  # idempotent: ids travel with the episodes
        with MemoryClient(b.target, timeout=60) as client:  # re-sending a stored episode waits for the graph
            client.write("src", [{"id": "z1", "text": "Zorblax was born in Quuxville, a town near Lisbon."}],
                         wait_for_graph=True)
        assert _answers(b.target, "src") == _answers(a.target, "src")
        # The copy exports to the very same file: fields, times, embeddings and extractions all travelled.
        memserve("export-namespace", "--server", b.target, "--namespace", "src", "-o", str(tmp_path / "b.jsonl"))
        assert (tmp_path / "b.jsonl").read_text() == (tmp_path / "src.jsonl").read_text()


def test_import_refuses_embeddings_of_another_model(tmp_path):
    with ServerProcess(tmp_path / "a", settings=WIDE) as a, ServerProcess(tmp_path / "b") as b:
        MemoryClient(a.target).write("src", _texts(3))
        memserve("export-namespace", "--server", a.target, "--namespace", "src", "-o", str(tmp_path / "x.jsonl"))
        out = memserve("import-namespace", "--server", b.target, str(tmp_path / "x.jsonl"), check=False)
        assert out.returncode == 1 and "EMBEDDER_MISMATCH" in out.stderr
        with MemoryClient(b.target) as client:
            model = json.loads((tmp_path / "x.jsonl").read_text().splitlines()[0])["embedding_model"]
            _, item = next(iter(MemoryClient(a.target).admin.iter_export("src")))
            with pytest.raises(FailedPreconditionError) as info:
                client.admin.import_namespace("src", [item], embedding_model=model)
            assert info.value.reason == "EMBEDDER_MISMATCH"
            assert client.list_namespaces().items == ()
