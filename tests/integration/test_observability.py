"""Metrics and access logs of a real server: scrape /metrics after real calls, read the JSON access log."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

import pytest
from memserve_client import EpisodeNotFoundError, MemoryClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import occupied_port, startup_error
from tests.support.server import ServerProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from the Prometheus text exposition."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    port = free_port()
    with ServerProcess(tmp_path_factory.mktemp("obs") / "data",
                       settings={"extractor": "offline", "metrics_port": str(port), "log_format": "json"}) as proc:
        yield proc, port


def test_metrics_endpoint_counts_rpcs_stages_ingest_and_engine_state(observed):
    proc, port = observed
    with MemoryClient(proc.target, timeout=60) as c:
        write = c.write("obs", ["Lisbon is the capital of Portugal.", "The Tagus flows through Lisbon.",
                                "Penguins live in Antarctica."], wait_for_graph=True)
        c.write("obs", ["Lisbon is the capital of Portugal."])  # a re-send: written, not created
        for mode in ("dense", "graph", "hybrid"):
            c.query("obs", "Which river flows through Lisbon?", mode=mode, top_k=2)
        with pytest.raises(EpisodeNotFoundError):
            c.get("obs", "nope")
        c.get("obs", write.ids[0])
    m = scrape(port)

    def rpc(method: str, code: str) -> float:
        return m.get(("memserve_rpc_requests_total", (("code", code), ("method", method))), 0.0)

    assert rpc("WriteEpisodes", "OK") == 2 and rpc("Query", "OK") == 3
    assert rpc("GetEpisode", "NOT_FOUND") == 1 and rpc("GetEpisode", "OK") == 1
    assert m[("memserve_rpc_duration_seconds_count", (("code", "OK"), ("method", "Query")))] == 3
    assert m[("memserve_rpc_duration_seconds_bucket", (("code", "OK"), ("le", "+Inf"), ("method", "Query")))] == 3
    # Stage histograms, one series per timings_ms key: every query has embed/dense/total, graph modes ppr.
    for stage, count in (("embed", 3), ("dense", 3), ("total", 3), ("graph_ppr", 2), ("graph_fuse", 1)):
        assert m[("memserve_query_stage_seconds_count", (("stage", stage),))] == count, stage
    assert m[("memserve_episodes_ingested_total", ())] == 3
    assert m[("memserve_episodes_written_total", ())] == 4
    ns = (("namespace", "obs"),)
    assert m[("memserve_namespace_episodes", ns)] == 3 and m[("memserve_index_vectors", ns)] == 3
    assert m[("memserve_graph_phrases", ns)] > 0 and m[("memserve_graph_facts", ns)] > 0
    assert m[("memserve_graph_edges", ns)] > 0 and m[("memserve_index_bytes", ns)] > 0
    assert m[("memserve_extraction_backlog", ns)] == 0 and m[("memserve_extraction_failed", ns)] == 0
    assert ("memserve_summary_backlog", ns) in m and m[("memserve_summary_failed", ())] == 0
    assert m[("memserve_llm_calls_total", ())] == 0  # no LLM configured: present, zero
    assert m[("memserve_llm_tokens_total", (("kind", "prompt"),))] == 0
    assert ("memserve_llm_cost_usd_total", ()) in m
    # Every phrase got its vector from somewhere; the sources are always all present.
    sources = {src: m[("memserve_graph_vectors_total", (("source", src),))] for src in ("span", "cache", "encoded")}
    assert sum(sources.values()) >= m[("memserve_graph_phrases", ns)]
    assert m[("memserve_graph_token_stash_bytes", ())] == 0  # every waiting entry was taken by the worker


def test_json_access_log_has_one_line_per_rpc_with_the_error_request_id(observed):
    proc, _ = observed
    with MemoryClient(proc.target, timeout=60) as c:
        c.write("acc", ["one line"])
        with pytest.raises(EpisodeNotFoundError) as err:
            c.get("acc", "missing-id")
    request_id = err.value.request_id
    assert request_id
    lines = [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
    access = [rec for rec in lines if rec["logger"] == "memserve.access"]
    failed = [rec for rec in access if rec["request_id"] == request_id]
    assert len(failed) == 1, access[-5:]
    assert failed[0] | {"ms": 0} == {**failed[0], "method": "GetEpisode", "namespace": "acc", "code": "NOT_FOUND",
                                      "ms": 0, "level": "INFO"}
    assert isinstance(failed[0]["ms"], float) and failed[0]["ms"] >= 0
    writes = [rec for rec in access if rec["method"] == "WriteEpisodes" and rec["namespace"] == "acc"]
    assert [rec["code"] for rec in writes] == ["OK"] and len(writes[0]["request_id"]) == 16
    # Every line of the server's log is JSON in this mode (start-up lines too).
    assert all(line.startswith("{") for line in proc.log().splitlines() if line.strip())


def test_text_access_log_and_metrics_off_by_default(tmp_path):
    with ServerProcess(tmp_path / "data") as proc, MemoryClient(proc.target, timeout=60) as c:
        c.write("txt", ["hello"])
        log = proc.log()
    line = next(x for x in log.splitlines() if "memserve.access" in x and "WriteEpisodes" in x)
    assert " ns=txt code=OK " in line and " id=" in line and "ms " in line
    assert "metrics on" not in log


def test_a_metrics_port_in_use_is_a_one_line_error(tmp_path):
    with occupied_port() as port:
        proc = subprocess.run([sys.executable, "-m", "memserve", "serve", "--data-dir", str(tmp_path / "d"),
                               "--port", "0", "--set", f"metrics_port={port}",
                               "--set", "embedding_model=/nonexistent/model"],
                              check=False, capture_output=True, text=True, timeout=120)
    error = startup_error(proc)
    assert proc.returncode == 2
    assert "cannot serve metrics" in error and str(port) in error, proc.stderr
    assert "nonexistent" not in proc.stderr


def test_every_series_the_grafana_dashboard_plots_is_served(observed):
    import re

    from tests.support.server import REPO

    proc, port = observed
    with MemoryClient(proc.target, timeout=60) as c:
        c.write("dash", ["a dashboard needs data"])
        c.query("dash", "data", mode="hybrid")
    served = {name for name, _ in scrape(port)}
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "memserve.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bmemserve_[a-z_]+", e)}
    assert len(used) >= 12 and used <= served, sorted(used - served)


def test_calls_refused_by_auth_are_counted_and_logged_with_their_request_id(tmp_path):
    from memserve_client import UnauthenticatedError

    port = free_port()
    with ServerProcess(tmp_path / "data", settings={"api_key": "s3cret", "metrics_port": str(port),
                                                    "log_format": "json"}) as proc:
        with MemoryClient(proc.target, timeout=60) as anonymous, pytest.raises(UnauthenticatedError) as err:
            anonymous.query("locked", "anything")
        with MemoryClient(proc.target, timeout=60, api_key="s3cret") as c:
            c.write("locked", ["with a key"])
        m = scrape(port)
        log = proc.log()
    assert m[("memserve_rpc_requests_total", (("code", "UNAUTHENTICATED"), ("method", "Query")))] == 1
    assert m[("memserve_rpc_requests_total", (("code", "OK"), ("method", "WriteEpisodes")))] == 1
    access = [json.loads(x) for x in log.splitlines() if x.startswith("{") and '"memserve.access"' in x]
    refused = [rec for rec in access if rec["code"] == "UNAUTHENTICATED"]
    assert [(r["method"], r["request_id"]) for r in refused] == [("Query", err.value.request_id)]
