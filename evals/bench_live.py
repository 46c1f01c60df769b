"""Fast while agents write: query latency under ingest, concurrency, the agent loop, GetStats and start-up.

    python evals/bench_live.py --out evals/results/bench_live.json --plot evals/results/bench_live.png
    python evals/bench_live.py --quick --only idle,cross_ingest     # smoke run

Every figure is measured on a real ``memserve serve`` subprocess (memserve.testing.ServerProcess) through the
SDK, each section on a fresh temporary data directory, and is reported as a RATIO against a floor measured in
the same run (idle latency, one client, steady queries, the bare model load), because absolute milliseconds
depend on the machine and on whatever else runs on it (a 2-core box shared with test runs, typically).

Sections (``--only`` takes a comma-separated subset; ``query_ingest`` stands for the first three):

* ``idle``, ``cross_ingest``, ``self_ingest`` — one server, namespace Q pre-filled with LoCoMo turns (graph on,
  default extractor); DENSE and HYBRID p50/p95 over a fixed list of LoCoMo questions (a) idle, (b) while another
  client writes 256-episode batches into another namespace, (c) while Q itself ingests batches (graph on).
  Target: p95 under ingest ≤ 2 × idle p95. Per-stage p50/p95 from the server's ``timings_ms``.
* ``concurrency`` — 1, 4, 16 query threads, each with its own SDK client (own channel: separate agents), for a
  fixed duration; qps and p50. Targets: qps16 / qps1 ≥ 2.5, p50_16 / p50_1 ≤ 3.
* ``agent_loop`` — write one turn (wait_for_graph=True), then a HYBRID query; N times; the first query after each
  write against the same questions asked again without writes. Target ≤ 1.2.
* ``stats`` — a 2WikiMultihopQA graph namespace; GetStats p50/p95 (target ≤ 5 ms), and query p95 while a thread
  polls GetStats in a loop against idle.
* ``startup`` — time to SERVING (the port file is written once health is SERVING) for a dense-only namespace of
  ``--startup-episodes`` episodes (extractor none) with and without the index snapshot (indexes/*.faiss), and for
  the 2Wiki graph namespace (reused from ``stats`` when that ran), next to the floor: a subprocess that imports
  torch and sentence-transformers, loads the bundled model as memserve/embed/sentence_transformer.py does and
  encodes one sentence (each start is paired with its own floor run just before it). The first query after each
  start is timed too (what the server loads lazily lands there). Target: start-up − floor ≤ 3 s with a snapshot.

To measure other code (e.g. a git worktree of an older commit) put it first on PYTHONPATH; the server
subprocess runs from the folder holding the imported ``memserve`` package, and the JSON records which.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The code under test comes from PYTHONPATH when given (a worktree of another commit); this checkout otherwise.
sys.path.append(str(HERE.parent))

from memserve_client import EpisodeInput, MemoryClient  # noqa: E402

import memserve  # noqa: E402
from evals.synthetic import NAMES, turn  # noqa: E402
from memserve.testing import ServerProcess  # noqa: E402

CODE_ROOT = Path(memserve.__file__).resolve().parents[1]
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
SECTIONS = ("idle", "cross_ingest", "self_ingest", "concurrency", "agent_loop", "stats", "startup")
MODES = ("dense", "hybrid")
TARGETS = {"ingest_p95_ratio": 2.0, "qps16_over_qps1": 2.5, "p50_16_over_p50_1": 3.0, "agent_loop_ratio": 1.2,
           "stats_p95_ms": 5.0, "startup_over_floor_s": 3.0, "stats_poll_p95_ratio": 2.0}


# --- small helpers --------------------------------------------------------------------------------------------

def note(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pctl(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def r2(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(float(x), nd)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def summary(lat_ms: Sequence[float]) -> dict[str, Any]:
    return {"n": len(lat_ms), "p50_ms": r2(pctl(lat_ms, 0.5)), "p95_ms": r2(pctl(lat_ms, 0.95)),
            "max_ms": r2(max(lat_ms) if lat_ms else None)}


def stage_summary(timings: Sequence[dict[str, float]]) -> dict[str, dict[str, float | None]]:
    keys = sorted({k for t in timings for k in t})
    return {k: {"p50_ms": r2(pctl([t[k] for t in timings if k in t], 0.5)),
                "p95_ms": r2(pctl([t[k] for t in timings if k in t], 0.95))} for k in keys}


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def git(*cmd: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(CODE_ROOT), *cmd], capture_output=True, text=True, timeout=20)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        pass
    versions = {}
    for mod in ("torch", "sentence_transformers", "faiss", "grpc", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - informative only
            versions[mod] = None
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "mem_total": mem, "platform": platform.platform(),
            "python": sys.version.split()[0], "versions": versions, "loadavg_start": loadavg()}


def server_code_check(env: dict[str, str]) -> str:
    """Which memserve a server subprocess imports: same interpreter, cwd and environment as ServerProcess."""
    full = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", "import memserve; print(memserve.__file__)"], cwd=CODE_ROOT,
                         env=full, capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or out.stderr.strip()[-300:]


# --- data -----------------------------------------------------------------------------------------------------



class Synthetic:
    """An endless, deterministic stream of unique chat-like turns (content-derived ids never collide)."""

    def __init__(self, tag: str, seed: int = 7) -> None:
        self.tag, self.rng, self.i = tag, random.Random(seed), 0
        self.lock = threading.Lock()

    def take(self, n: int) -> list[EpisodeInput]:
        out = []
        with self.lock:
            for _ in range(n):
                a, b = self.rng.sample(NAMES, 2)
                text = turn(self.rng, a, b)
                out.append(EpisodeInput(f"{a}: {text} ({self.tag} {self.i})", session_id=f"{self.tag}-s{self.i % 40}",
                                        speaker=a))
                self.i += 1
        return out


class Data:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._locomo = None
        self._wiki = None

    def locomo(self):
        if self._locomo is None:
            from evals.datasets import load_json, parse_locomo

            convs = parse_locomo(load_json(self.folder / "locomo" / "locomo_dev.json"))
            turns = [(c.sample_id, t) for c in convs for t in c.turns]
            questions = [q.question for c in convs for q in c.questions]
            self._locomo = (turns, questions)
        return self._locomo

    def locomo_episodes(self, start: int, n: int) -> list[EpisodeInput]:
        turns, _ = self.locomo()
        return [EpisodeInput(t.text, id=f"{cid}-{t.dia_id}", session_id=f"{cid}-{t.session}", speaker=t.speaker,
                             event_time=t.event_time) for cid, t in turns[start:start + n]]

    def locomo_questions(self, n: int) -> list[str]:
        _, qs = self.locomo()
        # A fixed, spread-out sample (every k-th), the same in every run.
        step = max(1, len(qs) // n)
        return qs[::step][:n]

    def wiki(self):
        if self._wiki is None:
            from evals.datasets import load_json, parse_corpus

            base = self.folder / "2wikimultihopqa"
            corpus = parse_corpus(load_json(base / "2wikimultihopqa_corpus.json"), "2wiki corpus")
            questions = [r["question"] for r in load_json(base / "2wikimultihopqa_dev.json")]
            self._wiki = (corpus.passages, questions)
        return self._wiki


# --- server ---------------------------------------------------------------------------------------------------

class Live:
    """A server subprocess plus the settings it was built with, on a data dir that may outlive it."""

    def __init__(self, args, settings: dict[str, str], data_dir: Path | None = None) -> None:
        self.args = args
        self.settings = {"snapshot_interval_s": "0", **settings}
        if args.embedding_model:
            self.settings["embedding_model"] = args.embedding_model
        for item in args.set:
            k, _, v = item.partition("=")
            self.settings[k] = v
        self.own = data_dir is None
        self.root = Path(tempfile.mkdtemp(prefix="bench-live-")) if data_dir is None else data_dir.parent
        self.data_dir = data_dir or self.root / "data"
        self.server: ServerProcess | None = None
        self.start_seconds = 0.0

    def start(self) -> str:
        self.server = ServerProcess(self.data_dir, settings=self.settings, start_timeout=600)
        t = time.perf_counter()
        self.server.start()
        self.start_seconds = time.perf_counter() - t
        return self.server.target

    def stop(self) -> int:
        code = self.server.stop(120) if self.server and self.server.proc else 0
        if code != 0:
            note(f"warning: server exited with {code}:\n{self.server.log_tail(30)}")
        return code

    def cleanup(self) -> None:
        if self.own:
            shutil.rmtree(self.root, ignore_errors=True)


def client(target: str) -> MemoryClient:
    return MemoryClient(target, timeout=600)


def settle(c: MemoryClient, namespaces: Sequence[str], timeout: float = 900.0) -> float:
    """Wait until the namespaces have no extraction or summary backlog; returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        backlog = 0
        for ns in namespaces:
            st = c.stats(ns).namespaces
            backlog += (st[0].extraction_backlog if st else 0)
            try:
                backlog += c.summary(ns).backlog
            except Exception:  # noqa: BLE001 - summarizer off
                pass
        if backlog == 0:
            return time.monotonic() - t0
        time.sleep(0.25)
    note(f"warning: backlog left after {timeout:.0f}s on {namespaces}")
    return time.monotonic() - t0


