"""HEMA age-weighted pruning on LoCoMo: evidence recall and latency before and after forgetting half.

    python evals/bench_pruning.py --json evals/results/pruning_locomo.json

One namespace holds all the LoCoMo conversations (ids "<sample_id>:<dia_id>", each turn at its session's
date). Every category 1-4 question is asked before pruning; the queries themselves count as retrievals (as
an agent's would), so access statistics feed the retention score. Then ``Prune`` keeps ``--keep`` of the
episodes with the default policy (age half-life, importance, accesses) and every question is asked again:
evidence Recall@10 and latency, before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memserve_client import EpisodeInput, MemoryClient

from evals import metrics
from evals.datasets import LOCOMO_DEFAULT, SHARED_DATA, load_json, parse_locomo
from memserve.testing import ServerProcess


def ask_all(client, questions, mode: str, k: int) -> tuple[float, float, float, float]:
    recalls, lat = [], []
    for q_text, gold in questions:
        t = time.perf_counter()
        hits = client.query("locomo", q_text, top_k=k, mode=mode).hits
        lat.append(time.perf_counter() - t)
        recalls.append(metrics.recall_at_k([h.episode.id for h in hits], [frozenset({g}) for g in gold], k))
    lat_ms = sorted(x * 1000 for x in lat)
    return (sum(recalls) / len(recalls), lat_ms[len(lat_ms) // 2], lat_ms[int(len(lat_ms) * 0.95)],
            sum(1 for r in recalls if r > 0) / len(recalls))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / LOCOMO_DEFAULT)
    parser.add_argument("--keep", type=float, default=0.5, help="fraction of episodes kept")
    parser.add_argument("--modes", default="dense,hybrid")
    parser.add_argument("--embedding-model", default="bundled:all-MiniLM-L6-v2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    conversations = parse_locomo(load_json(args.data), str(args.data))
    episodes, questions = [], []
    for conv in conversations:
        episodes += [EpisodeInput(t.text, id=f"{conv.sample_id}:{t.dia_id}", session_id=f"{conv.sample_id}:{t.session}",
                                  speaker=t.speaker, event_time=t.event_time) for t in conv.turns]
        questions += [(q.question, [f"{conv.sample_id}:{e}" for e in q.evidence]) for q in conv.questions]
    modes = args.modes.split(",")
    import tempfile

    report = {"n_episodes": len(episodes), "n_questions": len(questions), "keep": args.keep, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "d", settings={"embedding_model": args.embedding_model,
                                                          "extractor": "offline"})
        with server, MemoryClient(server.target, timeout=600) as client:
            for start in range(0, len(episodes), 128):
                client.write("locomo", episodes[start:start + 128], wait_for_graph=True)
            for mode in modes:
                ask_all(client, questions[:10], mode, 10)  # warm-up
            before = {m: ask_all(client, questions, m, 10) for m in modes}
            time.sleep(1.5)  # let the access statistics of those queries flush
            target = int(len(episodes) * args.keep)
            t = time.perf_counter()
            pruned = client.prune("locomo", max_episodes=target)
            prune_s = time.perf_counter() - t
            after = {m: ask_all(client, questions, m, 10) for m in modes}
            report["pruned"] = len(pruned.pruned)
            report["remaining"] = pruned.remaining_count
            report["prune_seconds"] = round(prune_s, 3)
    print(f"LoCoMo, {len(episodes)} turns in one namespace, {len(questions)} questions; pruned "
          f"{report['pruned']} (kept {report['remaining']}) in {report['prune_seconds']} s")
    print("| mode | R@10 before | R@10 after | any-hit@10 before | after | p50 ms before | p50 ms after | "
          "p95 ms before | p95 ms after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in modes:
        b, a = before[m], after[m]
        report["modes"][m] = {"recall@10_before": b[0], "recall@10_after": a[0], "p50_ms_before": b[1],
                              "p50_ms_after": a[1], "p95_ms_before": b[2], "p95_ms_after": a[2],
                              "any_hit@10_before": b[3], "any_hit@10_after": a[3]}
        print(f"| {m} | {b[0]*100:.1f} | {a[0]*100:.1f} | {b[3]*100:.1f} | {a[3]*100:.1f} | {b[1]:.1f} | {a[1]:.1f} | "
              f"{b[2]:.1f} | {a[2]:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
