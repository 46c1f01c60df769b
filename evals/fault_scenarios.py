"""The fault scenarios of evals/bench_faults.py. Each takes a ``Plan`` and returns a ``Scenario`` record.

"Acknowledged" is a WriteEpisodes call that returned OK (one attempt: the SDK's retries are off, so a call that
fails is counted under its status code, never silently re-sent). "Lost" is an acknowledged id that GetEpisode
does not find after the restart (or, for DeleteNamespace, an acknowledged write that began after the last
delete ended). Every scenario runs a real ``memserve serve`` subprocess on its own data directory.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memserve_client import (
    EpisodeInput,
    MemoryClient,
    MemserveError,
    NamespaceNotFoundError,
    NotFoundError,
)

from evals.synthetic import NAMES, turn
from memserve.testing import ServerProcess

BATCH = 8  # episodes per write: small, so a kill lands between and inside many commits


@dataclass
class Plan:
    cycles: int = 20
    writers: int = 8
    clients: int = 32
    mixed_seconds: float = 60.0
    delete_seconds: float = 20.0
    embedding_model: str | None = None  # None: the server's default (the bundled MiniLM)
    corruptions: tuple[str, ...] = ("garbage", "bit flips", "truncated")
    disk_mb: int = 24  # size of the tmpfs the disk_full scenario fills
    seed: int = 7
    progress: Callable[[str], None] = print

    def settings(self, **extra: str) -> dict[str, str]:
        out = {"snapshot_interval_s": "0", "extractor": "offline", "summarizer": "extractive", **extra}
        if self.embedding_model:
            out["embedding_model"] = self.embedding_model
        return out


@dataclass
class Scenario:
    name: str
    status: str = "ok"  # ok | failed | not supported
    acknowledged: int = 0
    lost: int = 0
    errors: Counter = field(default_factory=Counter)  # status code name (reason) -> count
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def error(self, exc: BaseException) -> None:
        if isinstance(exc, MemserveError):
            code = exc.code.name if exc.code is not None else "UNKNOWN"
            self.errors[code if exc.reason in (None, code) else f"{code} ({exc.reason})"] += 1
        else:
            self.errors[type(exc).__name__] += 1

    def fail(self, note: str) -> None:
        self.status = "failed"
        self.notes.append(note)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = dict(self.errors)
        return out


BUG_CODES = ("INTERNAL", "UNKNOWN")


def _check_no_bug_codes(s: Scenario) -> None:
    bugs = {k: v for k, v in s.errors.items() if k.split(" ")[0] in BUG_CODES}
    if bugs:
        s.fail(f"server bugs: {bugs}")


def _text(rng: random.Random, tag: str) -> str:
    a, b = rng.sample(NAMES, 2)
    return f"{turn(rng, a, b)} [{tag}]"


def _missing(target: str, namespace: str, ids: list[str]) -> list[str]:
    """Acknowledged ids GetEpisode does not find (one listing first, GetEpisode for the rest)."""
    with MemoryClient(target, timeout=60) as c:
        try:
            listed = {e.id for e in c.iter_episodes(namespace, page_size=1000)}
        except NotFoundError:
            listed = set()
        gone = []
        for id_ in ids:
            if id_ in listed:
                continue
            try:
                c.get(namespace, id_)
            except NotFoundError:
                gone.append(id_)
        return gone


def _consistent(target: str, s: Scenario) -> None:
    """DuckDB and the vector index agree on every namespace (no dangling vectors, no unindexed episodes)."""
    with MemoryClient(target, timeout=60) as c:
        for ns in c.stats().namespaces:
            if ns.episode_count != ns.vector_count:
                s.fail(f"{ns.namespace}: {ns.episode_count} episodes but {ns.vector_count} vectors")


# --- SIGKILL during a write storm ---------------------------------------------------------------------------

def kill_storm(plan: Plan, workdir: Path) -> Scenario:
    s = Scenario("sigkill_storm")
    t0 = time.perf_counter()
    rng = random.Random(plan.seed)
    data = workdir / "storm"
    acked: list[str] = []
    lock = threading.Lock()
    restart_s: list[float] = []
    server = ServerProcess(data, settings=plan.settings(), start_timeout=300, stop_timeout=300).start()
    for cycle in range(plan.cycles):
        acked_this = _storm(plan, s, server.target, cycle, rng.randint(1, 6 * plan.writers), acked, lock)
        server.kill()  # SIGKILL while the other writers are mid-call
        started = time.perf_counter()
        server = ServerProcess(data, settings=plan.settings(), start_timeout=300, stop_timeout=300).start()  # the next cycle's too
        restart_s.append(time.perf_counter() - started)
        gone = _missing(server.target, "storm", list(acked))
        if gone:
            s.fail(f"cycle {cycle}: {len(gone)} acknowledged ids lost, e.g. {gone[:3]}")
        s.lost = max(s.lost, len(gone))
        _consistent(server.target, s)
        plan.progress(f"  sigkill cycle {cycle + 1}/{plan.cycles}: {acked_this} batches acknowledged, "
                      f"{len(acked)} ids so far, {len(gone)} lost")
    if server.stop() != 0:
        s.fail("the last restart did not shut down cleanly")
    s.acknowledged = len(acked)
    s.details = {"cycles": plan.cycles, "writers": plan.writers, "batch": BATCH,
                 "restart_s_max": round(max(restart_s), 2) if restart_s else None}
    s.seconds = time.perf_counter() - t0
    _check_no_bug_codes(s)
    return s


def _storm(plan: Plan, s: Scenario, target: str, cycle: int, kill_after: int, acked: list[str],
           lock: threading.Lock) -> int:
    """Writers write until ``kill_after`` batches are acknowledged, and return with the writers still writing,
    so the caller's SIGKILL lands mid-call (each writer ends at its first failed call after that).
    Returns the number of acknowledged batches."""
    stop = threading.Event()
    count = [0]

    def writer(w: int) -> None:
        wrng = random.Random(plan.seed * 1000 + cycle * 100 + w)
        with MemoryClient(target, timeout=60, max_retries=0) as c:
            k = 0
            while True:
                batch = [EpisodeInput(text=_text(wrng, f"c{cycle} w{w} k{k + i}"), id=f"c{cycle}-w{w}-{k + i}")
                         for i in range(BATCH)]
                k += BATCH
                try:
                    result = c.write("storm", batch)
                except Exception as exc:  # noqa: BLE001 - every outcome is counted
                    with lock:
                        s.error(exc)
                    if stop.is_set():
                        return
                    continue
                with lock:
                    acked.extend(result.ids)
                    count[0] += 1
                    if count[0] >= kill_after:
                        stop.set()

    for w in range(plan.writers):
        threading.Thread(target=writer, args=(w,), daemon=True).start()
    stop.wait(600)
    return count[0]


# --- 32 clients of mixed load ---------------------------------------------------------------------------------

def mixed_load(plan: Plan, workdir: Path) -> Scenario:
    s = Scenario("mixed_load")
    t0 = time.perf_counter()
    ops: Counter = Counter()
    acked: dict[str, list[str]] = {}  # namespace -> acknowledged ids, minus the ones this run deleted
    lock = threading.Lock()
    with ServerProcess(workdir / "mixed", settings=plan.settings(), start_timeout=300, stop_timeout=300) as server:
        end = time.monotonic() + plan.mixed_seconds

        def client(n: int) -> None:
            rng = random.Random(plan.seed + n)
            ns = f"mix{n % 4}"
            mine: list[str] = []
            with MemoryClient(server.target, timeout=60, max_retries=0) as c:
                k = 0
                while time.monotonic() < end:
                    op = rng.choices(["write", "query", "get", "list", "stats", "delete"], [4, 4, 2, 1, 1, 1])[0]
                    try:
                        if op == "write":
                            batch = [EpisodeInput(text=_text(rng, f"m{n}-{k + i}"), id=f"m{n}-{k + i}")
                                     for i in range(rng.randint(1, BATCH))]
                            k += len(batch)
                            mine.extend(c.write(ns, batch).ids)
                        elif op == "query":
                            c.query(ns, _text(rng, "q"), top_k=5, mode=rng.choice(["dense", "graph", "hybrid"]))
                        elif op == "get" and mine:
                            c.get(ns, rng.choice(mine))
                        elif op == "list":
                            c.list(ns, page_size=50)
                        elif op == "stats":
                            c.stats(ns)
                        elif op == "delete" and len(mine) > 4:
                            gone = mine.pop(rng.randrange(len(mine)))
                            c.delete(ns, [gone])
                        with lock:
                            ops[op] += 1
                    except Exception as exc:  # noqa: BLE001
                        if isinstance(exc, NamespaceNotFoundError):
                            continue  # nobody has written to this namespace yet
                        with lock:
                            s.error(exc)
            with lock:
                acked.setdefault(ns, []).extend(mine)

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(plan.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(plan.mixed_seconds + 300)
        s.acknowledged = sum(len(v) for v in acked.values())
        for ns, ids in acked.items():
            gone = _missing(server.target, ns, ids)
            s.lost += len(gone)
        if s.lost:
            s.fail(f"{s.lost} acknowledged ids not found")
        _consistent(server.target, s)
    s.details = {"clients": plan.clients, "seconds": plan.mixed_seconds, "ops": dict(ops),
                 "ops_per_s": round(sum(ops.values()) / plan.mixed_seconds, 1)}
    s.seconds = time.perf_counter() - t0
    _check_no_bug_codes(s)
    return s


# --- DeleteNamespace under load -------------------------------------------------------------------------------

def delete_namespace_under_load(plan: Plan, workdir: Path) -> Scenario:
    s = Scenario("delete_namespace_under_load")
    t0 = time.perf_counter()
    writes: list[tuple[float, list[str]]] = []  # (start of the call, acknowledged ids)
    deletes: list[tuple[float, float]] = []
    lock = threading.Lock()
    with ServerProcess(workdir / "delns", settings=plan.settings(), start_timeout=300, stop_timeout=300) as server:
        end = time.monotonic() + plan.delete_seconds
        stop_deleting = threading.Event()

        def writer(w: int) -> None:
            rng = random.Random(plan.seed + 500 + w)
            with MemoryClient(server.target, timeout=60, max_retries=0) as c:
                k = 0
                while time.monotonic() < end:
                    batch = [EpisodeInput(text=_text(rng, f"d{w}-{k + i}"), id=f"d{w}-{k + i}") for i in range(BATCH)]
                    k += BATCH
                    started = time.monotonic()
                    try:
                        ids = c.write("doomed", batch).ids
                        with lock:
                            writes.append((started, list(ids)))
                    except Exception as exc:  # noqa: BLE001
                        with lock:
                            s.error(exc)

        def reader() -> None:
            rng = random.Random(plan.seed + 900)
            with MemoryClient(server.target, timeout=60, max_retries=0) as c:
                while time.monotonic() < end:
                    try:
                        c.query("doomed", _text(rng, "q"), top_k=5, mode=rng.choice(["dense", "hybrid"]))
                    except NotFoundError:
                        pass
                    except Exception as exc:  # noqa: BLE001
                        with lock:
                            s.error(exc)

        def deleter() -> None:
            with MemoryClient(server.target, timeout=60, max_retries=0) as c:
                while not stop_deleting.wait(0.25):
                    started = time.monotonic()
                    try:
                        c.delete_namespace("doomed")
                    except NotFoundError:
                        pass
                    except Exception as exc:  # noqa: BLE001
                        with lock:
                            s.error(exc)
                        continue
                    with lock:
                        deletes.append((started, time.monotonic()))

        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(plan.writers)]
        threads += [threading.Thread(target=reader, daemon=True) for _ in range(2)]
        dt = threading.Thread(target=deleter, daemon=True)
        for t in [*threads, dt]:
            t.start()
        time.sleep(plan.delete_seconds * 0.8)  # a benchmark's load phase, not a test's synchronisation
        stop_deleting.set()
        dt.join(300)
        for t in threads:
            t.join(300)
        last_delete_end = max((e for _, e in deletes), default=0.0)
        survivors = [i for started, ids in writes if started > last_delete_end for i in ids]
        s.acknowledged = sum(len(ids) for _, ids in writes)
        gone = _missing(server.target, "doomed", survivors)
        s.lost = len(gone)
        if gone:
            s.fail(f"{len(gone)} writes acknowledged after the last DeleteNamespace are missing")
        _consistent(server.target, s)
        s.details = {"deletes": len(deletes), "checked_after_last_delete": len(survivors)}
    s.seconds = time.perf_counter() - t0
    _check_no_bug_codes(s)
    return s


# --- disk full --------------------------------------------------------------------------------------------------

def disk_full(plan: Plan, workdir: Path) -> Scenario:
    s = Scenario("disk_full")
    try:
        from memserve.errors import DiskFull  # noqa: F401  (the server maps ENOSPC to DISK_FULL)
    except ImportError:
        s.status, s.notes = "not supported", ["this server has no DISK_FULL error (memserve.errors.DiskFull)"]
        return s
    mount = workdir / "small-fs"
    mount.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={plan.disk_mb}m", "tmpfs", str(mount)],
                                                       capture_output=True, check=False).returncode != 0:
        s.status, s.notes = "not supported", ["needs a small filesystem: mounting a tmpfs failed (not root?)"]
        return s
    t0 = time.perf_counter()
    rng = random.Random(plan.seed + 77)
    acked: list[str] = []
    try:
        server = ServerProcess(mount / "data", settings=plan.settings(), start_timeout=300, stop_timeout=300).start()
        try:
            with MemoryClient(server.target, timeout=60, max_retries=0) as c:
                for k in range(2_000):
                    # Random words: DuckDB compresses a repeated filler to nothing.
                    batch = [EpisodeInput(text=f"{_text(rng, f'f{k}-{i}')} {_filler(rng)}", id=f"f{k}-{i}")
                             for i in range(4)]
                    try:
                        acked.extend(c.write("full", batch).ids)
                    except MemserveError as exc:
                        s.error(exc)
                        if exc.reason == "DISK_FULL" or server.proc.poll() is not None:
                            break
                        if exc.code is not None and exc.code.name in BUG_CODES:
                            break
                if not any("DISK_FULL" in k for k in s.errors):
                    s.fail(f"the disk filled without a RESOURCE_EXHAUSTED (DISK_FULL); errors: {dict(s.errors)}")
                # A server may keep serving reads or exit on purpose (memserve exits 75 when DuckDB gives up
                # on its database); either is reported, neither is a failure.
                if server.proc.poll() is None:
                    try:
                        s.details["health_after"] = c.health()
                    except MemserveError as exc:
                        s.details["health_after"] = f"{type(exc).__name__}"
                else:
                    s.details["exit_code_after"] = server.proc.returncode
        finally:
            server.kill()
        subprocess.run(["mount", "-o", "remount,size=256m", str(mount)], check=True)  # space is freed
        with ServerProcess(mount / "data", settings=plan.settings(), start_timeout=300, stop_timeout=300) as again:
            gone = _missing(again.target, "full", acked)
            s.lost = len(gone)
            if gone:
                s.fail(f"{len(gone)} acknowledged ids lost after the disk filled")
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
    s.acknowledged = len(acked)
    s.seconds = time.perf_counter() - t0
    _check_no_bug_codes(s)
    return s


def _filler(rng: random.Random, nbytes: int = 50_000) -> str:
    words = rng.choices(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
                         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"], k=nbytes // 6)
    return " ".join(f"{w}{rng.randrange(10_000)}" for w in words)[:nbytes]


# --- corrupt index snapshot -------------------------------------------------------------------------------------

def _flip_bytes(path: Path, rng: random.Random, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    start = min(len(data) - 1, 512)  # past the header, so the file still loads: only a checksum notices
    for _ in range(count):
        i = rng.randrange(start, len(data))
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def corrupt_snapshot(plan: Plan, workdir: Path) -> Scenario:
    s = Scenario("corrupt_snapshot")
    t0 = time.perf_counter()
    rng = random.Random(plan.seed + 99)
    data = workdir / "corrupt"
    texts = {f"s{i}": _text(rng, f"snap {i}") for i in range(200)}
    with ServerProcess(data, settings=plan.settings(), start_timeout=300, stop_timeout=300) as server, \
            MemoryClient(server.target, timeout=60, max_retries=0) as c:
        for start in range(0, len(texts), 50):
            chunk = list(texts.items())[start:start + 50]
            s.acknowledged += len(c.write("snap", [EpisodeInput(text=t, id=i) for i, t in chunk]).ids)
    snapshots = sorted((data / "indexes").glob("*.faiss")) if (data / "indexes").exists() else []
    if not snapshots:
        s.status, s.notes = "not supported", ["no index snapshot files (indexes/*.faiss) after a clean stop"]
        return s
    variants = {"garbage": lambda p: p.write_bytes(b"IxMp" + b"\x00garbage" * 10),
                "bit flips": lambda p: _flip_bytes(p, rng),
                "truncated": lambda p: p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])}
    for name in plan.corruptions:
        damage = variants[name]
        for p in snapshots:
            if p.exists():
                damage(p)
        with ServerProcess(data, settings=plan.settings(), start_timeout=300, stop_timeout=300) as again, \
                MemoryClient(again.target, timeout=60) as c:
            gone = _missing(again.target, "snap", list(texts))
            wrong = 0
            sample = list(texts.items())[::10]
            for id_, text in sample:
                hits = c.query("snap", text, top_k=1, mode="dense").hits
                wrong += not hits or hits[0].episode.id != id_
            s.details[name] = {"lost": len(gone), "wrong_top1": wrong, "queries": len(sample)}
            s.lost = max(s.lost, len(gone))
            if gone or wrong:
                s.fail(f"{name}: {len(gone)} episodes not found, {wrong}/{len(sample)} own-text queries miss "
                       "after restart")
            _consistent(again.target, s)
    s.seconds = time.perf_counter() - t0
    return s


SCENARIOS: dict[str, Callable[[Plan, Path], Scenario]] = {
    "sigkill_storm": kill_storm,
    "mixed_load": mixed_load,
    "delete_namespace_under_load": delete_namespace_under_load,
    "disk_full": disk_full,
    "corrupt_snapshot": corrupt_snapshot,
}


def run(names: list[str], plan: Plan, workdir: Path | None = None) -> list[Scenario]:
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="memserve-faults-")) if own else workdir
    try:
        out = []
        for name in names:
            plan.progress(f"{name} ...")
            try:
                out.append(SCENARIOS[name](plan, root))
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others' results
                out.append(Scenario(name, status="failed", notes=[f"the scenario itself failed: {exc!r}"]))
            plan.progress(f"{name}: {out[-1].status}")
        return out
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)


def environment() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]}
