"""Build or load a namespace's vector index by kind name (the value of a setting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memserve.vector.base import IndexFileError, VectorIndex
from memserve.vector.exact import ExactIndex
from memserve.vector.faiss_index import FaissIndex

KINDS = ("auto", "flat", "hnsw", "exact")

_ZIP_MAGIC = b"PK\x03\x04"  # np.savez writes a zip archive; FAISS files start with a fourcc such as b"IxMp"


def make_index(kind: str, dim: int, **settings: Any) -> VectorIndex:
    """``auto``: flat, becoming HNSW past ``hnsw_threshold``; ``flat``/``hnsw``: forced; ``exact``: NumPy."""
    if kind == "auto":
        return FaissIndex(dim, **settings)
    if kind == "flat":
        return FaissIndex(dim, **{**settings, "hnsw_threshold": None})
    if kind == "hnsw":
        return FaissIndex(dim, **{**settings, "hnsw_threshold": 0})
    if kind == "exact":
        if settings:
            raise ValueError(f"the exact index takes no settings, got {sorted(settings)}")
        return ExactIndex(dim)
    raise ValueError(f"unknown vector index kind {kind!r}; expected one of {', '.join(KINDS)}")


def load_index(path: Path, **settings: Any) -> VectorIndex:
    """Load whatever ``save`` wrote at ``path``; ``settings`` apply to FAISS indexes (ef_search, ...)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise IndexFileError(f"cannot read vector index {path}: {exc}") from exc
    if magic == _ZIP_MAGIC:
        return ExactIndex.load(path)
    return FaissIndex.load(path, **settings)
