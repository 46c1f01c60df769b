"""Moving one namespace between servers: export pages of episodes with their embeddings and extractions;
import them as they were (embeddings not encoded again, no extraction), so the copy answers queries exactly like
the source. (With ``graph_vectors`` spans the importing server still runs the model for the token vectors its
graph pools phrase vectors from; see MemoryEngine.store.)

Only what DuckDB holds as the source of truth travels: episodes (ids, fields, event and create times),
embeddings and extractions. The graph, the indexes and the compact memory are derived and rebuilt by the
importing server; access statistics stay behind (they describe the source's traffic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import FailedPrecondition, InvalidArgument
from ..store import episodes_repo, extractions_repo
from ..store.db import Database
from ..types import Episode, ExtractionIn, TripleIn
from . import paging


@dataclass(frozen=True)
class ExportedEpisode:
    episode: Episode
    embedding: np.ndarray  # float32 (dim,)
    extraction: ExtractionIn | None


def export_page(db: Database, namespace: str, page_size: int, page_token: str) -> tuple[list[ExportedEpisode], str]:
    size = paging.page_size(page_size)
    after = int(paging.decode(page_token, "export", namespace, 0))
    cur = db.reader()
    rows = episodes_repo.list_episodes(cur, namespace, after, size + 1)
    token = paging.encode("export", namespace, rows[size - 1].seq) if len(rows) > size else ""
    rows = rows[:size]
    seqs = [e.seq for e in rows]
    got_seqs, vectors = episodes_repo.load_embeddings(cur, namespace, seqs)
    by_seq = {int(s): vectors[i] for i, s in enumerate(got_seqs)}
    extractions = extractions_repo.load(cur, namespace, seqs)
    out = []
    for e in rows:
        found = extractions.get(e.seq)
        extraction = None if found is None else ExtractionIn(
            entities=tuple(found.entities),
            triples=tuple(TripleIn(t.subject, t.predicate, t.object) for t in found.triples))
        out.append(ExportedEpisode(e, np.asarray(by_seq[e.seq], dtype=np.float32), extraction))
    return out, token


def check_embeddings(blobs: Sequence[bytes], dim: int, model: str, expected_model: str) -> np.ndarray:
    """The imported embeddings as one (n, dim) float32 array, after checking they fit this server."""
    if model != expected_model:
        raise FailedPrecondition(
            f"the export was embedded with {model!r}, this server embeds with {expected_model!r}: import into a "
            "server with the same embedding_model (or re-send the texts with WriteEpisodes)",
            field="embedding_model", reason="EMBEDDER_MISMATCH")
    vectors = np.empty((len(blobs), dim), dtype=np.float32)
    for i, blob in enumerate(blobs):
        if len(blob) != 4 * dim:
            raise InvalidArgument(f"episodes[{i}].embedding has {len(blob)} bytes; {4 * dim} expected "
                                  f"({dim} float32 values)", field=f"episodes[{i}].embedding")
        vectors[i] = np.frombuffer(blob, dtype="<f4")
    if not np.isfinite(vectors).all():
        bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise InvalidArgument(f"episodes[{bad}].embedding holds NaN or infinite values",
                              field=f"episodes[{bad}].embedding")
    return vectors