def fill(c: MemoryClient, ns: str, episodes: Sequence[EpisodeInput], batch: int, desc: str, quiet: bool) -> float:
    from tqdm import tqdm

    t0 = time.perf_counter()
    with tqdm(total=len(episodes), desc=desc, unit="ep", file=sys.stderr, disable=quiet, leave=False) as bar:
        for s in range(0, len(episodes), batch):
            chunk = list(episodes[s:s + batch])
            c.write(ns, chunk, wait_for_graph=s + batch >= len(episodes), timeout=3600)
            bar.update(len(chunk))
    return time.perf_counter() - t0


def prefill_q(c: MemoryClient, args, data: Data, questions: Sequence[str], modes: Sequence[str]) -> float:
    """Namespace Q: the first ``args.prefill`` LoCoMo turns, graph caught up, then 10 warm-up queries per mode;
    returns the seconds the fill took."""
    seconds = fill(c, "Q", data.locomo_episodes(0, args.prefill), 64, "prefill Q", args.quiet)
    settle(c, ["Q"])
    for q in questions[:10]:
        for m in modes:
            c.query("Q", q, top_k=10, mode=m)
    return seconds


def timed_queries(c: MemoryClient, ns: str, questions: Sequence[str], modes: Sequence[str], n: int,
                  quiet: bool, desc: str, stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """n questions (cycled) in each mode, modes interleaved in a rotating order; latency at the client."""
    from tqdm import tqdm

    lat = {m: [] for m in modes}
    stages = {m: [] for m in modes}
    ran = {m: {} for m in modes}
    for i in tqdm(range(n), desc=desc, file=sys.stderr, disable=quiet, leave=False):
        if stop is not None and stop():
            break
        q = questions[i % len(questions)]
        for j in range(len(modes)):
            m = modes[(i + j) % len(modes)]
            t = time.perf_counter()
            r = c.query(ns, q, top_k=10, mode=m)
            lat[m].append((time.perf_counter() - t) * 1000)
            stages[m].append(dict(r.timings_ms))
            ran[m][r.mode] = ran[m].get(r.mode, 0) + 1
    return {m: {**summary(lat[m]), "stages": stage_summary(stages[m]), "ran_as": ran[m]} for m in modes}


class Writer(threading.Thread):
    """Writes batches back to back into one namespace until stopped; counts episodes and batch latencies."""

    def __init__(self, target: str, ns: str, source: Callable[[int], list[EpisodeInput]], batch: int,
                 wait_for_graph: bool) -> None:
        super().__init__(daemon=True)
        self.target, self.ns, self.source, self.batch, self.wait = target, ns, source, batch, wait_for_graph
        self.stop_event = threading.Event()
        self.started_write = threading.Event()
        self.episodes = 0
        self.batch_s: list[float] = []
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        t0 = time.perf_counter()
        try:
            with client(self.target) as c:
                while not self.stop_event.is_set():
                    eps = self.source(self.batch)
                    self.started_write.set()
                    t = time.perf_counter()
                    c.write(self.ns, eps, wait_for_graph=self.wait, timeout=3600)
                    self.batch_s.append(time.perf_counter() - t)
                    self.episodes += len(eps)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc
            self.started_write.set()
        self.seconds = time.perf_counter() - t0

    def finish(self) -> dict[str, Any]:
        self.stop_event.set()
        self.join()
        if self.error:
            raise RuntimeError(f"writer into {self.ns} failed: {self.error!r}")
        return {"namespace": self.ns, "batch": self.batch, "wait_for_graph": self.wait, "episodes": self.episodes,
                "seconds": r2(self.seconds), "episodes_per_s": r2(self.episodes / self.seconds if self.seconds else 0),
                "batch_p50_s": r2(pctl(self.batch_s, 0.5), 3), "batch_max_s": r2(max(self.batch_s, default=0), 3)}


# --- sections -------------------------------------------------------------------------------------------------

def sec_query_ingest(args, data: Data, which: set[str]) -> dict[str, Any]:
    """Sections idle, cross_ingest, self_ingest on one server (Q is pre-filled once)."""
    live = Live(args, {})
    out: dict[str, Any] = {"prefill_turns": args.prefill, "queries_per_mode": args.queries,
                           "cross_batch": args.cross_batch, "self_batch": args.self_batch}
    questions = data.locomo_questions(args.n_questions)
    out["n_questions"] = len(questions)
    try:
        target = live.start()
        with client(target) as c:
            out["prefill_s"] = r2(prefill_q(c, args, data, questions, MODES))
            st = c.stats("Q").namespaces[0]
            out["q_stats_before"] = {"episodes": st.episode_count, "phrases": st.phrase_count, "facts": st.fact_count,
                                     "edges": st.graph_edge_count}
            if "idle" in which:
                note("idle queries")
                out["idle"] = timed_queries(c, "Q", questions, MODES, args.queries, args.quiet, "idle")
            if "cross_ingest" in which:
                note("queries while another namespace ingests")
                w = Writer(target, "W", Synthetic("bulk").take, args.cross_batch, wait_for_graph=True)
                w.start()
                w.started_write.wait(60)
                time.sleep(0.5)  # the first batch is being encoded
                res = timed_queries(c, "Q", questions, MODES, args.queries, args.quiet, "cross ingest")
                res["writer"] = w.finish()
                res["settle_s"] = r2(settle(c, ["Q", "W"]))
                out["cross_ingest"] = res
            if "self_ingest" in which:
                note("queries while Q itself ingests (graph on)")
                turns, _ = data.locomo()
                rest = data.locomo_episodes(args.prefill, len(turns))
                synth = Synthetic("selfq")
                lock = threading.Lock()

                def source(n: int) -> list[EpisodeInput]:
                    with lock:
                        take = rest[:n]
                        del rest[:n]
                    return take + synth.take(n - len(take))

                w = Writer(target, "Q", source, args.self_batch, wait_for_graph=True)
                w.start()
                w.started_write.wait(60)
                time.sleep(0.3)
                res = timed_queries(c, "Q", questions, MODES, args.queries, args.quiet, "self ingest")
                res["writer"] = w.finish()
                res["settle_s"] = r2(settle(c, ["Q"]))
                st = c.stats("Q").namespaces[0]
                res["q_stats_after"] = {"episodes": st.episode_count, "phrases": st.phrase_count,
                                        "facts": st.fact_count, "edges": st.graph_edge_count}
                out["self_ingest"] = res
        live.stop()
    finally:
        if live.server:
            live.server.kill()
        live.cleanup()
    if "idle" in out:
        for scen in ("cross_ingest", "self_ingest"):
            if scen in out:
                out[scen]["p95_ratio_to_idle"] = {m: ratio(out[scen][m]["p95_ms"], out["idle"][m]["p95_ms"])
                                                  for m in MODES}
                out[scen]["p50_ratio_to_idle"] = {m: ratio(out[scen][m]["p50_ms"], out["idle"][m]["p50_ms"])
                                                  for m in MODES}
    return out


def sec_concurrency(args, data: Data) -> dict[str, Any]:
    live = Live(args, {})
    questions = data.locomo_questions(args.n_questions)
    levels = [int(x) for x in args.clients.split(",")]
    out: dict[str, Any] = {"prefill_turns": args.prefill, "duration_s": args.duration, "levels": levels,
                           "client_model": "one SDK client (own channel) per thread", "modes": {}}
    try:
        target = live.start()
        with client(target) as c:
            prefill_q(c, args, data, questions, MODES)
        for mode in MODES:
            rows = {}
            for n in levels:
                note(f"concurrency {mode} x{n}")
                clients = [client(target) for _ in range(n)]
                for i, cl in enumerate(clients):  # connect and warm each channel
                    cl.query("Q", questions[i % len(questions)], top_k=10, mode=mode)
                lats: list[list[float]] = [[] for _ in range(n)]
                errors: list[BaseException] = []
                barrier = threading.Barrier(n + 1)
                deadline = [0.0]

                def work(i: int) -> None:
                    k = i * 7
                    barrier.wait()  # noqa: B023 - joined in this iteration
                    try:
                        while time.perf_counter() < deadline[0]:  # noqa: B023 - joined in this iteration
                            t = time.perf_counter()
                            clients[i].query("Q", questions[k % len(questions)], top_k=10, mode=mode)  # noqa: B023 - joined in this iteration
                            lats[i].append((time.perf_counter() - t) * 1000)  # noqa: B023 - joined in this iteration
                            k += 1
                    except BaseException as exc:  # noqa: BLE001
                        errors.append(exc)  # noqa: B023 - joined in this iteration

                threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
                for t in threads:
                    t.start()
                deadline[0] = time.perf_counter() + args.duration
                t0 = time.perf_counter()
                barrier.wait()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - t0
                for cl in clients:
                    cl.close()
                if errors:
                    raise RuntimeError(f"query thread failed: {errors[0]!r}")
                flat = [x for per in lats for x in per]
                rows[str(n)] = {**summary(flat), "queries": len(flat), "qps": r2(len(flat) / wall)}
            lo, hi = str(levels[0]), str(levels[-1])
            out["modes"][mode] = {"levels": rows,
                                  f"qps{hi}_over_qps{lo}": ratio(rows[hi]["qps"], rows[lo]["qps"]),
                                  f"p50_{hi}_over_p50_{lo}": ratio(rows[hi]["p50_ms"], rows[lo]["p50_ms"])}
        live.stop()
    finally:
        if live.server:
            live.server.kill()
        live.cleanup()
    return out


def sec_agent_loop(args, data: Data) -> dict[str, Any]:
    live = Live(args, {})
    questions = data.locomo_questions(args.n_questions)
    n = args.agent_turns
    out: dict[str, Any] = {"prefill_turns": args.prefill, "turns": n, "mode": "hybrid"}
    try:
        target = live.start()
        with client(target) as c:
            prefill_q(c, args, data, questions, ["hybrid"])
            new = data.locomo_episodes(args.prefill, n)
            new += Synthetic("agent").take(n - len(new))
            write_s, after, after_stages = [], [], []
            note(f"agent loop: {n} x (write 1 turn, wait_for_graph; hybrid query)")
            for i in range(n):
                t = time.perf_counter()
                c.write("Q", [new[i]], wait_for_graph=True)
                write_s.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                r = c.query("Q", questions[i % len(questions)], top_k=10, mode="hybrid")
                after.append((time.perf_counter() - t) * 1000)
                after_stages.append(dict(r.timings_ms))
            settle(c, ["Q"])
            for i in range(n):  # one warm pass over the same questions, then the measured steady pass
                c.query("Q", questions[i % len(questions)], top_k=10, mode="hybrid")
            steady, steady_stages = [], []
            for _rep in range(args.steady_reps):
                for i in range(n):
                    t = time.perf_counter()
                    r = c.query("Q", questions[i % len(questions)], top_k=10, mode="hybrid")
                    steady.append((time.perf_counter() - t) * 1000)
                    steady_stages.append(dict(r.timings_ms))
        live.stop()
    finally:
        if live.server:
            live.server.kill()
        live.cleanup()
    out["write_wait_graph"] = summary(write_s)
    out["after_write"] = {**summary(after), "stages": stage_summary(after_stages)}
    out["steady"] = {**summary(steady), "stages": stage_summary(steady_stages)}
    out["p50_ratio"] = ratio(out["after_write"]["p50_ms"], out["steady"]["p50_ms"])
    out["p95_ratio"] = ratio(out["after_write"]["p95_ms"], out["steady"]["p95_ms"])
    return out


def build_wiki(args, data: Data, live: Live, c: MemoryClient) -> dict[str, Any]:
    passages, _ = data.wiki()
    passages = passages[:args.wiki_passages] if args.wiki_passages else passages
    eps = [EpisodeInput(p.text, id=p.id) for p in passages]
    note(f"ingesting {len(eps)} 2Wiki passages (graph on)")
    secs = fill(c, "wiki", eps, 64, "2wiki", args.quiet)
    settle(c, ["wiki"])
    st = c.stats("wiki").namespaces[0]
    return {"passages": len(eps), "corpus_passages": len(data.wiki()[0]), "ingest_s": r2(secs),
            "passages_per_s": r2(len(eps) / secs), "phrases": st.phrase_count, "facts": st.fact_count,
            "edges": st.graph_edge_count}


def sec_stats(args, data: Data, keep: dict[str, Any]) -> dict[str, Any]:
    live = Live(args, {})
    out: dict[str, Any] = {}
    _, wq = data.wiki()
    questions = wq[:args.n_questions]
    try:
        target = live.start()
        with client(target) as c:
            out["namespace"] = build_wiki(args, data, live, c)
            for fn_name, call in (("stats_namespace", lambda: c.stats("wiki")), ("stats_all", lambda: c.stats())):
                for _ in range(10):
                    call()
                lat = []
                for _ in range(args.stats_calls):
                    t = time.perf_counter()
                    call()
                    lat.append((time.perf_counter() - t) * 1000)
                out[fn_name] = summary(lat)
            for q in questions[:10]:
                c.query("wiki", q, top_k=10, mode="hybrid")
            note("2wiki queries idle, then while a thread polls GetStats")
            out["query_idle"] = timed_queries(c, "wiki", questions, MODES, args.queries, args.quiet, "wiki idle")
            stop = threading.Event()
            polls: list[float] = []

            def poll() -> None:
                with client(target) as pc:
                    while not stop.is_set():
                        t = time.perf_counter()
                        pc.stats("wiki")
                        polls.append((time.perf_counter() - t) * 1000)

            th = threading.Thread(target=poll, daemon=True)
            th.start()
            time.sleep(0.2)
            res = timed_queries(c, "wiki", questions, MODES, args.queries, args.quiet, "wiki + stats poll")
            stop.set()
            th.join()
            res["stats_polls"] = {**summary(polls), "calls": len(polls)}
            out["query_while_polling"] = res
            out["p95_ratio_polling"] = {m: ratio(res[m]["p95_ms"], out["query_idle"][m]["p95_ms"]) for m in MODES}
        live.stop()
        if "startup" in args.sections:  # the start-up section restarts this very namespace
            keep["wiki_live"] = live
            keep["wiki_info"] = out["namespace"]
        else:
            live.cleanup()
    except BaseException:
        if live.server:
            live.server.kill()
        live.cleanup()
        raise
    return out


def model_floor(args) -> float:
    """Wall time of a bare process that imports torch + sentence-transformers and loads the model the server
    loads (resolve_model_path + SentenceTransformer on the server's device choice) and encodes one sentence."""
    model = args.embedding_model or "bundled:all-MiniLM-L6-v2"
    code = ("import torch, sentence_transformers\n"
            "from sentence_transformers import SentenceTransformer\n"
            "from memserve.embed.sentence_transformer import resolve_model_path\n"
            f"m = SentenceTransformer(resolve_model_path({model!r}), "
            "device='cuda' if torch.cuda.is_available() else 'cpu')\n"
            "m.encode(['warm up'], normalize_embeddings=True)\n")
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **os.environ}
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], cwd=CODE_ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"floor process failed: {p.stderr[-2000:]}")
    return time.perf_counter() - t


