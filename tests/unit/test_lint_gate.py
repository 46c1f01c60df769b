"""`make test` gates on lint and types: test-py runs `make lint` (ruff, mypy, vulture) before pytest, and a fresh
clone gets the three tools from the `test` extra. (The tools themselves run in `make lint`, not here.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rule(makefile: str, target: str) -> tuple[list[str], list[str]]:
    """(prerequisites, recipe lines) of ``target``."""
    match = re.search(rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n)*)", makefile, re.MULTILINE)
    assert match, f"no {target} rule in the Makefile"
    return match.group(1).split(), [line.strip() for line in match.group(2).splitlines()]


def test_test_py_runs_lint_before_pytest() -> None:
    makefile = (ROOT / "Makefile").read_text()
    prerequisites, _ = _rule(makefile, "test-py")
    assert "lint" in prerequisites  # make builds prerequisites before the recipe, so lint runs before pytest
    _, lint = _rule(makefile, "lint")
    tools = [line.split()[0].removeprefix("$(BIN)/") for line in lint]
    assert tools == ["ruff", "mypy", "vulture"]
    assert _rule(makefile, "test")[0][:2] == ["setup-ts", "test-py"]


def test_the_lint_tools_come_with_the_test_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0] for spec in project["project"]["optional-dependencies"]["test"]}
    assert {"ruff", "mypy", "vulture"} <= names


def test_lint_covers_the_tree_and_mypy_the_packages() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint_paths = re.search(r"^LINT_PATHS := (.*)$", makefile, re.MULTILINE)
    assert lint_paths and lint_paths.group(1).split() == ["memserve", "clients/python", "tests", "evals", "scripts"]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    assert config["mypy"]["files"] == ["memserve", "clients/python/memserve_client"]
    assert config["mypy"]["disallow_untyped_defs"] is True
    assert set(config["vulture"]["paths"]) >= {"memserve", "clients/python", "tests", "evals", "scripts"}
