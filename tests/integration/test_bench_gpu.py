"""evals/bench_gpu.py runs end to end (on the CPU here: the GPU rows appear where a GPU is), so the one script
a lent GPU machine runs does not rot between the rare sessions that have one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_gpu_writes_rows_for_every_backend(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "evals/bench_gpu.py", "--sizes", "300,600", "--queries", "5", "--add-batch", "100",
         "--hnsw-max", "300", "--encode-passages", "0", "--json", str(out), "--plot", str(tmp_path / "b.png")],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    rows = {(r["n"], r["backend"]) for r in result["index"]}
    assert {(300, "cpu-flat"), (300, "cpu-hnsw"), (600, "cpu-flat")} <= rows
    assert (600, "cpu-hnsw") not in rows  # past --hnsw-max
    assert all(r["recall_at_10"] == 1.0 for r in result["index"] if r["backend"] != "cpu-hnsw")
    assert (tmp_path / "b.png").stat().st_size > 0
    assert "backend" in proc.stdout and "R@10" in proc.stdout


def test_bench_gpu_rejects_bad_sizes() -> None:
    proc = subprocess.run([sys.executable, "evals/bench_gpu.py", "--sizes", "ten"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--sizes" in proc.stderr
