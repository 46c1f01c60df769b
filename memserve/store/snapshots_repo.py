"""SQL for ``index_snapshots``: the checksum recorded for each namespace's vector-index snapshot."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb


def record(tx: duckdb.DuckDBPyConnection, namespace: str, sha256: str, vector_count: int) -> None:
    tx.execute("DELETE FROM index_snapshots WHERE namespace = ?", [namespace])
    tx.execute("INSERT INTO index_snapshots VALUES (?, ?, ?, now())", [namespace, sha256, vector_count])


def checksum(cur: duckdb.DuckDBPyConnection, namespace: str) -> str | None:
    row = cur.execute("SELECT sha256 FROM index_snapshots WHERE namespace = ?", [namespace]).fetchone()
    return None if row is None else str(row[0])


def forget(tx: duckdb.DuckDBPyConnection, namespace: str) -> None:
    tx.execute("DELETE FROM index_snapshots WHERE namespace = ?", [namespace])


def forget_others(tx: duckdb.DuckDBPyConnection, keep: Sequence[str]) -> None:
    """Rows of namespaces that no longer exist."""
    tx.execute("DELETE FROM index_snapshots WHERE NOT list_contains(?::VARCHAR[], namespace)", [list(keep)])
