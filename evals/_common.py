"""What both evals share: the command-line options for the server and LLM, ingesting with a progress bar,
timed queries, the LLM reader, and writing results (markdown, JSON, run provenance)."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from memserve_client import EpisodeInput, GraphOptions, MemoryClient

from evals.server import ROOT, EvalServer

MODES = ("dense", "graph", "hybrid", "lexical")
WRITE_BATCH = 64


# --- command line ---------------------------------------------------------------------------------------------

def parse_modes(value: str) -> list[str]:
    modes = [m.strip().lower() for m in value.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise argparse.ArgumentTypeError(f"modes must be a comma-separated subset of {','.join(MODES)}, got {value!r}")
    return list(dict.fromkeys(modes))


def parse_setting(value: str) -> tuple[str, str]:
    name, sep, setting = value.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--set takes NAME=VALUE, got {value!r}")
    return name.strip(), setting


def add_server_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--server", metavar="HOST:PORT",
                       help="use a running memserve instead of starting one on a temporary data directory")
    group.add_argument("--api-key", default=os.environ.get("MEMSERVE_API_KEY"),
                       help="API key of a --server that requires one (default $MEMSERVE_API_KEY)")
    group.add_argument("--embedding-model", metavar="MODEL",
                       help="embedding_model of the started server (default: the server's, bundled MiniLM; "
                            "hash:64 is a fast fake for smoke tests)")
    group.add_argument("--set", dest="settings", action="append", type=parse_setting, default=[],
                       metavar="NAME=VALUE", help="extra setting for the started server (repeatable; "
                                                  "see `python -m memserve settings`)")
    group.add_argument("--modes", type=parse_modes, default=["dense", "graph", "hybrid"],
                       help="comma-separated query modes (default dense,graph,hybrid)")
    group.add_argument("--top-k", type=int, default=10, help="hits per query (at least 10; default 10)")
    group.add_argument("--batch-size", type=int, default=WRITE_BATCH, help="episodes per write (default 64)")
    group.add_argument("--namespace-prefix", default="eval",
                       help="prefix of the namespaces written (a run id is appended)")
    group.add_argument("--keep-namespaces", action="store_true",
                       help="leave the eval's namespaces on a --server instead of deleting them")
    llm = parser.add_argument_group("LLM")
    llm.add_argument("--llm", metavar="MODEL", help="litellm model string: also answer each question from the "
                                                    "top 5 hits and score the answers")
    llm.add_argument("--llm-api-base", metavar="URL", help="base URL of an OpenAI-compatible server for --llm")
    llm.add_argument("--llm-api-key", default=os.environ.get("MEMSERVE_LLM_API_KEY"),
                     help="API key for --llm (default $MEMSERVE_LLM_API_KEY, else the provider's usual variable; "
                          "a started server inherits the environment, not this flag)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    out.add_argument("--quiet", action="store_true", help="no progress bars")


def check_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.top_k < 10:
        parser.error("--top-k must be at least 10 (Recall@10 is reported)")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.server and (args.embedding_model or args.settings):
        parser.error("--embedding-model and --set configure a server this eval starts; they do not apply to --server")


def server_overrides(args: argparse.Namespace, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Settings for a started server: eval defaults, then --embedding-model, then --set (which wins)."""
    settings = {"snapshot_interval_s": "0", **(extra or {})}
    if args.embedding_model:
        settings["embedding_model"] = args.embedding_model
    settings.update(dict(args.settings))
    return settings


@contextmanager
def memserve(args: argparse.Namespace, overrides: dict[str, str]) -> Iterator[tuple[MemoryClient, dict[str, Any]]]:
    """Yield an SDK client and a description of the server it talks to."""
    if args.server:
        with MemoryClient(args.server, api_key=args.api_key) as client:
            client.wait_ready(timeout=30)
            yield client, {"server": args.server}
        return
    with EvalServer(overrides) as target, MemoryClient(target) as client:
        yield client, {"server": "subprocess", "overrides": dict(overrides)}


def server_settings(client: MemoryClient, described: dict[str, Any]) -> dict[str, Any]:
    """What the server reports about itself, beside the overrides this eval gave it."""
    stats = client.stats()
    return {**described, "embedding_model": stats.embedding_model, "embedding_dim": stats.embedding_dim,
            "extractor": stats.extractor, "gpu": stats.gpu}


