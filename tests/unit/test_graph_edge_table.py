"""EdgeTable: after a bulk load and random adds, drops and revivals it equals a dict-of-edges reference, and a
table loaded from its own arrays equals it (the restart path)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from memserve.graph.edge_table import EdgeTable


def _as_dict(t: EdgeTable) -> dict[tuple[int, int], float]:
    a, b, w = t.arrays()
    return dict(zip(zip(a.tolist(), b.tolist(), strict=True), w.tolist(), strict=True))


@pytest.mark.parametrize("seed", range(5))
def test_random_updates_after_load_match_a_reference(seed: int) -> None:
    rng = random.Random(seed)
    keys = sorted({(a, b) for a, b in ((rng.randrange(40), rng.randrange(40)) for _ in range(300)) if a < b})
    loaded = rng.sample(keys, len(keys) // 2)
    ref_w = {k: float(rng.randrange(1, 5)) for k in loaded}
    ref_refs = {k: rng.randrange(1, 3) for k in loaded}
    table = EdgeTable()
    order = list(ref_w)
    table.load(np.array([k[0] for k in order]), np.array([k[1] for k in order]),
               np.array([ref_w[k] for k in order]), np.array([ref_refs[k] for k in order]))
    for _ in range(2000):
        key = rng.choice(keys)
        if key in ref_refs and rng.random() < 0.5:
            table.update(key, refs=-1)
            ref_refs[key] -= 1
            if ref_refs[key] == 0:
                del ref_refs[key], ref_w[key]
        elif key in ref_refs and rng.random() < 0.5:
            table.update(key, refs=0, weight_delta=1.0)
            ref_w[key] += 1.0
        else:
            w = float(rng.randrange(1, 9))
            table.update(key, refs=1, weight=w)
            ref_refs[key] = ref_refs.get(key, 0) + 1
            ref_w[key] = w
        assert len(table) == len(ref_refs)
        assert (key in table) == (key in ref_refs)
    assert _as_dict(table) == ref_w
    assert all(table.weight(k) == w for k, w in ref_w.items())
    with pytest.raises(KeyError):
        table.update((1000, 1001), refs=-1)
    # what a restart would load equals the incrementally maintained table
    again = EdgeTable()
    a, b, w = table.arrays()
    again.load(a, b, w, np.array([ref_refs[(x, y)] for x, y in zip(a.tolist(), b.tolist(), strict=True)]))
    assert _as_dict(again) == _as_dict(table) and len(again) == len(table)


def test_load_keeps_no_per_edge_dict_and_needs_an_empty_table() -> None:
    table = EdgeTable()
    table.load(np.array([3, 1, 2]), np.array([4, 5, 9]), np.array([1.0, 2.0, 3.0]), np.array([1, 1, 2]))
    assert table._slot == {} and len(table) == 3 and (1, 5) in table and (5, 1) not in table
    assert table.weight((2, 9)) == 3.0
    with pytest.raises(ValueError):
        table.load(np.array([1]), np.array([2]), np.array([1.0]), np.array([1]))