def timed_restarts(live: Live, reps: int, first_query: Callable[[MemoryClient], None] | None,
                   delete_snapshot: bool) -> dict[str, Any]:
    """Each start right after its own floor run, so a loaded machine weighs on both alike; over_floor_s is the
    median of the paired differences."""
    starts, firsts, floors = [], [], []
    for _ in range(reps):
        floors.append(model_floor(live.args))
        if delete_snapshot:
            for p in (live.data_dir / "indexes").glob("*.faiss*"):
                p.unlink()
        snaps = sorted(p.name for p in (live.data_dir / "indexes").glob("*.faiss"))
        target = live.start()
        starts.append(live.start_seconds)
        if first_query is not None:
            with client(target) as c:
                t = time.perf_counter()
                first_query(c)
                firsts.append((time.perf_counter() - t) * 1000)
        live.stop()
    res = {"runs_s": [r2(x, 3) for x in starts], "median_s": r2(statistics.median(starts), 3),
           "floor_runs_s": [r2(x, 3) for x in floors], "floor_median_s": r2(statistics.median(floors), 3),
           "over_floor_s": r2(statistics.median([a - b for a, b in zip(starts, floors, strict=True)]), 3),
           "snapshot_files": snaps}
    if firsts:
        res["first_query_ms"] = [r2(x) for x in firsts]
    return res


