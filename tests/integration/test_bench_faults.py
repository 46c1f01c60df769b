"""The reliability benchmark in its short form (evals/bench_faults.py --quick): SIGKILL during a write storm,
mixed load, DeleteNamespace under load, a corrupt index snapshot, and (where this server and machine support
it) a full disk. Real servers, the hash embedder; no acknowledged write may be lost and no call may get
INTERNAL or UNKNOWN. The long form with the real model is a benchmark run (README, "Reliability")."""

from __future__ import annotations

import json

from evals import bench_faults


def test_quick_fault_run_loses_no_acknowledged_write(tmp_path, capsys):
    out = tmp_path / "bench_faults.json"
    code = bench_faults.main(["--quick", "--quiet", "--json", str(out)])
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert code == 0, table
    assert result["ok"] and result["form"] == "quick"
    scenarios = result["scenarios"]
    assert set(scenarios) == set(bench_faults.SCENARIOS)
    for name, s in scenarios.items():
        assert s["status"] in ("ok", "not supported"), (name, s["notes"])
        assert s["lost"] == 0, (name, s)
        assert not any(k.split(" ")[0] in ("INTERNAL", "UNKNOWN") for k in s["errors"]), (name, s["errors"])
    for name in ("sigkill_storm", "mixed_load", "delete_namespace_under_load", "corrupt_snapshot"):
        assert scenarios[name]["status"] == "ok" and scenarios[name]["acknowledged"] > 0, name
    assert "| sigkill_storm" in table and "acknowledged" in table
