"""Contract every Embedder must honour, run over all of them (the real packaged MiniLM is marked slow), and
proof that it catches broken ones: each deliberately broken embedder below fails at least one clause."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import numpy as np
import pytest

from memserve.embed import Embedder, HashEmbedder, make_embedder, normalize_rows
from memserve.embed.spans import TokenEmbedder, TokenVectors, span_vector, supports_tokens
from memserve.extract.normalize import normalize_phrase

TEXTS = ["Alice moved to Paris in 2019.", "Bob Jones joined Acme Robotics as chief engineer.",
         "The quarterly tax filing deadline is in April.", "Alice relocated to Paris in 2019."]
UNICODE = ["東京は日本の首都です。", "مرحبا بالعالم", "Émile Zola écrivit « Germinal ».", "emoji 🚀✨ rocket",
           "e\u0301 combining accent", "zero\u200bwidth", "tab\tand\nnewline"]
HUGE = "memory " * 30_000  # 210k characters: far past any model's sequence length

# The MiniLM model takes seconds to load: one instance for the whole run.
_minilm = cache(lambda: make_embedder("bundled:all-MiniLM-L6-v2", device="cpu"))

IMPLEMENTATIONS: dict[str, Callable[[], Embedder]] = {
    "hash-64": lambda: make_embedder("hash:64"),
    "hash-384": lambda: HashEmbedder(384),
    "minilm": _minilm,
}
SLOW = {"minilm"}


# -- the contract: each clause is a function that raises AssertionError when the embedder breaks it ---------

def is_an_embedder(e: Embedder) -> None:
    assert isinstance(e, Embedder)
    assert isinstance(e.name, str) and e.name
    assert isinstance(e.dim, int) and e.dim > 0


def shape_dtype_and_unit_rows(e: Embedder) -> None:
    out = e.embed(TEXTS)
    assert isinstance(out, np.ndarray) and out.shape == (len(TEXTS), e.dim) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def empty_batch(e: Embedder) -> None:
    out = e.embed([])
    assert out.shape == (0, e.dim) and out.dtype == np.float32


def one_row_per_text_in_order(e: Embedder) -> None:
    # Texts of very different lengths: an implementation that sorts by length must put the rows back.
    texts = [TEXTS[2] * 5, "Paris", TEXTS[1], "a b", TEXTS[0] * 2]
    batch = e.embed(texts)
    assert batch.shape[0] == len(texts)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(batch[i], e.embed([text])[0], atol=1e-4, err_msg=f"row {i}")


def deterministic(e: Embedder) -> None:
    np.testing.assert_allclose(e.embed(TEXTS), e.embed(TEXTS), atol=1e-6)


def duplicates_get_identical_rows(e: Embedder) -> None:
    out = e.embed([TEXTS[0], TEXTS[1], TEXTS[0]])
    np.testing.assert_allclose(out[0], out[2], atol=1e-5)


def related_texts_are_closer(e: Embedder) -> None:
    a, b, unrelated = e.embed([TEXTS[0], TEXTS[3], TEXTS[2]])
    assert float(a @ b) > float(a @ unrelated) + 0.1


def unicode_and_degenerate_texts(e: Embedder) -> None:
    texts = [*UNICODE, "", "   ", "!!!", "a"]
    out = e.embed(texts)
    assert out.shape == (len(texts), e.dim) and np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert len({row.tobytes() for row in out[: len(UNICODE)]}) == len(UNICODE)  # not all mapped to one vector


def huge_input_is_bounded(e: Embedder) -> None:
    out = e.embed([HUGE, "short"])
    assert out.shape == (2, e.dim) and np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


CONTRACT = [is_an_embedder, shape_dtype_and_unit_rows, empty_batch, one_row_per_text_in_order, deterministic,
            duplicates_get_identical_rows, related_texts_are_closer, unicode_and_degenerate_texts,
            huge_input_is_bounded]


def _params() -> list[object]:
    return [pytest.param(impl, clause, id=f"{impl}-{clause.__name__}",
                         marks=[pytest.mark.slow] if impl in SLOW else [])
            for impl in IMPLEMENTATIONS for clause in CONTRACT]


@pytest.mark.parametrize(("impl", "clause"), _params())
def test_contract(impl: str, clause: Callable[[Embedder], None]) -> None:
    clause(IMPLEMENTATIONS[impl]())


# -- broken embedders: the contract must reject each of them ------------------------------------------------

class _Broken:
    def __init__(self) -> None:
        self._inner = HashEmbedder(64)
        self.dim = 64
        self.name = "broken"


class SortsAndForgetsToRestoreOrder(_Broken):
    """The length-sorting optimisation of the sentence-transformers embedder, without the un-sort."""

    def embed(self, texts: list[str]) -> np.ndarray:
        order = np.argsort([len(t) for t in texts], kind="stable")
        return self._inner.embed([texts[i] for i in order])


class NotNormalised(_Broken):
    def embed(self, texts: list[str]) -> np.ndarray:
        return self._inner.embed(texts) * 3.0


class FloatSixtyFour(_Broken):
    def embed(self, texts: list[str]) -> np.ndarray:
        return self._inner.embed(texts).astype(np.float64)


class EmptyBatchHasNoColumns(_Broken):
    def embed(self, texts: list[str]) -> np.ndarray:
        return self._inner.embed(texts) if texts else np.zeros((0,), dtype=np.float32)


class BlankTextGivesNaN(_Broken):
    """Normalising a zero vector: 0 / 0."""

    def embed(self, texts: list[str]) -> np.ndarray:
        out = self._inner.embed(texts)
        for i, t in enumerate(texts):
            if not t.strip():
                out[i] = np.nan
        return out


class Random(_Broken):
    def embed(self, texts: list[str]) -> np.ndarray:
        return normalize_rows(np.random.default_rng().standard_normal((len(texts), 64)).astype(np.float32))


class TruncatesTheBatch(_Broken):
    """Drops texts past a fixed batch size."""

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._inner.embed(texts[:3])


@pytest.mark.parametrize("broken", [SortsAndForgetsToRestoreOrder, NotNormalised, FloatSixtyFour,
                                    EmptyBatchHasNoColumns, BlankTextGivesNaN, Random, TruncatesTheBatch])
def test_the_contract_rejects_a_broken_embedder(broken: type[_Broken]) -> None:
    failed = []
    for clause in CONTRACT:
        try:
            clause(broken())  # type: ignore[arg-type]
        except AssertionError:
            failed.append(clause.__name__)
    assert failed, f"{broken.__name__} passed every clause of the contract"


# -- token vectors (embed/spans.py): the same contract for every TokenEmbedder --------------------------------

SPAN_TEXT = "Polish-Russian War\nPolish-Russian War is a 2009 film directed by Xawery Żuławski."


def token_rows_match_embed(e: TokenEmbedder) -> None:
    texts = [TEXTS[2] * 3, SPAN_TEXT, "Paris", ""]
    vectors, tokens = e.embed_with_tokens(texts)
    np.testing.assert_allclose(vectors, e.embed(texts), atol=1e-4)  # the sentence vectors are embed()'s
    assert len(tokens) == len(texts)
    for text, tv in zip(texts, tokens, strict=True):
        assert isinstance(tv, TokenVectors) and tv.ids.dtype == np.int32 and tv.vectors.dtype == np.float16
        assert tv.vectors.shape == (len(tv.ids), e.dim) and np.all(np.isfinite(tv.vectors))
        assert (len(tv.ids) == 0) == (not any(ch.isalnum() for ch in text))  # only content tokens


def token_rows_in_text_order(e: TokenEmbedder) -> None:
    texts = [TEXTS[2] * 5, "Paris", TEXTS[1]]
    _, together = e.embed_with_tokens(texts)
    for i, text in enumerate(texts):
        _, [alone] = e.embed_with_tokens([text])
        np.testing.assert_array_equal(together[i].ids, alone.ids, err_msg=f"row {i}")


def normalised_phrases_are_found_in_their_text(e: TokenEmbedder) -> None:
    """The graph's phrases are normalised (lowercase, punctuation → space, accents folded): they must still be
    found among the tokens of the text they came from, and a phrase from elsewhere must not."""
    _, [tv] = e.embed_with_tokens([SPAN_TEXT])
    found = [normalize_phrase(p) for p in ("Polish-Russian War", "Xawery Żuławski", "2009")]
    ids = e.phrase_token_ids([*found, "warsaw"])
    assert all(len(i) for i in ids) and all(i.dtype == np.int32 for i in ids)
    vectors = [span_vector(tv, i) for i in ids]
    assert all(v is not None for v in vectors[:3]) and vectors[3] is None
    for v in vectors[:3]:
        assert v is not None and abs(float(np.linalg.norm(v)) - 1) < 1e-4


TOKEN_CONTRACT = [token_rows_match_embed, token_rows_in_text_order, normalised_phrases_are_found_in_their_text]


@pytest.mark.parametrize(("impl", "clause"), [
    pytest.param(impl, clause, id=f"{impl}-{clause.__name__}", marks=[pytest.mark.slow] if impl in SLOW else [])
    for impl in IMPLEMENTATIONS for clause in TOKEN_CONTRACT])
def test_token_contract(impl: str, clause: Callable[[TokenEmbedder], None]) -> None:
    embedder = IMPLEMENTATIONS[impl]()
    assert supports_tokens(embedder)
    clause(embedder)  # type: ignore[arg-type]


class TokensOutOfOrder(HashEmbedder):
    """Returns each text's tokens, but in length order (the sorting optimisation without the un-sort)."""

    def embed_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        vectors, tokens = super().embed_with_tokens(texts)
        return vectors, sorted(tokens, key=lambda t: len(t.ids))


class PunctuationTokensKept(HashEmbedder):
    """Numbers punctuation as tokens too, so "polish russian war" never matches "polish - russian war"."""

    def _tokens(self, text: str) -> list[str]:
        return [w for w in re.findall(r"\w+|[^\w\s]", text.lower())]


@pytest.mark.parametrize("broken", [TokensOutOfOrder, PunctuationTokensKept])
def test_the_token_contract_rejects_a_broken_embedder(broken: type[HashEmbedder]) -> None:
    failed = []
    for clause in TOKEN_CONTRACT:
        try:
            clause(broken(64))
        except AssertionError:
            failed.append(clause.__name__)
    assert failed, f"{broken.__name__} passed every clause of the token contract"
