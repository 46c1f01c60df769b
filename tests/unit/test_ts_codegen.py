"""scripts/gen_ts_protos.py --check: the committed TypeScript protobuf code is current, and the check would
notice if it were not (`make test` runs the check as well; this also proves it can fail)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gen_ts_protos.py"
PLUGIN = REPO / "clients" / "typescript" / "node_modules" / ".bin" / "protoc-gen-ts_proto"

pytestmark = pytest.mark.skipif(
    not PLUGIN.exists(), reason="ts-proto is not installed: run `npm ci` in clients/typescript (make test does)")


def load_script():
    spec = importlib.util.spec_from_file_location("gen_ts_protos", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_typescript_is_current() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_notices_edited_missing_and_leftover_files(tmp_path: Path) -> None:
    gen = load_script()
    files = gen.generate()
    target = tmp_path / "gen"
    shutil.copytree(gen.TARGET, target)
    assert gen.stale(files, target) == []
    edited = target / "memserve" / "v1" / "memory.ts"
    edited.write_text(edited.read_text().replace("WriteEpisodes", "WriteEpisode", 1))
    (target / "google" / "protobuf" / "timestamp.ts").unlink()
    (target / "leftover.ts").write_text("// from a removed proto\n")
    assert gen.stale(files, target) == [
        "google/protobuf/timestamp.ts", "memserve/v1/memory.ts", "leftover.ts (no longer generated)"]
    gen.write(files, target)
    assert gen.stale(files, target) == []