def sec_startup(args, data: Data, keep: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"reps": args.startup_reps}
    note("start-up floor: bare model load")
    model_floor(args)  # warms the page cache for the model files, as a server's first start would
    runs = [model_floor(args) for _ in range(args.startup_reps)]
    out["floor"] = {"runs_s": [r2(x, 3) for x in runs], "median_s": r2(statistics.median(runs), 3),
                    "note": "every start below is paired with its own floor run just before it"}
    # An empty data dir: the server's own fixed cost next to the bare model load.
    empty = Live(args, {"extractor": "none", "summarizer": "none"})
    try:
        out["empty"] = timed_restarts(empty, args.startup_reps, None, False)
    finally:
        empty.cleanup()
    # (a) a large dense-only namespace.
    dense = Live(args, {"extractor": "none", "summarizer": "none"})
    try:
        target = dense.start()
        n = args.startup_episodes
        note(f"writing {n} dense-only episodes")
        with client(target) as c:
            synth = Synthetic("boot", seed=3)
            from tqdm import tqdm

            t0 = time.perf_counter()
            with tqdm(total=n, desc="dense fill", unit="ep", file=sys.stderr, disable=args.quiet, leave=False) as bar:
                for s in range(0, n, 500):
                    k = min(500, n - s)
                    c.write("dense", synth.take(k), timeout=3600)
                    bar.update(k)
            fill_s = time.perf_counter() - t0
            st = c.stats("dense").namespaces[0]
        dense.stop()
        out["dense"] = {"episodes": n, "fill_s": r2(fill_s), "index_type": st.index_type,
                        "index_bytes": st.index_bytes}
        q = "Who borrowed the vintage camera in Lisbon?"
        def fq(cl):
            return (cl.query("dense", q, top_k=10, mode="dense"))
        note("dense restarts with snapshot")
        out["dense"]["with_snapshot"] = timed_restarts(dense, args.startup_reps, fq, False)
        note("dense restarts without snapshot")
        out["dense"]["without_snapshot"] = timed_restarts(dense, args.startup_reps, fq, True)
    finally:
        if dense.server:
            dense.server.kill()
        dense.cleanup()
    # (b) the 2Wiki graph namespace.
    wiki: Live | None = keep.pop("wiki_live", None)
    try:
        if wiki is None:
            wiki = Live(args, {})
            target = wiki.start()
            with client(target) as c:
                info = build_wiki(args, data, wiki, c)
            wiki.stop()
        else:
            info = keep.get("wiki_info", {})
        _, wq = data.wiki()
        def fq(cl):
            return (cl.query("wiki", wq[0], top_k=10, mode="hybrid"))
        note("2wiki restarts with snapshot")
        out["wiki"] = {**info, "with_snapshot": timed_restarts(wiki, args.startup_reps, fq, False)}
        note("2wiki restarts without snapshot")
        out["wiki"]["without_snapshot"] = timed_restarts(wiki, args.startup_reps, fq, True)
    finally:
        if wiki is not None:
            if wiki.server:
                wiki.server.kill()
            wiki.cleanup()
    return out


