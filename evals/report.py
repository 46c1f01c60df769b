"""Render the README's benchmark tables from the JSON that evals/run_all.sh writes to evals/results/.

    python evals/report.py [--results evals/results] > tables.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PUBLISHED = {  # HippoRAG (NeurIPS'24) R@2 / R@5 on the full 1,000-question sets, Contriever / ColBERTv2
    "musique": "HippoRAG 41.0 / 52.1 (Contriever), 40.9 / 51.9 (ColBERTv2); ColBERTv2 alone 37.9 / 49.2",
    "2wiki": "HippoRAG 71.5 / 89.5 (Contriever), 70.7 / 89.1 (ColBERTv2); ColBERTv2 alone 59.2 / 68.2",
    "hotpotqa": "HippoRAG 59.0 / 76.2 (Contriever), 60.5 / 77.7 (ColBERTv2); ColBERTv2 alone 64.7 / 79.3",
}


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def load(folder: Path, name: str) -> dict | None:
    path = folder / name
    return json.loads(path.read_text()) if path.exists() else None


def multihop(folder: Path) -> list[str]:
    out = ["| dataset (questions, passages) | extractor | mode | R@1 | R@2 | R@5 | R@10 | all-R@5 | p50 ms | p95 ms |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    notes = []
    for name in ("musique_openie.json", "musique_offline.json", "2wiki_offline.json", "hotpotqa_offline.json"):
        r = load(folder, name)
        if r is None:
            continue
        label = f"{r['dataset']} ({r['n_questions']}, {r['n_passages']})"
        for mode, m in r["modes"].items():
            out.append(f"| {label} | {r['extractor']} | {mode} | {pct(m['recall@1'])} | {pct(m['recall@2'])} | "
                       f"{pct(m['recall@5'])} | {pct(m['recall@10'])} | {pct(m['all_recall@5'])} | "
                       f"{m['p50_ms']:.1f} | {m['p95_ms']:.1f} |")
        notes.append(f"- {r['dataset']} with the {r['extractor']} extractor: indexed in {r['index_seconds']:.0f} s "
                     f"({r['passages_per_second']:.1f} passages/s, extraction and graph included); published: "
                     f"{PUBLISHED.get(r['dataset'], '—')}.")
    return [*out, "", *notes]


def locomo(folder: Path) -> list[str]:
    r = load(folder, "locomo.json")
    if r is None:
        return []
    out = [f"{r['n_conversations']} conversations, {r['n_turns']} turns, {r['n_questions']} questions "
           f"(categories 1–4; {r['skipped_no_evidence']} without evidence skipped); indexed at "
           f"{r['turns_per_second']:.0f} turns/s.", "",
           "| mode | R@5 | R@10 | R@10 multi-hop (1) | R@10 temporal (2) | R@10 open-domain (3) | R@10 single-hop (4) "
           "| p50 ms | p95 ms |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mode, m in r["modes"].items():
        cat = m["by_category"]
        out.append(f"| {mode} | {pct(m['recall@5'])} | {pct(m['recall@10'])} | "
                   + " | ".join(pct(cat[c]["recall@10"]) if c in cat else "—" for c in ("1", "2", "3", "4"))
                   + f" | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} |")
    return out


def pruning(folder: Path) -> list[str]:
    r = load(folder, "pruning_locomo.json")
    if r is None:
        return []
    out = [f"One namespace with all {r['n_episodes']} LoCoMo turns, {r['n_questions']} questions; `Prune` to "
           f"{r['keep']:.0%} removed {r['pruned']} episodes in {r['prune_seconds']:.2f} s.", "",
           "| mode | evidence R@10 before | after | p50 ms before | after | p95 ms before | after |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for mode, m in r["modes"].items():
        out.append(f"| {mode} | {pct(m['recall@10_before'])} | {pct(m['recall@10_after'])} | "
                   f"{m['p50_ms_before']:.1f} | {m['p50_ms_after']:.1f} | {m['p95_ms_before']:.1f} | "
                   f"{m['p95_ms_after']:.1f} |")
    return out


def indexing(folder: Path) -> list[str]:
    r = load(folder, "graph_indexing_2wiki.json")
    if r is None:
        return []
    out = ["| episodes after step | seconds for the step | seconds per 1,000 episodes | phrases | facts | edges |",
           "| --- | --- | --- | --- | --- | --- |"]
    out.extend(f"| {row['episodes_after']} | {row['step_seconds']} | {row['seconds_per_1k']} | {row['phrases']} | "
               f"{row['facts']} | {row['edges']} |" for row in r["rows"])
    return out


def core(folder: Path) -> list[str]:
    r = load(folder, "bench_ingest_query.json")
    if r is None:
        return []
    out = ["| episodes | ingest episodes/s (server) | raw encode sentences/s | server / raw | query p50 ms | "
           "query p95 ms | index | server RSS MB |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    prune = []
    for row in r["results"]:
        out.append(f"| {row['episodes']:,} | {row['ingest_eps_per_s']} | {row['raw_encode_per_s']} | "
                   f"{row['server_vs_raw']} | {row['query_p50_ms']} | {row['query_p95_ms']} | {row['index_type']} | "
                   f"{row['rss_end_mb']:.0f} |")
        if "pruned_to" in row:
            prune.append(f"| {row['episodes']:,} → {row['pruned_to']:,} | {row['prune_seconds']} | "
                         f"{row['query_p50_ms']} → {row['query_p50_ms_after_prune']} | "
                         f"{row['query_p95_ms']} → {row['query_p95_ms_after_prune']} |")
    if prune:
        out += ["", "| pruning | prune s | query p50 ms | query p95 ms |", "| --- | --- | --- | --- |", *prune]
    return out


def _live_figures(r: dict) -> dict[str, tuple[str, str]]:
    """Headline figures of a bench_live.json: name -> (value, target)."""
    s, out = r.get("sections", {}), {}
    qi = s.get("query_ingest", {})
    for m in ("dense", "hybrid"):
        if "idle" in qi:
            out[f"{m} idle p95 ms"] = (f"{qi['idle'][m]['p95_ms']}", "")
        for scen, label in (("cross_ingest", "other namespace ingesting"), ("self_ingest", "own namespace ingesting")):
            if scen in qi and "p95_ratio_to_idle" in qi[scen]:
                out[f"{m} p95 / idle, {label}"] = (f"{qi[scen]['p95_ratio_to_idle'][m]}", "≤ 2")
    cc = s.get("concurrency")
    if cc:
        lo, hi = cc["levels"][0], cc["levels"][-1]
        for m, v in cc["modes"].items():
            qps = f"{v['levels'][str(lo)]['qps']} / {v['levels'][str(hi)]['qps']}"
            out[f"{m} qps at {lo} / {hi} clients"] = (qps, "")
            out[f"{m} qps{hi} / qps{lo}"] = (f"{v[f'qps{hi}_over_qps{lo}']}", "≥ 2.5")
            out[f"{m} p50 at {hi} / p50 at {lo}"] = (f"{v[f'p50_{hi}_over_p50_{lo}']}", "≤ 3")
    al = s.get("agent_loop")
    if al:
        out["agent loop: query after a write / steady, p50"] = (f"{al['p50_ratio']}", "≤ 1.2")
    st = s.get("stats")
    if st:
        out[f"GetStats p95 ms (2Wiki graph, {st['namespace']['passages']} passages)"] = (
            f"{st['stats_namespace']['p95_ms']}", "≤ 5")
        for m in ("dense", "hybrid"):
            out[f"{m} p95 / idle while polling GetStats"] = (f"{st['p95_ratio_polling'][m]}", "≤ 2")
    su = s.get("startup")
    if su:
        out["start-up floor (torch + model load) s"] = (f"{su['floor']['median_s']}", "")
        for key, label in (("dense", f"{su['dense']['episodes']:,} dense episodes"),
                           ("wiki", f"2Wiki graph, {su['wiki'].get('passages', '?')} passages")):
            for snap in ("with_snapshot", "without_snapshot"):
                out[f"start-up − floor s, {label}, {snap.replace('_', ' ')}"] = (
                    f"{su[key][snap]['over_floor_s']:+}", "≤ 3" if snap == "with_snapshot" else "")
    return out


def live(folder: Path) -> list[str]:
    after, before = load(folder, "bench_live.json"), load(folder, "bench_live_before.json")
    if after is None and before is None:
        return []
    a = _live_figures(after) if after else {}
    b = _live_figures(before) if before else {}
    names = list(dict.fromkeys([*b, *a]))
    head = ([f"before ({before['code']['git_sha'][:7]})"] if before else []) + \
           ([f"after ({after['code']['git_sha'][:7]})"] if after else [])
    out = ["| figure | " + " | ".join(head) + " | target |", "| --- | " + " | ".join("---" for _ in head) + " | --- |"]
    for n in names:
        vals = ([b.get(n, ("—", ""))[0]] if before else []) + ([a.get(n, ("—", ""))[0]] if after else [])
        target = (a.get(n) or b.get(n))[1]
        out.append(f"| {n} | " + " | ".join(vals) + f" | {target} |")
    r = after or before
    out += ["", f"Ratios against floors measured in the same run on {r['machine']['cpus']} CPUs "
                f"({r['machine'].get('cpu_model', '')}), possibly loaded; sizes: "
                + ", ".join(f"{k} {v}" for k, v in r["sizes"].items()) + "."]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    folder = parser.parse_args().results
    sections = [
        ("Multi-hop retrieval", "evals/multihop_qa.py --dataset D --extractor E --modes dense,graph,hybrid", multihop),
        ("Long conversations (LoCoMo)", "evals/conversation_recall.py --modes dense,graph,hybrid", locomo),
        ("Forgetting (HEMA pruning on LoCoMo)", "evals/bench_pruning.py", pruning),
        ("Graph indexing growth (2WikiMultihopQA corpus, offline extractor)", "evals/bench_graph_indexing.py --steps 2000", indexing),
        ("Core write and query path (synthetic chat turns, extraction off)",
         "evals/bench_ingest_query.py --sizes 10000,100000 --prune-to 50000", core),
        ("Fast while agents write (live benchmark)", "evals/bench_live.py", live),
    ]
    for title, command, render in sections:
        lines = render(folder)
        if lines:
            print(f"### {title}\n\n`python {command}`\n")
            print("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
