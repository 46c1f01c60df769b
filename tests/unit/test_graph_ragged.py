"""RaggedTable (graph/ragged.py): columnar seq → sorted ids, checked against a dict of arrays."""

from __future__ import annotations

import numpy as np
import pytest

from memserve.graph.ragged import RaggedTable


def _same(table: RaggedTable, ref: dict[int, np.ndarray]) -> None:
    assert len(table) == len(ref)
    assert table.key_array().tolist() == sorted(ref)
    assert list(table) == sorted(ref)
    for key, values in ref.items():
        assert key in table
        assert table[key].tolist() == values.tolist()
        assert table.get(key).tolist() == values.tolist()
    keys, values = table.rows()
    want = [(k, v) for k in sorted(ref) for v in ref[k].tolist()]
    assert list(zip(keys.tolist(), values.tolist(), strict=True)) == want
    assert table.total_values() == len(want)


@pytest.mark.parametrize("min_overlay", [0, 3, 1024])
def test_random_sets_and_pops_match_a_dict(min_overlay: int) -> None:
    rng = np.random.default_rng(min_overlay)
    table = RaggedTable(min_overlay=min_overlay, overlay_fraction=2)
    ref: dict[int, np.ndarray] = {}
    for step in range(600):
        key = int(rng.integers(0, 80))
        if rng.random() < 0.3:
            popped = table.pop(key, np.full(1, -7))
            expected = ref.pop(key, np.full(1, -7))
            assert popped.tolist() == expected.tolist()
        else:
            values = np.unique(rng.integers(0, 1000, int(rng.integers(0, 6))))  # empty arrays too
            table[key] = values
            ref[key] = values
        if step % 50 == 0:
            _same(table, ref)
    _same(table, ref)
    table.compact()
    _same(table, ref)


def test_from_rows_keeps_keys_without_rows_and_survives_compaction() -> None:
    table = RaggedTable.from_rows(np.array([1, 1, 5]), np.array([10, 11, 50]), all_keys=np.array([1, 3, 5]),
                                  min_overlay=0)
    _same(table, {1: np.array([10, 11]), 3: np.zeros(0, np.int64), 5: np.array([50])})
    assert 4 not in table and "1" not in table
    with pytest.raises(KeyError):
        table[4]
    table[3] = np.array([30])
    table.pop(1)
    table.compact()
    _same(table, {3: np.array([30]), 5: np.array([50])})


def test_a_popped_view_stays_valid_after_compaction() -> None:
    table = RaggedTable.from_rows(np.array([1, 2]), np.array([10, 20]), min_overlay=0)
    popped = table.pop(1)
    for key in range(3, 40):  # forces several compactions
        table[key] = np.array([key])
    assert popped.tolist() == [10]


def test_no_object_per_key_after_compaction() -> None:
    table = RaggedTable(min_overlay=16)
    for key in range(10_000):
        table[key] = np.array([key, key + 1])
    assert len(table._overlay) <= max(16, len(table) // 8)  # the bulk is in the columns
    assert table.nbytes() < 10_000 * 40


def test_bad_options() -> None:
    with pytest.raises(ValueError):
        RaggedTable(min_overlay=-1)
    with pytest.raises(ValueError):
        RaggedTable(overlay_fraction=0)
