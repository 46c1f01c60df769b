from __future__ import annotations

import numpy as np
import pytest

from memserve.graph.lazy_map import LazyMap


def test_lazy_map_behaves_like_a_dict() -> None:
    built: list[int] = []

    def make(i: int) -> set[int]:
        built.append(i)
        return {i}

    m = LazyMap(np.array([-5, 2, 9], dtype=np.int64), make)
    ref = {-5: {0}, 2: {1}, 9: {2}}
    assert len(m) == 3 and built == []
    assert m[2] == {1} and m[2] is m[2] and built == [1]
    m[2].add(7)
    ref[2].add(7)
    del m[-5], ref[-5]
    m[4] = {4}
    ref[4] = {4}
    assert -5 not in m and 4 in m and 3 not in m
    with pytest.raises(KeyError):
        m[-5]
    with pytest.raises(KeyError):
        del m[-5]
    assert dict(m) == ref and len(m) == len(ref)
    m[-5] = {1}  # a deleted base key comes back
    ref[-5] = {1}
    del m[9], ref[9]
    assert dict(m) == ref and len(m) == len(ref) and sorted(m) == sorted(ref)
    assert m.setdefault(11, set()) == set() and m.pop(11) == set() and len(m) == len(ref)


def test_key_array_lists_every_key_once() -> None:
    m = LazyMap(np.array([1, 4, 6, 8], dtype=np.int64), lambda i: i)
    assert sorted(m.key_array().tolist()) == [1, 4, 6, 8]
    m[4]  # materialised: still once
    del m[6]
    m[3] = 0
    m[8] = 5
    assert sorted(m.key_array().tolist()) == sorted(m) == [1, 3, 4, 8]


def test_text_column_round_trips_unicode() -> None:
    from memserve.graph.text_column import TextColumn

    texts = ["", "Xawery Żuławski", "東京", "a b c", "é"]
    col = TextColumn(texts)
    assert list(col) == texts and len(col) == 5 and col[-1] == "é" and col[1:3] == texts[1:3]
    with pytest.raises(IndexError):
        col[5]
    assert col.nbytes < sum(len(t) for t in texts) * 2 + 8 * 6
