"""Persistence of the knowledge graph (tables from 0002_graph.sql) and of the extraction job queue.

Every function takes the caller's ``duckdb.DuckDBPyConnection`` and never commits: the engine wraps
``save_delta`` and ``finish_jobs`` in one transaction, so the graph and the queue can never disagree.
Bulk rows go in through registered Arrow tables (``executemany`` manages ~1.3k rows/s, FIELD-NOTES).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import duckdb
import numpy as np
import pyarrow as pa

from memserve.domain.graph import GraphColumns, GraphDelta, PersistedGraph

_GRAPH_TABLES = (
    "graph_passages",
    "graph_phrases",
    "graph_facts",
    "graph_passage_phrases",
    "graph_passage_facts",
    "graph_synonyms",
    "graph_fact_ivf",
    "graph_phrase_ivf",
)
# A persisted IVF quantizer per KnowledgeGraph index kind (IVF_KINDS): (table, column of the count when trained).
_IVF_TABLES = {"fact": ("graph_fact_ivf", "fact_count"), "phrase": ("graph_phrase_ivf", "phrase_count")}
_names = itertools.count()


def _vectors(vecs: np.ndarray, n: int) -> pa.Array:
    vecs = np.ascontiguousarray(vecs, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, 1), np.float32)
    offsets = np.arange(0, n * vecs.shape[1] + 1, max(vecs.shape[1], 1), dtype=np.int32)[: n + 1]
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(vecs.ravel(), type=pa.float32()))


def _insert(conn: duckdb.DuckDBPyConnection, table: str, namespace: str, columns: dict[str, pa.Array]) -> None:
    n = len(next(iter(columns.values())))
    if n == 0:
        return
    data = pa.table({"namespace": pa.array([namespace] * n, type=pa.string()), **columns})
    view = f"_graph_rows_{next(_names)}"
    conn.register(view, data)
    try:
        names = ", ".join(data.column_names)
        conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {view}")
    finally:
        conn.unregister(view)


def _delete(conn: duckdb.DuckDBPyConnection, table: str, namespace: str, column: str, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(f"DELETE FROM {table} WHERE namespace = ? AND {column} = ANY(?)", [namespace, list(ids)])


def save_delta(conn: duckdb.DuckDBPyConnection, namespace: str, delta: GraphDelta) -> None:
    """Apply one ``add_passages`` / ``remove_passages`` delta: delete removed rows, then insert added rows."""
    removed = list(delta.removed_passages)
    for table in ("graph_passages", "graph_passage_phrases", "graph_passage_facts"):
        _delete(conn, table, namespace, "seq", removed)
    _delete(conn, "graph_phrases", namespace, "phrase_id", delta.removed_phrases)
    _delete(conn, "graph_synonyms", namespace, "phrase_a", delta.removed_phrases)
    _delete(conn, "graph_synonyms", namespace, "phrase_b", delta.removed_phrases)
    _delete(conn, "graph_facts", namespace, "fact_id", delta.removed_facts)

    _insert(conn, "graph_passages", namespace, {"seq": pa.array(sorted(delta.added_passages), type=pa.int64())})
    _insert(conn, "graph_phrases", namespace, {
        "phrase_id": pa.array([p for p, _ in delta.added_phrases], type=pa.int64()),
        "text": pa.array([t for _, t in delta.added_phrases], type=pa.string()),
        "embedding": _vectors(delta.added_phrase_vectors, len(delta.added_phrases)),
    })
    facts = delta.added_facts
    _insert(conn, "graph_facts", namespace, {
        "fact_id": pa.array([f.fact_id for f in facts], type=pa.int64()),
        "subject_id": pa.array([f.subject_id for f in facts], type=pa.int64()),
        "predicate": pa.array([f.predicate for f in facts], type=pa.string()),
        "object_id": pa.array([f.object_id for f in facts], type=pa.int64()),
        "text": pa.array([f.text for f in facts], type=pa.string()),
        "embedding": _vectors(delta.added_fact_vectors, len(facts)),
    })
    _insert(conn, "graph_passage_phrases", namespace, {
        "seq": pa.array([s for s, _ in delta.added_passage_phrases], type=pa.int64()),
        "phrase_id": pa.array([p for _, p in delta.added_passage_phrases], type=pa.int64()),
    })
    _insert(conn, "graph_passage_facts", namespace, {
        "seq": pa.array([s for s, _ in delta.added_passage_facts], type=pa.int64()),
        "fact_id": pa.array([f for _, f in delta.added_passage_facts], type=pa.int64()),
    })
    _insert(conn, "graph_synonyms", namespace, {
        "phrase_a": pa.array([a for a, _, _ in delta.added_synonyms], type=pa.int64()),
        "phrase_b": pa.array([b for _, b, _ in delta.added_synonyms], type=pa.int64()),
        "similarity": pa.array([s for _, _, s in delta.added_synonyms], type=pa.float64()),
    })


def _columns(conn: duckdb.DuckDBPyConnection, sql: str, namespace: str) -> pa.Table:
    return conn.sql(sql, params=[namespace]).to_arrow_table()


def _ints(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(), dtype=np.int64)


def _vector_matrix(table: pa.Table, name: str, dim: int) -> np.ndarray:
    """A FLOAT[] column as one (n, dim) float32 block (no per-row Python lists)."""
    n = table.num_rows
    if n == 0:
        return np.zeros((0, dim), np.float32)
    flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(n, dim)


def load_graph_rows(conn: duckdb.DuckDBPyConnection, namespace: str, dim: int) -> PersistedGraph:
    """A namespace's graph tables as columns, plus its persisted IVF quantizers: columnar reads, nothing per row.
    ``memserve.graph.restore_graph`` builds the in-memory graph from them."""
    ph = _columns(conn, "SELECT phrase_id, text, embedding FROM graph_phrases WHERE namespace = ? ORDER BY phrase_id",
                  namespace)
    fa = _columns(conn, "SELECT fact_id, subject_id, predicate, object_id, text, embedding FROM graph_facts "
                  "WHERE namespace = ? ORDER BY fact_id", namespace)
    pp = _columns(conn, "SELECT seq, phrase_id FROM graph_passage_phrases WHERE namespace = ?", namespace)
    pf = _columns(conn, "SELECT seq, fact_id FROM graph_passage_facts WHERE namespace = ?", namespace)
    sy = _columns(conn, "SELECT phrase_a, phrase_b, similarity FROM graph_synonyms WHERE namespace = ?", namespace)
    ps = _columns(conn, "SELECT seq FROM graph_passages WHERE namespace = ?", namespace)
    columns = GraphColumns(
        phrase_ids=_ints(ph, "phrase_id"), phrase_texts=ph.column("text").to_pylist(),
        phrase_vectors=_vector_matrix(ph, "embedding", dim),
        fact_ids=_ints(fa, "fact_id"), fact_subjects=_ints(fa, "subject_id"),
        fact_predicates=fa.column("predicate").to_pylist(), fact_objects=_ints(fa, "object_id"),
        fact_texts=fa.column("text").to_pylist(), fact_vectors=_vector_matrix(fa, "embedding", dim),
        passage_phrase_seqs=_ints(pp, "seq"), passage_phrase_ids=_ints(pp, "phrase_id"),
        passage_fact_seqs=_ints(pf, "seq"), passage_fact_ids=_ints(pf, "fact_id"),
        synonym_a=_ints(sy, "phrase_a"), synonym_b=_ints(sy, "phrase_b"),
        synonym_similarity=np.asarray(sy.column("similarity").to_numpy(), np.float64),
        passages=_ints(ps, "seq"),
    )
    return PersistedGraph(columns, fact_ivf=load_ivf(conn, namespace, "fact"),
                          phrase_ivf=load_ivf(conn, namespace, "phrase"))


def _ivf_table(kind: str) -> tuple[str, str]:
    if kind not in _IVF_TABLES:
        raise ValueError(f"unknown IVF kind {kind!r}; expected one of {sorted(_IVF_TABLES)}")
    return _IVF_TABLES[kind]


def save_ivf(conn: duckdb.DuckDBPyConnection, namespace: str, kind: str, blob: bytes, count: int) -> None:
    """Persist a trained ``kind`` ("fact" | "phrase") IVF quantizer (``TrainedIVF.blob``, ``.built_at``),
    replacing any."""
    table, column = _ivf_table(kind)
    conn.execute(f"DELETE FROM {table} WHERE namespace = ?", [namespace])
    conn.execute(f"INSERT INTO {table} (namespace, {column}, quantizer, update_time) VALUES (?, ?, ?, now())",
                 [namespace, int(count), bytes(blob)])


def load_ivf(conn: duckdb.DuckDBPyConnection, namespace: str, kind: str) -> tuple[bytes, int] | None:
    """(blob, count when trained), or None if none was saved."""
    table, column = _ivf_table(kind)
    row = conn.execute(f"SELECT quantizer, {column} FROM {table} WHERE namespace = ?", [namespace]).fetchone()
    return None if row is None else (bytes(row[0]), int(row[1]))


def save_fact_ivf(conn: duckdb.DuckDBPyConnection, namespace: str, blob: bytes, fact_count: int) -> None:
    save_ivf(conn, namespace, "fact", blob, fact_count)


def load_fact_ivf(conn: duckdb.DuckDBPyConnection, namespace: str) -> tuple[bytes, int] | None:
    return load_ivf(conn, namespace, "fact")


def delete_namespace_graph(conn: duckdb.DuckDBPyConnection, namespace: str) -> None:
    for table in (*_GRAPH_TABLES, "extraction_jobs"):
        conn.execute(f"DELETE FROM {table} WHERE namespace = ?", [namespace])


# ------------------------------------------------------------------------------------ extraction queue


def enqueue_jobs(conn: duckdb.DuckDBPyConnection, namespace: str, seqs: Iterable[int]) -> None:
    """Queue passages for extraction; a passage already queued (in any state) is queued again as pending."""
    seqs = sorted({int(s) for s in seqs})
    if not seqs:
        return
    _delete(conn, "extraction_jobs", namespace, "seq", seqs)
    conn.execute(
        "INSERT INTO extraction_jobs (namespace, seq, state, attempts, last_error, update_time) "
        "SELECT ?, unnest(?), 'pending', 0, NULL, now()",
        [namespace, seqs],
    )


def claim_jobs(conn: duckdb.DuckDBPyConnection, namespace: str, limit: int) -> list[int]:
    """Mark up to ``limit`` pending jobs running (oldest seq first) and return their seqs."""
    rows = conn.execute(
        "UPDATE extraction_jobs SET state = 'running', attempts = attempts + 1, update_time = now() "
        "WHERE namespace = ? AND seq IN (SELECT seq FROM extraction_jobs WHERE namespace = ? AND state = 'pending' "
        "ORDER BY seq LIMIT ?) RETURNING seq",
        [namespace, namespace, limit],
    ).fetchall()
    return sorted(r[0] for r in rows)


def finish_jobs(conn: duckdb.DuckDBPyConnection, namespace: str, seqs: Sequence[int]) -> None:
    """Mark jobs done: call in the same transaction as the ``save_delta`` that stored their extraction."""
    if seqs:
        conn.execute(
            "UPDATE extraction_jobs SET state = 'done', last_error = NULL, update_time = now() "
            "WHERE namespace = ? AND seq = ANY(?)",
            [namespace, list(seqs)],
        )


def fail_job(conn: duckdb.DuckDBPyConnection, namespace: str, seq: int, error: str, max_attempts: int) -> None:
    """Record a failed attempt: back to pending while attempts remain, else failed for good."""
    conn.execute(
        "UPDATE extraction_jobs SET state = CASE WHEN attempts >= ? THEN 'failed' ELSE 'pending' END, "
        "last_error = ?, update_time = now() WHERE namespace = ? AND seq = ?",
        [max_attempts, error, namespace, seq],
    )


def requeue_running(conn: duckdb.DuckDBPyConnection) -> int:
    """At start-up: jobs left 'running' by a crash go back to 'pending'. Returns how many."""
    rows = conn.execute(
        "UPDATE extraction_jobs SET state = 'pending', update_time = now() WHERE state = 'running' RETURNING seq"
    ).fetchall()
    return len(rows)


def job_counts(conn: duckdb.DuckDBPyConnection, namespace: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT state, count(*) FROM extraction_jobs WHERE namespace = ? GROUP BY state", [namespace]
    ).fetchall()
    return {state: n for state, n in rows}


def failed_seqs(conn: duckdb.DuckDBPyConnection, namespace: str, seqs: Sequence[int]) -> list[int]:
    """Those of ``seqs`` whose extraction job failed for good."""
    if not seqs:
        return []
    rows = conn.execute(
        "SELECT seq FROM extraction_jobs WHERE namespace = ? AND state = 'failed' AND seq = ANY(?) ORDER BY seq",
        [namespace, [int(s) for s in seqs]],
    ).fetchall()
    return [int(r[0]) for r in rows]
