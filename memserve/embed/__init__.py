"""Text → vectors. ``make_embedder`` picks the implementation from settings."""

from __future__ import annotations

from .base import Embedder, normalize_rows
from .fake import HashEmbedder
from .scheduler import EncoderScheduler

__all__ = ["Embedder", "EncoderScheduler", "HashEmbedder", "make_embedder", "normalize_rows"]


def make_embedder(model: str, *, device: str = "auto", batch_size: int = 32,
                  max_seq_length: int | None = None, batch_chars: int | None = None) -> Embedder:
    """``hash:<dim>`` gives the deterministic test embedder; anything else is a sentence-transformers model
    (a local path, a cached model name, or ``bundled:all-MiniLM-L6-v2``, the offline default). ``batch_chars``:
    the cost budget per text of one forward pass (None: batches of exactly ``batch_size``)."""
    if model.startswith("hash:"):
        return HashEmbedder(int(model.split(":", 1)[1]))
    from .sentence_transformer import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(model, device=device, batch_size=batch_size, max_seq_length=max_seq_length,
                                       batch_chars=batch_chars)
