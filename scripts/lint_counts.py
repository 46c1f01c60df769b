"""Print the finding counts of the lint tools and the size of the tree, one `name: value` line each.

    python scripts/lint_counts.py            # or: make lint-counts

ruff, mypy and vulture run with the repository's configuration (pyproject.toml), as `make lint` runs them, so a
clean tree prints 0 for each. `duplicates` (pairs of repeated blocks) is printed where that tool is on PATH.
Lines of Python are counted without the generated protobuf modules. Never fails: it reports, `make lint` gates.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LINT_PATHS = ["memserve", "clients/python", "tests", "evals", "scripts"]
SIZE_PATHS = ["memserve", "clients/python/memserve_client", "tests", "evals", "scripts"]


def _run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def _tool(name: str) -> str:
    local = BIN / name
    return str(local) if local.exists() else name


def ruff_count() -> int:
    out = _run([_tool("ruff"), "check", *LINT_PATHS, "--output-format", "concise", "--no-fix"])
    return sum(1 for line in out.splitlines() if re.match(r"^\S+:\d+:\d+: ", line))


def mypy_count() -> int:
    out = _run([_tool("mypy")])
    found = re.search(r"^Found (\d+) errors? in", out, re.MULTILINE)
    return int(found.group(1)) if found else 0


def vulture_count() -> int:
    out = _run([_tool("vulture")])
    return sum(1 for line in out.splitlines() if "% confidence)" in line)


def duplicates_pairs() -> str:
    if shutil.which("duplicates") is None:
        return "n/a (the duplicates tool is not on PATH)"
    first = _run(["duplicates", "--seconds", "120"]).splitlines()
    return first[0] if first else "no output"


def python_lines() -> dict[str, int]:
    sizes = {}
    for part in SIZE_PATHS:
        files = [p for p in (ROOT / part).rglob("*.py") if "_proto" not in p.parts]
        sizes[part] = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in files)
    return sizes


def main() -> int:
    print(f"ruff: {ruff_count()}")
    print(f"mypy: {mypy_count()}")
    print(f"vulture: {vulture_count()}")
    print(f"duplicates: {duplicates_pairs()}")
    sizes = python_lines()
    for part, lines in sizes.items():
        print(f"lines {part}: {lines}")
    print(f"lines total: {sum(sizes.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