def namespace_for(*parts: str) -> str:
    """A valid namespace ([A-Za-z0-9][A-Za-z0-9_.-]{0,63}) made from arbitrary parts (dataset names, sample ids)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).lstrip("-_.")
    return name[:64] or "eval"


def run_id() -> str:
    return time.strftime("%Y%m%d%H%M%S") + f"-{os.getpid() % 100000}"


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory (VmRSS) of a process, this one by default, in MB; nan where /proc reports none."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def git_dirty() -> bool | None:
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def progress(total: int, desc: str, unit: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=quiet, dynamic_ncols=True, leave=False)


# --- writing and querying -------------------------------------------------------------------------------------

def ingest(client: MemoryClient, namespace: str, episodes: Sequence[EpisodeInput], *, batch_size: int,
           bar) -> float:
    """Write in batches, waiting for the graph on the last one; returns the seconds it all took."""
    started = time.perf_counter()
    for start in range(0, len(episodes), batch_size):
        batch = list(episodes[start:start + batch_size])
        last = start + batch_size >= len(episodes)
        # The wait drains the namespace's whole extraction backlog, so waiting once at the end is enough.
        client.write(namespace, batch, wait_for_graph=last, timeout=3600 if last else 600)
        bar.update(len(batch))
    return time.perf_counter() - started


@dataclass
class ModeRun:
    """Everything measured for one mode: ranked ids per question, client-side latencies, modes that ran."""

    rankings: list[list[str]] = field(default_factory=list)
    contexts: list[list[str]] = field(default_factory=list)  # texts of the top hits, for the LLM reader
    latencies_s: list[float] = field(default_factory=list)
    ran_as: Counter = field(default_factory=Counter)


def query_all(client: MemoryClient, namespace: str, texts: Sequence[str], modes: Sequence[str], top_k: int,
              bar, keep_texts: int = 5, now: datetime | None = None,
              graph: GraphOptions | None = None) -> dict[str, ModeRun]:
    """Ask every question in every mode, timing each SDK call at the client.

    Modes are interleaved per question, in an order that rotates, so background work on the server (or noise
    on the machine) falls on all modes alike instead of on whichever mode happens to run first.
    """
    runs = {mode: ModeRun() for mode in modes}
    for i, text in enumerate(texts):
        for j in range(len(modes)):
            mode = modes[(i + j) % len(modes)]
            run = runs[mode]
            started = time.perf_counter()
            result = client.query(namespace, text, top_k=top_k, mode=mode, now=now, graph=graph)
            run.latencies_s.append(time.perf_counter() - started)
            run.rankings.append([hit.episode.id for hit in result.hits])
            run.contexts.append([hit.episode.text for hit in result.hits[:keep_texts]])
            run.ran_as[result.mode] += 1
        bar.update(1)
    return runs


def settle(client: MemoryClient, namespace: str, timeout: float = 120.0) -> None:
    """Wait until the server has no extraction or summary backlog for the namespace, then warm up is fair."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = client.stats(namespace).namespaces
        backlog = (stats[0].extraction_backlog if stats else 0) + client.summary(namespace).backlog
        if backlog == 0:
            return
        time.sleep(0.2)
    note(f"warning: {namespace} still has background work after {timeout:.0f}s; latencies may be noisy")


def warm_up(client: MemoryClient, namespace: str, text: str, modes: Sequence[str], top_k: int) -> None:
    """One untimed query per mode, so first-call costs (lazy loads, caches) do not land in p95."""
    for mode in modes:
        client.query(namespace, text, top_k=top_k, mode=mode)


# --- the LLM reader -------------------------------------------------------------------------------------------

READER_SYSTEM = ("You answer questions using only the given passages. Reply with the answer alone: a short "
                 "phrase (an entity, date, number or yes/no), no sentence and no explanation.")


class Reader:
    """Answers a question from retrieved passages through memserve's LLM boundary (litellm underneath).

    Identical prompts are asked once per run (modes often retrieve the same passages).
    """

    def __init__(self, model: str, api_base: str | None = None, api_key: str | None = None) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is first imported
        from memserve.llm import InMemoryLLMCache, LLMClient, LLMSettings

        self.model = model
        self._client = LLMClient(LLMSettings(model=model, api_base=api_base or None,
                                                     api_key=api_key or None, max_tokens=64),
                                 cache=InMemoryLLMCache())

    def answer(self, question: str, passages: Sequence[str]) -> str:
        numbered = "\n\n".join(f"[{i}] {p}" for i, p in enumerate(passages, 1))
        messages = [{"role": "system", "content": READER_SYSTEM},
                    {"role": "user", "content": f"Passages:\n{numbered}\n\nQuestion: {question}\nAnswer:"}]
        return self._client.complete(messages).text.strip().splitlines()[0].strip() if passages else ""

    def usage(self) -> dict[str, float | int]:
        return self._client.usage()


# --- output ---------------------------------------------------------------------------------------------------

def pct(value: float) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def ms(value: float) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _finite(obj: Any) -> Any:
    # JSON has no NaN: a metric that could not be computed is null.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def provenance() -> dict[str, Any]:
    return {"git_sha": git_sha(), "git_dirty": git_dirty(), "python": sys.version.split()[0],
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def note(message: str) -> None:
    print(message, file=sys.stderr)


def drop_namespace(client: MemoryClient, namespace: str, args: argparse.Namespace) -> None:
    if args.server and not args.keep_namespaces:
        client.delete_namespace(namespace)

