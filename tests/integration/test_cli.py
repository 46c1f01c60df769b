"""The command line, exactly as the README and the benchmarks use it, against a real server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.server import REPO


def memserve(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "memserve", *args], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"memserve {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory):
    from tests.support.server import ServerProcess

    with ServerProcess(tmp_path_factory.mktemp("cli") / "data", settings={"extractor": "offline"}) as proc:
        yield proc


def test_ingest_query_summary_prune_export(cli_server, tmp_path):
    server = cli_server.target
    lines = [
        {"id": "e1", "text": "Lisbon is the capital of Portugal.", "session_id": "s", "time": "2024-01-02T10:00:00Z"},
        {"id": "e2", "text": "The Tagus river flows through Lisbon.", "session_id": "s", "metadata": {"src": "wiki"}},
        {"text": "Penguins live in the Southern Hemisphere.", "time": 1700000000},
    ]
    jsonl = tmp_path / "eps.jsonl"
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = memserve("ingest", "--server", server, "--namespace", "cli", str(jsonl), "--wait-for-graph")
    assert "ingested 3 episodes" in out.stderr
    again = memserve("ingest", "--server", server, "--namespace", "cli", str(jsonl))
    assert "(0 new" in again.stderr

    result = json.loads(memserve("query", "--server", server, "--namespace", "cli", "--top-k", "2", "--json",
                                 "Which river runs through the capital of Portugal?").stdout)
    assert [h["rank"] for h in result["hits"]] == [1, 2]
    assert {"id", "text", "score", "rank"} <= set(result["hits"][0])
    assert result["hits"][0]["id"] in {"e1", "e2"} and "total" in result["timings_ms"]
    for mode in ("dense", "graph", "hybrid"):
        r = json.loads(memserve("query", "--server", server, "--namespace", "cli", "--mode", mode, "--json",
                                "Tagus").stdout)
        assert r["hits"]

    summary = json.loads(memserve("summary", "--server", server, "--namespace", "cli", "--json").stdout)
    assert {"summary", "segments", "backlog", "episode_count"} <= set(summary)

    dry = json.loads(memserve("prune", "--server", server, "--namespace", "cli", "--dry-run", "--max-episodes", "2",
                              "--json").stdout)
    assert dry["dry_run"] and len(dry["pruned"]) == 1 and dry["remaining_count"] == 3

    graph = tmp_path / "g.graphml"
    out = memserve("export", "--server", server, "--namespace", "cli", "--format", "graphml", "-o", str(graph))
    assert graph.read_bytes().startswith(b"<?xml") and "nodes" in out.stdout
    stats = json.loads(memserve("stats", "--server", server, "--namespace", "cli", "--json").stdout)
    assert stats["namespaces"][0]["episode_count"] == 3


def test_cli_errors_are_readable(cli_server, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "typo"}\n')
    out = memserve("ingest", "--server", cli_server.target, "--namespace", "cli2", str(bad), check=False)
    assert out.returncode == 2 and "bad.jsonl:2" in out.stderr
    out = memserve("query", "--server", cli_server.target, "--namespace", "nope", "x", check=False)
    assert out.returncode == 1 and "does not exist" in out.stderr
    out = memserve("serve", "--set", "port=notaport", check=False)
    assert out.returncode == 2 and "port" in out.stderr


def test_ingest_attaches_hipporag_openie(cli_server, tmp_path):
    passage = "Zorblax\nZorblax was born in Quuxville."
    (tmp_path / "p.jsonl").write_text(json.dumps({"id": "z", "text": passage}) + "\n")
    openie = {"docs": [{"title": "Zorblax", "text": "Zorblax was born in Quuxville.", "passage": passage,
                        "extracted_entities": ["Zorblax", "Quuxville"],
                        "extracted_triples": [["Zorblax", "was born in", "Quuxville"], ["bad", "arity"]]}],
              "avg_ent_chars": float("nan")}
    (tmp_path / "openie.json").write_text(json.dumps(openie))  # writes a literal NaN, as HippoRAG's files hold
    out = memserve("ingest", "--server", cli_server.target, "--namespace", "oie", str(tmp_path / "p.jsonl"),
                   "--openie", str(tmp_path / "openie.json"), "--wait-for-graph")
    assert "1 with OpenIE extractions" in out.stderr
    graph = tmp_path / "g.json"
    memserve("export", "--server", cli_server.target, "--namespace", "oie", "--format", "node-link", "-o", str(graph))
    nodes = {n.get("text") for n in json.loads(graph.read_text())["nodes"]}
    assert {"zorblax", "quuxville"} <= nodes and "arity" not in nodes


def test_version_names_both_packages():
    import memserve_client

    from memserve import __version__

    out = memserve("--version")
    assert out.stdout.strip() == f"memserve {__version__} (memserve-client {memserve_client.__version__})"


def test_list_get_delete_and_stats_table(cli_server, tmp_path):
    server = cli_server.target
    lines = [{"id": "a1", "text": "Apples are red.", "session_id": "s1", "time": "2024-03-01T09:00:00Z"},
             {"id": "a2", "text": "Bananas are yellow.", "session_id": "s2"},
             {"id": "a3", "text": "Cherries are dark.", "session_id": "s1"}]
    jsonl = tmp_path / "fruit.jsonl"
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    memserve("ingest", "--server", server, "--namespace", "fruit", str(jsonl))

    rows = [json.loads(x) for x in memserve("list", "--server", server, "--namespace", "fruit",
                                            "--json").stdout.splitlines()]
    assert sorted(r["id"] for r in rows) == ["a1", "a2", "a3"] and {"text", "session_id"} <= set(rows[0])
    s1 = memserve("list", "--server", server, "--namespace", "fruit", "--session", "s1").stdout.splitlines()
    assert sorted(x.split("\t")[0] for x in s1) == ["a1", "a3"]
    assert len(memserve("list", "--server", server, "--namespace", "fruit", "--limit", "2").stdout.splitlines()) == 2
    namespaces = [json.loads(x) for x in memserve("list", "--server", server, "--json").stdout.splitlines()]
    assert {"namespace": "fruit", "episode_count": 3} in namespaces

    got = json.loads(memserve("get", "--server", server, "--namespace", "fruit", "a1", "--json").stdout)
    assert got["text"] == "Apples are red." and got["event_time"].startswith("2024-03-01T09:00:00")
    text = memserve("get", "--server", server, "--namespace", "fruit", "a1").stdout
    assert text.splitlines()[0].startswith("a1 (session s1") and "Apples are red." in text
    out = memserve("get", "--server", server, "--namespace", "fruit", "zzz", check=False)
    assert out.returncode == 1 and "zzz" in out.stderr and "Traceback" not in out.stderr

    out = memserve("delete", "--server", server, "--namespace", "fruit", "a2", "nope").stdout
    assert out.strip() == "deleted 1; not found: nope"
    again = json.loads(memserve("delete", "--server", server, "--namespace", "fruit", "a2", "--json").stdout)
    assert again == {"deleted_count": 0, "not_found_ids": ["a2"]}

    table = memserve("stats", "--server", server, "--namespace", "fruit").stdout.splitlines()
    assert table[0].startswith("2 episodes in 1 namespaces")
    assert table[1].split()[:2] == ["namespace", "episodes"] and table[2].split()[:2] == ["fruit", "2"]


def test_a_closed_stdout_ends_quietly():
    """`memserve settings | head`: the reader is gone before memserve writes; no traceback, exit 0."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE, deterministically
    try:
        proc = subprocess.run([sys.executable, "-m", "memserve", "settings"], cwd=REPO, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_settings_piped_to_head_prints_the_table_head():
    proc = subprocess.run(f"{sys.executable} -m memserve settings | head -n 2", shell=True, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.stdout.splitlines() == ["| setting | env | default | meaning |", "| --- | --- | --- | --- |"]
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_ingest_checks_the_whole_file_before_writing(cli_server, tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = [json.dumps({"id": f"v{i}", "text": f"valid line {i}"}) for i in range(199)]
    lines.append(json.dumps({"id": "v199", "text": "  "}))  # line 200: blank text
    bad.write_text("\n".join(lines) + "\n")
    out = memserve("ingest", "--server", cli_server.target, "--namespace", "whole", str(bad), check=False)
    assert out.returncode == 2 and f"{bad}:200: text is empty" in out.stderr, out.stderr
    # Nothing was written: the namespace was never created.
    out = memserve("stats", "--server", cli_server.target, "--namespace", "whole", check=False)
    assert out.returncode == 1 and "does not exist" in out.stderr

    lines[199] = json.dumps({"id": "v5", "text": "a repeated id"})
    bad.write_text("\n".join(lines) + "\n")
    out = memserve("ingest", "--server", cli_server.target, "--namespace", "whole", str(bad), check=False)
    assert out.returncode == 2 and f"{bad}:200: id 'v5' repeats the id on {bad}:6" in out.stderr, out.stderr

    lines[199] = json.dumps({"text": "fine", "importance": 3})
    bad.write_text("\n".join(lines) + "\n")
    out = memserve("ingest", "--server", cli_server.target, "--namespace", "whole", str(bad), check=False)
    assert out.returncode == 2 and f"{bad}:200: importance must be within [0, 1]" in out.stderr, out.stderr


def test_ingest_server_error_mid_file_and_rerun(tmp_path):
    """A limit the server sets below the defaults is only seen by the server: the run stops at that batch,
    says which lines are stored, and the same command after the fix writes only what is missing."""
    from tests.support.server import ServerProcess

    lines = [json.dumps({"id": f"m{i}", "text": f"mid-file line {i}"}) for i in range(10)]
    lines[7] = json.dumps({"id": "m7", "text": "long " * 40})  # 200 bytes: over the server's 100
    jsonl = tmp_path / "mid.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    with ServerProcess(tmp_path / "d", settings={"max_text_bytes": "100"}) as server:
        out = memserve("ingest", "--server", server.target, "--namespace", "mid", str(jsonl), "--batch-size", "4",
                       check=False)
        assert out.returncode == 1, out.stderr
        assert f"{jsonl}:5-8: the server refused" in out.stderr and "the 4 episodes before it are stored" in out.stderr
        lines[7] = json.dumps({"id": "m7", "text": "short again"})
        jsonl.write_text("\n".join(lines) + "\n")
        out = memserve("ingest", "--server", server.target, "--namespace", "mid", str(jsonl), "--batch-size", "4")
        assert "ingested 10 episodes into 'mid' (6 new)" in out.stderr
