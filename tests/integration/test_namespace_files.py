"""Each namespace owns exactly its own snapshot files: dropping namespace ``x`` never touches ``x.faiss``'s
(issue 13: a ``x.faiss*`` glob in ``IndexRegistry.drop`` deleted them). Real DuckDB and FAISS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from memserve_client import InvalidArgumentError, MemoryClient

from memserve.engine.index_registry import IndexRegistry
from memserve.engine.validation import check_namespace
from memserve.errors import InvalidArgument
from memserve.store.db import Database
from memserve.vector import load_index

DIM = 8
# Every name here is a prefix of the next one's file names under the old glob.
NAMES = ("x", "x.faiss", "x.faiss2", "x.faiss.tombstones.npz")


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "m.duckdb")
    database.migrate()
    yield database
    database.close()


def make_registry(db: Database, folder: Path) -> IndexRegistry:
    # hnsw: its snapshots have the tombstone side file, the second file a drop must remove.
    return IndexRegistry(db, folder, dim=DIM, kind="hnsw", hnsw_threshold=0, use_gpu="false")


def fill(registry: IndexRegistry) -> None:
    rng = np.random.default_rng(3)
    for i, name in enumerate(NAMES):
        registry.add(name, np.arange(10) + 100 * i, rng.standard_normal((10, DIM)).astype(np.float32))
        registry.remove(name, np.array([100 * i]))  # a tombstone, so the side file is not empty
    assert registry.snapshot(all_namespaces=True) == len(NAMES)


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_drop_removes_only_the_namespaces_own_files(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "indexes"
    registry = make_registry(db, folder)
    fill(registry)
    before = files(folder)
    assert {"x.faiss", "x.faiss.tombstones.npz", "x.faiss.faiss", "x.faiss.faiss.tombstones.npz"} <= before
    checksums = {name: registry.checksum(name) for name in NAMES[1:]}

    registry.drop("x")

    assert files(folder) == before - {"x.faiss", "x.faiss.tombstones.npz"}
    for name in NAMES[1:]:
        assert registry.checksum(name) == checksums[name], name
        saved = load_index(folder / f"{name}.faiss")
        np.testing.assert_array_equal(np.sort(saved.ids()), np.arange(1, 10) + 100 * NAMES.index(name))


def test_restart_forgets_only_snapshots_of_dropped_namespaces(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "indexes"
    fill(make_registry(db, folder))
    before = files(folder)
    # A restart that knows every namespace but "x" (dropped while its snapshot was being written). The
    # database holds no episodes here, so the surviving indexes are emptied by reconciliation, but their
    # files stay theirs.
    make_registry(db, folder).load_all(list(NAMES[1:]))
    assert files(folder) == before - {"x.faiss", "x.faiss.tombstones.npz"}
    assert not {"x.faiss", "x.faiss.tombstones.npz"} & files(folder)
    assert {"x.faiss.faiss", "x.faiss.faiss.tombstones.npz", "x.faiss2.faiss"} <= files(folder)


@pytest.mark.parametrize("name", ["x", "x.faiss", "a-b_c.d", "A1", "x" * 64, "x.faiss.tombstones.npz"])
def test_namespace_names_that_are_valid(name: str) -> None:
    check_namespace(name)


@pytest.mark.parametrize("name", ["", ".x", "-x", "_x", "../x", "x/y", "x\\y", "x y", "x" * 65, "x*", "é", "x\n"])
def test_namespace_names_that_could_escape_or_collide_are_refused(name: str) -> None:
    # A name is used as a file name: no separators, no leading dot (temporary snapshot files start with "."),
    # no glob characters.
    with pytest.raises(InvalidArgument) as info:
        check_namespace(name)
    assert info.value.field == "namespace"


@pytest.mark.parametrize("name", ["trailing-newline\n", ".hidden", "../up", "x*"])
def test_the_server_refuses_them_with_the_field_named(client: MemoryClient, name: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        client.write(name, ["text"])
    assert err.value.field == "namespace"
