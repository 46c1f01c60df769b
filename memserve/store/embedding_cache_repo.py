"""The phrase/fact vector cache (0007_embedding_cache.sql): vectors by (model name, text), across namespaces.

``lookup`` and ``store`` take the caller's connection. Rows go in and out as Arrow tables (one join, one
insert), never per-row statements: a 2Wiki batch of 64 passages asks for ~1,500 strings at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa

from .db import one_row

_names = itertools.count()


def lookup(conn: duckdb.DuckDBPyConnection, model: str, texts: Sequence[str], dim: int) -> dict[str, np.ndarray]:
    """Cached vectors of those ``texts`` that have one under ``model`` (vectors of another length are skipped)."""
    if not texts:
        return {}
    view = f"_cache_keys_{next(_names)}"
    conn.register(view, pa.table({"text": pa.array(list(dict.fromkeys(texts)), type=pa.string())}))
    try:
        table = conn.sql(
            f"SELECT c.text, c.embedding FROM embedding_cache c JOIN {view} k ON c.text = k.text "
            "WHERE c.model = ? AND len(c.embedding) = ?", params=[model, dim]).to_arrow_table()
    finally:
        conn.unregister(view)
    if table.num_rows == 0:
        return {}
    flat = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vecs = np.asarray(flat, dtype=np.float32).reshape(table.num_rows, dim)
    return dict(zip(table.column("text").to_pylist(), vecs, strict=True))


def store(conn: duckdb.DuckDBPyConnection, model: str, texts: Sequence[str], vecs: np.ndarray) -> None:
    """Remember ``vecs`` for ``texts`` under ``model``; texts already cached keep their vector."""
    if not len(texts):
        return
    vecs = np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(texts), -1)
    keep = dict(zip(texts, range(len(texts)), strict=True))  # one row per text: the key is unique
    rows = np.fromiter(keep.values(), np.int64, len(keep))
    dim = vecs.shape[1]
    offsets = pa.array(np.arange(0, len(rows) * dim + 1, dim, dtype=np.int32))
    data = pa.table({"model": pa.array([model] * len(rows), type=pa.string()),
                     "text": pa.array(list(keep), type=pa.string()),
                     "embedding": pa.ListArray.from_arrays(offsets, pa.array(vecs[rows].ravel(), type=pa.float32()))})
    view = f"_cache_rows_{next(_names)}"
    conn.register(view, data)
    try:
        conn.execute(f"INSERT OR IGNORE INTO embedding_cache (model, text, embedding) "
                     f"SELECT model, text, embedding FROM {view}")
    finally:
        conn.unregister(view)


def count(conn: duckdb.DuckDBPyConnection, model: str | None = None) -> int:
    if model is None:
        return int(one_row(conn.execute("SELECT count(*) FROM embedding_cache"))[0])
    return int(one_row(conn.execute("SELECT count(*) FROM embedding_cache WHERE model = ?", [model]))[0])
