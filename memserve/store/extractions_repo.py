"""SQL for stored per-episode extractions (table episode_extractions)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import duckdb

from ..domain.extraction import ExtractionResult, Triple
from .db import one_row


def save(cur: duckdb.DuckDBPyConnection, namespace: str, items: Sequence[tuple[int, str, ExtractionResult]]) -> None:
    """(seq, source, result) rows; one statement for the batch (executemany is slow in DuckDB)."""
    if not items:
        return
    seqs = [int(s) for s, _, _ in items]
    cur.execute("DELETE FROM episode_extractions WHERE namespace = ? AND seq IN (SELECT unnest(?::BIGINT[]))",
                [namespace, seqs])
    cur.execute(
        "INSERT INTO episode_extractions SELECT ?, unnest(?::BIGINT[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
        "unnest(?::VARCHAR[]), unnest(?::INTEGER[])",
        [namespace, seqs, [src for _, src, _ in items],
         [json.dumps(list(r.entities), ensure_ascii=False) for _, _, r in items],
         [json.dumps([[t.subject, t.predicate, t.object] for t in r.triples], ensure_ascii=False) for _, _, r in items],
         [int(r.dropped_triples) for _, _, r in items]])


def load(cur: duckdb.DuckDBPyConnection, namespace: str, seqs: Sequence[int]) -> dict[int, ExtractionResult]:
    if not seqs:
        return {}
    rows = cur.execute("SELECT seq, entities, triples, dropped FROM episode_extractions WHERE namespace = ? "
                       "AND seq IN (SELECT unnest(?::BIGINT[]))", [namespace, [int(s) for s in seqs]]).fetchall()
    return {int(seq): ExtractionResult(entities=tuple(json.loads(ents)),
                                       triples=tuple(Triple(*t) for t in json.loads(triples)),
                                       dropped_triples=int(dropped))
            for seq, ents, triples, dropped in rows}


def sources(cur: duckdb.DuckDBPyConnection, namespace: str, seqs: Sequence[int]) -> dict[int, str]:
    """seq → who made its stored extraction (an extractor's name, or "client")."""
    if not seqs:
        return {}
    rows = cur.execute("SELECT seq, source FROM episode_extractions WHERE namespace = ? "
                       "AND seq IN (SELECT unnest(?::BIGINT[]))", [namespace, [int(s) for s in seqs]]).fetchall()
    return {int(seq): str(source) for seq, source in rows}


def delete(cur: duckdb.DuckDBPyConnection, namespace: str, seqs: Sequence[int] | None = None) -> None:
    if seqs is None:
        cur.execute("DELETE FROM episode_extractions WHERE namespace = ?", [namespace])
    elif seqs:
        cur.execute("DELETE FROM episode_extractions WHERE namespace = ? AND seq IN (SELECT unnest(?::BIGINT[]))",
                    [namespace, [int(s) for s in seqs]])


def dropped_total(cur: duckdb.DuckDBPyConnection) -> int:
    return int(one_row(cur.execute("SELECT coalesce(sum(dropped), 0) FROM episode_extractions"))[0])
