"""A real LLM end to end (issue 15): extraction, GRAPH queries, summaries, the fact filter and the response cache
against Gemma 3 270M (base) served by llama.cpp's OpenAI-compatible server, through litellm, as a user would
point memserve at vLLM or Ollama. Skipped with the reason where llama-cpp-python or the model is not installed.

Sizes are tiny on purpose (a 270M model on 2 shared cores answers in seconds, not milliseconds); only the model
is real here, and every wait is on state (backlogs, graph jobs), bounded only to catch a stuck worker.
"""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from memserve_client import MemoryClient
from prometheus_client.parser import text_string_to_metric_families

from memserve.engine.summary import ExtractiveSummariser
from memserve.extract import normalize_phrase
from tests.support.gates import wait_until
from tests.support.server import ServerProcess

# A 270M model on 2 shared cores: one answer takes from seconds (idle machine) to a minute or more (load 19).
# The bounds only catch a stuck model; nothing here waits on time.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
RPC_TIMEOUT = 1200.0  # a write with wait_for_graph waits for every model call of its batch

PASSAGES = [
    "Xawery Żuławski\nXawery Żuławski is a Polish film director. He is the son of the director Andrzej Żuławski "
    "and the actress Małgorzata Braunek.",
    "Andrzej Żuławski\nAndrzej Żuławski was a Polish film director, born in Lwów in 1940. He directed "
    "the film Possession in 1981.",
]
TURNS = ["Maria said she is moving to Lisbon in May for a new job at a bank.",
         "Tom asked whether Maria will keep her flat in Berlin.",
         "Maria answered that she will rent the Berlin flat to her cousin Jonas."]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _repairs(port: int) -> dict[str, float]:
    """memserve_llm_output_repairs by kind, from the server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {s.labels["kind"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "memserve_llm_output_repairs_total"}


@contextmanager
def memserve_on_the_model(local_llm, data_dir: Path, **settings: str) -> Iterator[tuple[MemoryClient, int]]:
    """A memserve pointed at the local model, with /metrics on a free port: (client, metrics port)."""
    port = _free_port()
    with ServerProcess(data_dir, settings={**local_llm.settings, **settings, "metrics_port": str(port)}) as proc, \
            MemoryClient(proc.target, timeout=RPC_TIMEOUT) as client:
        yield client, port


@pytest.fixture(scope="module")
def served(local_llm, tmp_path_factory):
    # Summaries off here (their calls would mix with extraction's in the counts); the summary test has its own.
    with memserve_on_the_model(local_llm, tmp_path_factory.mktemp("llm") / "data", extractor="llm",
                               summarizer="extractive") as served:
        yield served


def test_extraction_builds_a_graph_from_the_models_own_output_and_the_cache_replays_it(local_llm, served):
    client, _ = served
    before = local_llm.requests()
    client.write("kg", PASSAGES, wait_for_graph=True)
    calls = local_llm.requests() - before
    assert calls == 2 * len(PASSAGES)  # NER + triples per passage, each answered by the model

    stats = client.stats("kg")
    assert stats.extractor.startswith("llm-openie:") and stats.llm.calls >= calls
    (ns,) = stats.namespaces
    assert ns.episode_count == len(PASSAGES)
    assert ns.phrase_count > 0 and ns.fact_count > 0  # the model's triples made it into the graph
    data = json.loads(client.export_graph("kg", format="node-link").data)
    phrases = [n["text"] for n in data["nodes"] if n.get("kind") == "phrase"]
    words = set(normalize_phrase(" ".join(PASSAGES)).split())
    assert phrases
    for phrase in phrases:  # grounded: nothing the model copied from the prompt's example, or made up
        assert set(normalize_phrase(phrase).split()) <= words, phrase

    hits = client.query("kg", "Who is the father of Xawery Żuławski?", top_k=3, mode="graph").hits
    assert hits and all(h.episode.text in PASSAGES for h in hits)

    # The DuckDB response cache: the same texts again (another namespace) make no model calls.
    settled = local_llm.requests()
    client.write("kg-again", PASSAGES, wait_for_graph=True)
    assert local_llm.requests() == settled
    assert client.stats("kg-again").namespaces[0].fact_count == ns.fact_count


def test_the_fact_filter_runs_with_the_model(local_llm, served):
    client, _ = served
    client.write("ff", PASSAGES, wait_for_graph=True)
    before = local_llm.requests()
    hits = client.query("ff", "Which film did the father of Xawery Żuławski direct?", top_k=2, mode="graph").hits
    assert local_llm.requests() > before  # recognition memory asked the model about the candidate facts
    assert hits and {h.episode.text for h in hits} <= set(PASSAGES)


@pytest.fixture(scope="module")
def summarising(local_llm, tmp_path_factory):
    with memserve_on_the_model(local_llm, tmp_path_factory.mktemp("sum") / "data", extractor="none",
                               summarizer="llm") as served:
        yield served


def test_summaries_come_from_the_model_and_fall_back_to_extractive_on_failure(local_llm, summarising):
    client, port = summarising
    name = "conv-" + uuid.uuid4().hex[:8]
    before = local_llm.requests()
    client.write(name, TURNS)
    wait_until(lambda: client.summary(name).backlog == 0, "the summary backlog to drain", bound=RPC_TIMEOUT)
    summary = client.summary(name)
    assert summary.episode_count == len(TURNS) and summary.summary
    assert local_llm.requests() > before
    extractive = ExtractiveSummariser()
    folded = ""
    for turn in TURNS:
        folded = extractive.update(folded, [turn])
    assert summary.summary != folded  # written by the model, not the extractive fallback

    fallbacks = _repairs(port).get("summary_fallback", 0)
    local_llm.proxy.failing.set()  # the model is down: every completion gets a 503
    try:
        # A turn the model has not summarised: the same prompt would be answered from the DuckDB response cache
        # without reaching the (failing) model.
        other, turn = "conv-" + uuid.uuid4().hex[:8], "Jonas said he will move into the Berlin flat in June."
        client.write(other, [turn])
        wait_until(lambda: client.summary(other).backlog == 0, "the summary backlog to drain while the model is down",
                   bound=RPC_TIMEOUT)
        assert client.summary(other).summary == extractive.update("", [turn])
        assert _repairs(port).get("summary_fallback", 0) > fallbacks
    finally:
        local_llm.proxy.failing.clear()


def test_malformed_model_output_is_repaired_or_dropped_and_counted(local_llm, tmp_path):
    # Answers cut off after a few tokens: half-closed arrays and strings, from the real model.
    with memserve_on_the_model(local_llm, tmp_path / "data", llm_max_tokens="12", extractor="llm",
                               summarizer="extractive") as (client, port):
        client.write("cut", PASSAGES, wait_for_graph=True)
        assert client.stats("cut").namespaces[0].episode_count == len(PASSAGES)  # nothing lost, no worker died
        repairs = _repairs(port)
        assert repairs.get("repaired_json", 0) + repairs.get("unparseable_output", 0) >= 2, repairs
        assert sorted(e.text for e in client.list("cut").items) == sorted(PASSAGES)
