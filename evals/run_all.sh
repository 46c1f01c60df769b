#!/usr/bin/env bash
# Reproduce every benchmark figure in README.md (default MiniLM embedder, CPU). Takes about an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=evals/results
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True
run() { echo "== $*" >&2; "$@"; }
run $PY evals/multihop_qa.py --dataset musique --extractor openie-file --modes dense,graph,hybrid \
    --json $OUT/musique_openie.json --plot $OUT/musique_openie.png
run $PY evals/multihop_qa.py --dataset musique --extractor offline --modes dense,graph,hybrid \
    --json $OUT/musique_offline.json
run $PY evals/multihop_qa.py --dataset 2wiki --extractor offline --modes dense,graph,hybrid \
    --json $OUT/2wiki_offline.json --plot $OUT/2wiki_offline.png
run $PY evals/multihop_qa.py --dataset hotpotqa --extractor offline --modes dense,graph,hybrid \
    --json $OUT/hotpotqa_offline.json
run $PY evals/conversation_recall.py --modes dense,graph,hybrid --json $OUT/locomo.json
run $PY evals/bench_pruning.py --json $OUT/pruning_locomo.json
run $PY evals/bench_graph_indexing.py --json $OUT/graph_indexing_2wiki.json
run $PY evals/bench_ingest_query.py --sizes 10000,100000 --prune-to 50000 --json $OUT/bench_ingest_query.json
# Same sizes as evals/results/bench_live_before.json (HEAD ae13d4a), so the README shows before -> after.
run $PY evals/bench_live.py --quiet --prefill 600 --queries 60 --duration 8 --agent-turns 30 --wiki-passages 1000 \
    --startup-episodes 10000 --startup-reps 2 --out $OUT/bench_live.json --plot $OUT/bench_live.png
run $PY evals/report.py > $OUT/tables.md  # the README tables
