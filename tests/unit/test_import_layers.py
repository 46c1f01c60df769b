"""Layers import only downwards: every import in memserve/ is checked against the table of docs/ARCHITECTURE.md.

Each module is parsed with ``ast`` (nothing is imported), and every ``import``/``from ... import`` counts: at the top,
inside a function, under ``if TYPE_CHECKING:``. A unit is a top-level module or package of ``memserve`` (``store``,
``errors``, ``cli_admin``); an import between two units must be listed in ``ALLOWED``, and a few third-party
packages may only be imported where ``EXTERNAL`` says. Imports inside one unit are free. The SDK
(clients/python/memserve_client) must not import the server at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "memserve"
SDK = REPO / "clients" / "python" / "memserve_client"

# The table of docs/ARCHITECTURE.md, bottom layer first: unit -> the units it may import.
KERNEL = frozenset({"memserve", "errors", "types", "domain"})  # "memserve": the package itself (__version__)
COMPONENTS = frozenset({"embed", "vector", "lexical", "llm", "extract", "graph"})
ENTRY_POINTS = frozenset({"cli_admin", "cli_ingest", "cli_keys", "mcp_server", "testing"})
BELOW_ENTRY = KERNEL | COMPONENTS | {"config", "store", "engine", "server"}
ALLOWED: dict[str, frozenset[str]] = {
    # 0 kernel: plain values and the error tree; no memserve imports, no third-party transport.
    "memserve": frozenset(),
    "errors": frozenset(),
    "types": frozenset(),
    "domain": frozenset(),
    # 1 settings
    "config": frozenset({"errors"}),
    # 2 components: each a Protocol and its implementations; extract uses the LLM client, graph normalises
    # phrases as extract does.
    "embed": KERNEL,
    "vector": KERNEL,
    "lexical": KERNEL,
    "llm": KERNEL,
    "extract": KERNEL | {"llm"},
    "graph": KERNEL | {"extract"},
    # 2 persistence: SQL over DuckDB, in and out as domain records; a sibling of the components, not above them.
    "store": KERNEL,
    # 3 the engine composes everything below.
    "engine": KERNEL | COMPONENTS | {"config", "store"},
    # 4 the gRPC server sees the engine's API and the settings, never the store or a component directly.
    "server": KERNEL | {"config", "engine"},
    # 5 entry points: the CLI, the MCP bridge, the test helper.
    "cli_admin": BELOW_ENTRY,
    "cli_ingest": BELOW_ENTRY,
    "cli_keys": BELOW_ENTRY,
    "mcp_server": BELOW_ENTRY,
    "testing": BELOW_ENTRY,
    "__main__": BELOW_ENTRY | ENTRY_POINTS,
}
# Third-party packages that belong to one layer: the transport to the server (and the entry points that speak
# it as a client), the database to the store.
TRANSPORT = frozenset({"server"}) | ENTRY_POINTS | {"__main__"}
EXTERNAL: dict[str, frozenset[str]] = {
    "grpc": TRANSPORT,
    "grpc_health": TRANSPORT,
    "grpc_reflection": TRANSPORT,
    "grpc_status": TRANSPORT,
    "google.protobuf": TRANSPORT,
    "google.rpc": TRANSPORT,
    "memserve_client": TRANSPORT,
    "duckdb": frozenset({"store"}),
}


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """(dotted name, is a package) of a file under ``root`` (the folder holding the top package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def imported_modules(source: str, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """(absolute module name, line) of every import in ``source``; ``from x import y`` yields ``x.y`` too, since
    ``y`` may be a module."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:
                yield f"{target}.{alias.name}", node.lineno


def unit_of(name: str, units: frozenset[str]) -> str | None:
    """The memserve unit a module name belongs to, or None outside memserve. A name the package does not have
    as a unit (``memserve.__version__``) is the package itself."""
    parts = name.split(".")
    if parts[0] != "memserve":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in units else "memserve"


def violations(source: str, module: str, is_package: bool, units: frozenset[str]) -> list[str]:
    """Every import of ``module`` (in memserve) that points up or sideways against ``ALLOWED`` / ``EXTERNAL``,
    one line per (import statement, unit or package) it reaches."""
    here = unit_of(module, units)
    assert here is not None, module
    found: dict[tuple[int, str], str] = {}
    for target, line in imported_modules(source, module, is_package):
        there = unit_of(target, units)
        if there is None:
            for package, owners in EXTERNAL.items():
                if (target == package or target.startswith(package + ".")) and here not in owners:
                    found.setdefault((line, package),
                                     f"{module}:{line} imports {target} ({package} belongs to {sorted(owners)})")
        elif there != here and there not in ALLOWED.get(here, frozenset()):
            found.setdefault((line, there), f"{module}:{line} imports {target} ({here} may not import {there})")
    return [found[key] for key in sorted(found)]


def package_units(package: Path = PACKAGE) -> frozenset[str]:
    return frozenset({p.stem for p in package.glob("*.py") if p.stem != "__init__"}
                     | {p.name for p in package.iterdir() if (p / "__init__.py").exists()} | {"memserve"})


def tree_violations(package: Path = PACKAGE) -> list[str]:
    units = package_units(package)
    found = []
    for path in sorted(package.rglob("*.py")):
        module, is_package = module_name(path, package.parent)
        found += violations(path.read_text(), module, is_package, units)
    return found


def test_every_unit_has_a_row_in_the_table() -> None:
    missing = package_units() - set(ALLOWED)
    assert not missing, f"new top-level modules: place them in ALLOWED and docs/ARCHITECTURE.md: {sorted(missing)}"


def test_the_table_is_a_layer_order() -> None:
    # Acyclic: repeatedly peel off the units whose allowed imports are all peeled already.
    placed: set[str] = set()
    while len(placed) < len(ALLOWED):
        layer = {u for u, deps in ALLOWED.items() if u not in placed and deps - {u} <= placed}
        assert layer, f"ALLOWED has a cycle among {sorted(set(ALLOWED) - placed)}"
        placed |= layer


def test_memserve_imports_only_downwards() -> None:
    found = tree_violations()
    assert not found, "imports that point up the layers (docs/ARCHITECTURE.md):\n  " + "\n  ".join(found)


def test_the_sdk_does_not_import_the_server() -> None:
    found = []
    for path in sorted(SDK.rglob("*.py")):
        module, is_package = module_name(path, SDK.parent)
        found += [f"{module}:{line} imports {target}" for target, line in
                  imported_modules(path.read_text(), module, is_package) if target.split(".")[0] == "memserve"]
    assert not found, found


def test_the_architecture_doc_has_the_same_table() -> None:
    # Every row of the table in docs/ARCHITECTURE.md names the unit and exactly the units this test allows.
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[1] in ALLOWED:
            rows[cells[1]] = frozenset(c.strip().strip("`") for c in cells[2].split(",") if c.strip() not in ("", "—"))
    assert rows == ALLOWED


# ------------------------------------------------------------------------------------ the checker is checked

UNITS = package_units()


@pytest.mark.parametrize(("module", "is_package", "source"), [
    ("memserve.store.hema_repo", False, "from memserve.engine.clock import as_utc\n"),  # what main had
    ("memserve.store.graph_repo", False, "from memserve.graph.kg import KnowledgeGraph\n"),
    ("memserve.store.graph_repo", False, "from ..graph import kg\n"),  # relative
    ("memserve.store", True, "from ..engine import summary\n"),  # relative, from a package's __init__
    ("memserve.store.db", False, "def f():\n    import memserve.engine.memory\n"),  # function-local
    ("memserve.store.db", False, "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..llm import X\n"),
    ("memserve.errors", False, "import grpc\n"),  # the transport under the domain's error tree
    ("memserve.engine.memory", False, "from memserve_client._proto import memory_pb2\n"),
    ("memserve.engine.memory", False, "import duckdb\n"),  # SQL belongs to the store
    ("memserve.server.app", False, "from ..store import graph_repo\n"),  # the server skips the engine
    ("memserve.domain.hema", False, "from .. import errors\n"),  # the kernel imports nothing of memserve
    ("memserve.cli_keys", False, "from . import __main__\n"),  # an entry point importing the CLI's main
])
def test_the_checker_reports_an_upward_import(module: str, is_package: bool, source: str) -> None:
    assert violations(source, module, is_package, UNITS)


@pytest.mark.parametrize(("module", "is_package", "source"), [
    ("memserve.store.hema_repo", False, "from memserve.domain.clock import as_utc\nfrom .db import Database\n"),
    ("memserve.store", True, "from . import graph_repo\nfrom ..errors import InvalidArgument\n"),
    ("memserve.graph.restore", False, "from ..domain.graph import PersistedGraph\nfrom .kg import KnowledgeGraph\n"),
    ("memserve.server.status", False, "import grpc\nfrom .. import errors\n"),
    ("memserve.__main__", False, "from . import __version__\nfrom .cli_admin import main\n"),
    ("memserve.engine.memory", False, "import numpy as np\nfrom ..store.db import Database\n"),
])
def test_the_checker_accepts_a_downward_import(module: str, is_package: bool, source: str) -> None:
    assert violations(source, module, is_package, UNITS) == []


def test_the_checker_catches_a_violation_in_a_tree(tmp_path: Path) -> None:
    # A synthetic package with one upward import, checked the way the real tree is.
    root = tmp_path / "memserve"
    for folder in ("store", "engine"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "engine" / "clock.py").write_text("X = 1\n")
    (root / "store" / "repo.py").write_text('"""doc"""\n\nfrom ..engine.clock import X\n')
    assert tree_violations(root) == [
        "memserve.store.repo:3 imports memserve.engine.clock (store may not import engine)"]