# --- output ---------------------------------------------------------------------------------------------------

def flat_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, ok) rows for the console and the README."""
    rows: list[tuple[str, str, str, str]] = []
    s = res["sections"]

    def add(name: str, value: Any, target: str = "", ok: bool | None = None) -> None:
        rows.append((name, "—" if value is None else str(value), target,
                     "" if ok is None else ("yes" if ok else "NO")))

    qi = s.get("query_ingest", {})
    for m in MODES:
        if "idle" in qi:
            i = qi["idle"][m]
            add(f"{m}: idle p50 / p95 ms", f"{i['p50_ms']} / {i['p95_ms']}")
            st = i["stages"]
            add(f"{m}: idle stages p50 ms", ", ".join(f"{k} {v['p50_ms']}" for k, v in st.items()))
        for scen, label in (("cross_ingest", "other namespace ingesting"), ("self_ingest", "Q itself ingesting")):
            if scen in qi:
                x = qi[scen]
                rr = x.get("p95_ratio_to_idle", {}).get(m)
                add(f"{m}: {label} p50 / p95 ms", f"{x[m]['p50_ms']} / {x[m]['p95_ms']}")
                add(f"{m}: {label} p95 / idle p95", rr, "≤ 2", None if rr is None else rr <= 2)
                add(f"{m}: {label} stages p50 ms", ", ".join(f"{k} {v['p50_ms']}" for k, v in x[m]["stages"].items()))
    for scen in ("cross_ingest", "self_ingest"):
        if scen in qi:
            w = qi[scen]["writer"]
            add(f"writer during {scen}", f"{w['episodes']} eps in {w['seconds']} s ({w['episodes_per_s']}/s, "
                                         f"batch {w['batch']}, p50 {w['batch_p50_s']} s)")
    cc = s.get("concurrency")
    if cc:
        levels = [str(x) for x in cc["levels"]]
        for m, v in cc["modes"].items():
            add(f"{m}: qps at {'/'.join(levels)} clients", " / ".join(str(v["levels"][n]["qps"]) for n in levels))
            add(f"{m}: p50 ms at {'/'.join(levels)} clients",
                " / ".join(str(v["levels"][n]["p50_ms"]) for n in levels))
            q = v[f"qps{levels[-1]}_over_qps{levels[0]}"]
            p = v[f"p50_{levels[-1]}_over_p50_{levels[0]}"]
            add(f"{m}: qps{levels[-1]} / qps{levels[0]}", q, "≥ 2.5", None if q is None else q >= 2.5)
            add(f"{m}: p50_{levels[-1]} / p50_{levels[0]}", p, "≤ 3", None if p is None else p <= 3)
    al = s.get("agent_loop")
    if al:
        add("agent loop: write (wait_for_graph) p50 / p95 ms",
            f"{al['write_wait_graph']['p50_ms']} / {al['write_wait_graph']['p95_ms']}")
        add("agent loop: query after write p50 / p95 ms",
            f"{al['after_write']['p50_ms']} / {al['after_write']['p95_ms']}")
        add("agent loop: steady query p50 / p95 ms", f"{al['steady']['p50_ms']} / {al['steady']['p95_ms']}")
        add("agent loop: after-write / steady p50", al["p50_ratio"], "≤ 1.2",
            None if al["p50_ratio"] is None else al["p50_ratio"] <= 1.2)
        add("agent loop: after-write / steady p95", al["p95_ratio"], "≤ 1.2",
            None if al["p95_ratio"] is None else al["p95_ratio"] <= 1.2)
        add("agent loop: after-write stages p50 ms",
            ", ".join(f"{k} {v['p50_ms']}" for k, v in al["after_write"]["stages"].items()))
        add("agent loop: steady stages p50 ms",
            ", ".join(f"{k} {v['p50_ms']}" for k, v in al["steady"]["stages"].items()))
    sx = s.get("stats")
    if sx:
        ns = sx["namespace"]
        add("2wiki namespace", f"{ns['passages']} passages, {ns['phrases']} phrases, {ns['facts']} facts, "
                               f"{ns['edges']} edges; ingest {ns['ingest_s']} s")
        for k in ("stats_namespace", "stats_all"):
            add(f"GetStats ({'one namespace' if k == 'stats_namespace' else 'all'}) p50 / p95 ms",
                f"{sx[k]['p50_ms']} / {sx[k]['p95_ms']}", "p95 ≤ 5", sx[k]["p95_ms"] <= 5)
        for m in MODES:
            add(f"2wiki {m}: idle p50 / p95 ms", f"{sx['query_idle'][m]['p50_ms']} / {sx['query_idle'][m]['p95_ms']}")
            add(f"2wiki {m}: while polling GetStats p50 / p95 ms",
                f"{sx['query_while_polling'][m]['p50_ms']} / {sx['query_while_polling'][m]['p95_ms']}")
            rr = sx["p95_ratio_polling"][m]
            add(f"2wiki {m}: polling p95 / idle p95", rr, "≤ 2", None if rr is None else rr <= 2)
        sp = sx["query_while_polling"]["stats_polls"]
        add("GetStats while queries run p50 / p95 ms", f"{sp['p50_ms']} / {sp['p95_ms']} ({sp['calls']} calls)")
        add("2wiki hybrid idle stages p50 ms",
            ", ".join(f"{k} {v['p50_ms']}" for k, v in sx["query_idle"]["hybrid"]["stages"].items()))
    su = s.get("startup")
    if su:
        add("start-up floor (import torch + s-t, load model) s", su["floor"]["median_s"])
        add("start-up, empty data dir s (over floor)", f"{su['empty']['median_s']} ({su['empty']['over_floor_s']:+})")
        for key, label in (("dense", f"{su['dense']['episodes']:,} dense episodes"),
                           ("wiki", f"2wiki graph ({su['wiki'].get('passages', '?')} passages)")):
            for snap in ("with_snapshot", "without_snapshot"):
                x = su[key][snap]
                over = x["over_floor_s"]
                add(f"start-up {label}, {snap.replace('_', ' ')} s (over floor)", f"{x['median_s']} ({over:+})",
                    "≤ floor + 3" if snap == "with_snapshot" else "",
                    (over <= 3) if snap == "with_snapshot" else None)
                if "first_query_ms" in x:
                    add(f"first query after start, {label}, {snap.replace('_', ' ')} ms",
                        ", ".join(str(v) for v in x["first_query_ms"]))
    return rows


def print_table(rows: list[tuple[str, str, str, str]], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for col in ("figure", "value", "target", "met"):
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(*r)
        Console(width=200).print(t)
    except ImportError:
        print(f"\n{title}\n")
        print("| figure | value | target | met |\n| --- | --- | --- | --- |")
        for r in rows:
            print("| " + " | ".join(r) + " |")


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = res["sections"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), dpi=110)
    labels, values, limits = [], [], []
    qi = s.get("query_ingest", {})
    for scen, short in (("cross_ingest", "other ns\ningest"), ("self_ingest", "Q ingest")):
        for m in MODES:
            v = qi.get(scen, {}).get("p95_ratio_to_idle", {}).get(m)
            if v is not None:
                labels.append(f"{short}\n{m}")
                values.append(v)
                limits.append(2.0)
    if s.get("stats"):
        for m in MODES:
            labels.append(f"GetStats\npoll {m}")
            values.append(s["stats"]["p95_ratio_polling"][m] or 0)
            limits.append(2.0)
    if s.get("agent_loop"):
        labels.append("agent loop\nhybrid")
        values.append(s["agent_loop"]["p95_ratio"] or 0)
        limits.append(1.2)
    ax = axes[0]
    ax.bar(range(len(values)), values, color=["tab:red" if v > t else "tab:blue" for v, t in zip(values, limits, strict=True)])
    ax.axhline(2.0, color="k", ls="--", lw=1, label="2× target")
    ax.axhline(1.2, color="grey", ls=":", lw=1, label="1.2× (agent loop target)")
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    if values and max(values) > 10:
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_ylabel("p95 / floor p95")
    ax.set_title("p95 latency ratio to its floor")
    ax.legend(fontsize=7)
    ax = axes[1]
    if s.get("concurrency"):
        levels = s["concurrency"]["levels"]
        ax2 = ax.twinx()
        for m, v in s["concurrency"]["modes"].items():
            ax.plot(levels, [v["levels"][str(n)]["qps"] for n in levels], "o-", label=f"{m} qps")
            ax2.plot(levels, [v["levels"][str(n)]["p50_ms"] for n in levels], "s--", alpha=0.6, label=f"{m} p50")
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(n) for n in levels])
        ax.set_xlabel("concurrent query clients")
        ax.set_ylabel("queries / s")
        ax.set_ylim(bottom=0)
        ax2.set_ylim(bottom=0)
        ax2.set_ylabel("p50 ms")
        ax.legend(loc="upper left", fontsize=7)
        ax2.legend(loc="lower right", fontsize=7)
    ax.set_title("throughput vs clients")
    ax = axes[2]
    if s.get("startup"):
        su = s["startup"]
        names, vals = ["empty"], [su["empty"]["over_floor_s"]]
        for key, short in (("dense", f"dense {su['dense']['episodes'] / 1000:g}k"),
                           ("wiki", f"2wiki {su['wiki'].get('passages', '?')}")):
            for snap, tag in (("with_snapshot", "snap"), ("without_snapshot", "no snap")):
                names.append(f"{short}\n{tag}")
                vals.append(su[key][snap]["over_floor_s"])
        ax.bar(range(len(vals)), vals, color=["tab:red" if v > 3 else "tab:green" for v in vals])
        ax.axhline(3.0, color="k", ls="--", lw=1, label="floor + 3 s target")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(range(len(vals)), names, fontsize=7)
        ax.set_ylabel(f"s to SERVING minus model-load floor ({su['floor']['median_s']:.1f} s)")
        ax.legend(fontsize=7)
    ax.set_title("start-up")
    fig.suptitle(f"memserve live benchmark ({res['code']['git_sha'][:10]}, {res['machine']['cpus']} CPUs)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --- main -----------------------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help=f"comma-separated sections ({','.join(SECTIONS)}; "
                                              "query_ingest = idle,cross_ingest,self_ingest); default all")
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    p.add_argument("--out", "--json", dest="out", type=Path, default=HERE / "results" / "bench_live.json")
    p.add_argument("--plot", type=Path, help="PNG path (default: --out with .png)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (default %(default)s)")
    p.add_argument("--embedding-model", help="server embedding_model (default: the server's bundled MiniLM)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra server setting")
    p.add_argument("--prefill", type=int, help="LoCoMo turns pre-filled into Q (default 600; quick 200)")
    p.add_argument("--n-questions", type=int, default=60, help="distinct questions cycled (default 60)")
    p.add_argument("--queries", type=int, help="queries per mode per scenario (default 80; quick 20)")
    p.add_argument("--cross-batch", type=int, default=256, help="episodes per write into the other namespace")
    p.add_argument("--self-batch", type=int, default=64, help="episodes per write into Q itself")
    p.add_argument("--clients", default="1,4,16", help="concurrency levels")
    p.add_argument("--duration", type=float, help="seconds per concurrency level (default 10; quick 3)")
    p.add_argument("--agent-turns", type=int, help="agent-loop iterations (default 40; quick 10)")
    p.add_argument("--steady-reps", type=int, default=2, help="steady passes over the agent-loop questions")
    p.add_argument("--wiki-passages", type=int,
                   help="2Wiki passages ingested (0: all 6119, about 6 min idle / 30 min loaded on 2 cores; "
                        "default 2000; quick 400)")
    p.add_argument("--stats-calls", type=int, default=200, help="timed GetStats calls")
    p.add_argument("--startup-episodes", type=int, help="dense-only namespace size (default 100000; quick 5000)")
    p.add_argument("--startup-reps", type=int, help="timed restarts per case (default 2; quick 1)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--render", type=Path, metavar="JSON", help="only print the table and draw the plot of a "
                                                                 "results file (no server is started)")
    a = p.parse_args(argv)
    q = a.quick
    defaults = {"prefill": (600, 200), "queries": (80, 20), "duration": (10.0, 3.0), "agent_turns": (40, 10),
                "wiki_passages": (2000, 400), "startup_episodes": (100_000, 5000), "startup_reps": (2, 1)}
    for k, (full, quick) in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, quick if q else full)
    if q:
        a.stats_calls = min(a.stats_calls, 50)
    chosen = [x.strip() for x in a.only.split(",") if x.strip()] or list(SECTIONS)
    expanded = []
    for x in chosen:
        expanded += ["idle", "cross_ingest", "self_ingest"] if x == "query_ingest" else [x]
    bad = [x for x in expanded if x not in SECTIONS]
    if bad:
        p.error(f"unknown sections {bad}; choose from {','.join(SECTIONS)}")
    a.sections = [x for x in SECTIONS if x in expanded]
    if a.plot is None:
        a.plot = a.out.with_suffix(".png")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        res = json.loads(args.render.read_text())
        print_table(flat_rows(res), f"bench_live — {res['code']['git_sha'][:10]} ({res['code']['root']})")
        plot(res, args.plot if args.plot != args.out.with_suffix(".png") else args.render.with_suffix(".png"))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    data = Data(args.data)
    server_memserve = server_code_check({})
    note(f"code under test: {CODE_ROOT} (bench imports {memserve.__file__}; server imports {server_memserve})")
    res: dict[str, Any] = {
        "benchmark": "bench_live", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "code": {"root": str(CODE_ROOT), "memserve_file": memserve.__file__, "server_memserve_file": server_memserve,
                 "git_sha": git("rev-parse", "HEAD") or "unknown",
                 "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "memserve", "clients")),
                 "client_file": sys.modules["memserve_client"].__file__},
        "machine": machine_info(),
        "note": "2-core machine possibly shared with other work (test runs): compare ratios, not absolute ms",
        "sizes": {k: getattr(args, k) for k in ("prefill", "n_questions", "queries", "cross_batch", "self_batch",
                                                "clients", "duration", "agent_turns", "steady_reps", "wiki_passages",
                                                "stats_calls", "startup_episodes", "startup_reps")},
        "quick": args.quick, "sections_run": args.sections, "targets": TARGETS,
        "settings": {"snapshot_interval_s": "0", "embedding_model": args.embedding_model or "(server default)",
                     "extra": args.set}, "sections": {}, "section_seconds": {}, "loadavg": {},
    }
    keep: dict[str, Any] = {}
    t_all = time.perf_counter()

    def run(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        note(f"== section {name}")
        t = time.perf_counter()
        res["sections"][name] = fn()
        res["section_seconds"][name] = r2(time.perf_counter() - t, 1)
        res["loadavg"][name] = loadavg()
        note(f"== section {name} done in {res['section_seconds'][name]} s (load {loadavg()})")
        write(res, args.out)

    qi = {x for x in args.sections if x in ("idle", "cross_ingest", "self_ingest")}
    if qi:
        run("query_ingest", lambda: sec_query_ingest(args, data, qi))
    if "concurrency" in args.sections:
        run("concurrency", lambda: sec_concurrency(args, data))
    if "agent_loop" in args.sections:
        run("agent_loop", lambda: sec_agent_loop(args, data))
    if "stats" in args.sections:
        run("stats", lambda: sec_stats(args, data, keep))
    if "startup" in args.sections:
        run("startup", lambda: sec_startup(args, data, keep))
    res["wall_seconds"] = r2(time.perf_counter() - t_all, 1)
    res["machine"]["loadavg_end"] = loadavg()
    write(res, args.out)
    print_table(flat_rows(res), f"bench_live — {res['code']['git_sha'][:10]} ({CODE_ROOT})")
    try:
        plot(res, args.plot)
        note(f"wrote {args.out} and {args.plot}")
    except ImportError as exc:
        note(f"no plot ({exc}); wrote {args.out}")
    return 0


def write(res: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
