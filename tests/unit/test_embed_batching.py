"""Cost-bounded encoder batches: short texts (graph phrases, facts) share a forward pass in the hundreds,
passages keep ``batch_size``, and the vectors are the ones fixed-size batches give."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest

from memserve.embed import make_embedder
from memserve.embed.base import cost_bounded_stop
from memserve.embed.sentence_transformer import MAX_BATCH_TEXTS, SentenceTransformerEmbedder
from memserve.errors import ConfigError


@pytest.mark.parametrize(("lengths", "start", "count", "budget", "max_count", "stop"), [
    ([5] * 10, 0, 2, 20, 10, 4),        # 4 texts x 5 characters fill the 20-character budget
    ([5] * 10, 0, 2, 19, 10, 3),        # one character short: 3 texts
    ([1, 1, 1, 10, 10], 0, 2, 12, 5, 3),  # the 10-character text would make the run 4 x 10
    ([50, 60], 0, 1, 10, 5, 1),         # over budget from the start: still ``count`` texts
    ([5] * 10, 8, 4, 100, 10, 10),      # the run ends with the texts
    ([5] * 10, 0, 2, 1000, 6, 6),       # and at ``max_count``
    ([0, 0, 0], 0, 1, 2, 3, 2),         # empty texts count as one character
    ([3] * 4, 2, 1, 6, 8, 4),           # from the middle
])
def test_cost_bounded_stop(lengths: list[int], start: int, count: int, budget: int, max_count: int,
                           stop: int) -> None:
    assert cost_bounded_stop(np.array(lengths), start, count, budget, max_count) == stop


@cache
def _minilm(batch_chars: int | None) -> SentenceTransformerEmbedder:
    e = make_embedder("bundled:all-MiniLM-L6-v2", device="cpu", batch_size=8, batch_chars=batch_chars)
    assert isinstance(e, SentenceTransformerEmbedder)
    return e


def _spy(e: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    encode = e._model.encode

    def recording(texts: list[str], **kw: Any) -> Any:
        calls.append(list(texts))
        assert kw["batch_size"] == len(texts)  # one forward pass per call
        return encode(texts, **kw)

    monkeypatch.setattr(e._model, "encode", recording)
    return calls


@pytest.mark.slow
def test_short_texts_share_a_forward_pass_and_get_the_same_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    phrases = [f"phrase number {i}" for i in range(150)]  # 16-17 characters
    passages = [("Alice moved to Paris in 2019 and Bob joined Acme Robotics there. " * 4) + str(i)
                for i in range(20)]  # ~265 characters
    texts = phrases + passages
    fixed = _minilm(None)
    sized = _minilm(64)  # budget: 8 texts x 64 characters = 512 padded characters per pass
    calls = _spy(sized, monkeypatch)
    got = sized.embed(texts)
    fixed_calls = _spy(fixed, monkeypatch)
    want = fixed.embed(texts)
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert all(len(c) == 8 for c in fixed_calls[:-1])
    short = [c for c in calls if max(map(len, c)) <= 17]
    long = [c for c in calls if min(map(len, c)) > 200]
    assert sum(map(len, short)) == len(phrases) and sum(map(len, long)) == len(passages)
    assert max(map(len, short)) == 512 // 17 or max(map(len, short)) == 512 // 16  # ~30 per pass, not 8
    assert all(len(c) == 8 for c in long[:-1])  # passages: batch_size (over budget from the start)
    for c in calls:
        assert len(c) <= 8 or len(c) * max(map(len, c)) <= 512


@pytest.mark.slow
def test_the_run_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    e = _minilm(4096)  # 8 x 4096: room for ~16k one-character texts
    calls = _spy(e, monkeypatch)
    out = e.embed(["x"] * (MAX_BATCH_TEXTS + 5))
    assert [len(c) for c in calls] == [MAX_BATCH_TEXTS, 5]
    np.testing.assert_allclose(out, np.repeat(out[:1], len(out), axis=0), atol=1e-5)


@pytest.mark.parametrize(("kw", "field"), [({"batch_chars": 0}, "embedding_batch_chars"),
                                           ({"batch_size": 0}, "embedding_batch_size")])
def test_bad_batch_settings_are_refused_before_the_model_loads(kw: dict[str, int], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SentenceTransformerEmbedder("/nonexistent/model", **kw)
