"""SQL for namespaces and episodes. Every function takes the cursor to run on, so callers decide which
statements share a transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from ..types import Episode, QueryFilter
from .db import one_row

_EPISODE_COLUMNS = ("seq, namespace, id, session_id, speaker, text, event_time, metadata, importance, pinned, "
                    "create_time, text_bytes")


def _row_to_episode(row: tuple) -> Episode:
    seq, ns, id_, session, speaker, text, event_time, metadata, importance, pinned, create_time, nbytes = row
    return Episode(seq=int(seq), namespace=ns, id=id_, session_id=session, speaker=speaker, text=text,
                   event_time=event_time, metadata=json.loads(metadata), importance=float(importance),
                   pinned=bool(pinned), create_time=create_time, text_bytes=int(nbytes))


# -- namespaces --------------------------------------------------------------------------------------------
def namespace_exists(cur: duckdb.DuckDBPyConnection, namespace: str) -> bool:
    return cur.execute("SELECT 1 FROM namespaces WHERE name = ?", [namespace]).fetchone() is not None


def ensure_namespace(cur: duckdb.DuckDBPyConnection, namespace: str, now: datetime) -> bool:
    """Create the namespace if needed; True when it was created."""
    if namespace_exists(cur, namespace):
        return False
    cur.execute("INSERT INTO namespaces VALUES (?, ?)", [namespace, now])
    return True


def list_namespaces(cur: duckdb.DuckDBPyConnection, after: str, limit: int) -> list[tuple[str, int, datetime]]:
    return cur.execute(
        "SELECT n.name, (SELECT count(*) FROM episodes e WHERE e.namespace = n.name), n.create_time "
        "FROM namespaces n WHERE n.name > ? ORDER BY n.name LIMIT ?", [after, limit]).fetchall()


def all_namespaces(cur: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in cur.execute("SELECT name FROM namespaces ORDER BY name").fetchall()]


def namespace_create_time(cur: duckdb.DuckDBPyConnection, namespace: str) -> datetime | None:
    row = cur.execute("SELECT create_time FROM namespaces WHERE name = ?", [namespace]).fetchone()
    return row[0] if row else None


def delete_namespace(cur: duckdb.DuckDBPyConnection, namespace: str) -> int:
    count = one_row(cur.execute("SELECT count(*) FROM episodes WHERE namespace = ?", [namespace]))[0]
    cur.execute("DELETE FROM episodes WHERE namespace = ?", [namespace])
    cur.execute("DELETE FROM namespaces WHERE name = ?", [namespace])
    return int(count)


# -- episodes: writes --------------------------------------------------------------------------------------
def existing_ids(cur: duckdb.DuckDBPyConnection, namespace: str, ids: Sequence[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = cur.execute("SELECT id, seq FROM episodes WHERE namespace = ? AND id IN (SELECT unnest(?))",
                       [namespace, list(ids)]).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def next_seqs(cur: duckdb.DuckDBPyConnection, n: int) -> list[int]:
    rows = cur.execute("SELECT nextval('episode_seq') FROM range(?)", [n]).fetchall()
    return sorted(int(r[0]) for r in rows)


def insert_episodes(cur: duckdb.DuckDBPyConnection, episodes: Sequence[Episode], embeddings: np.ndarray) -> None:
    """Bulk insert through a registered Arrow table (executemany manages ~1.3k rows/s; this ~1M)."""
    if not episodes:
        return
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    n, dim = embeddings.shape
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    table = pa.table({
        "seq": pa.array([e.seq for e in episodes], pa.int64()),
        "namespace": [e.namespace for e in episodes],
        "id": [e.id for e in episodes],
        "session_id": [e.session_id for e in episodes],
        "speaker": [e.speaker for e in episodes],
        "text": [e.text for e in episodes],
        "event_time": pa.array([e.event_time for e in episodes], pa.timestamp("us", tz="UTC")),
        "metadata": [json.dumps(e.metadata, ensure_ascii=False, sort_keys=True) for e in episodes],
        "importance": pa.array([e.importance for e in episodes], pa.float32()),
        "pinned": [e.pinned for e in episodes],
        "create_time": pa.array([e.create_time for e in episodes], pa.timestamp("us", tz="UTC")),
        "text_bytes": pa.array([e.text_bytes for e in episodes], pa.int32()),
        "embedding": pa.ListArray.from_arrays(offsets, pa.array(embeddings.reshape(-1))),
    })
    cur.register("_new_episodes", table)
    try:
        cur.execute(f"INSERT INTO episodes ({_EPISODE_COLUMNS}, embedding) "
                    f"SELECT {_EPISODE_COLUMNS}, embedding FROM _new_episodes")
    finally:
        cur.unregister("_new_episodes")


def delete_episodes(cur: duckdb.DuckDBPyConnection, namespace: str, ids: Sequence[str]) -> dict[str, int]:
    """Delete by public id; returns {id: seq} of what was deleted."""
    found = existing_ids(cur, namespace, ids)
    if found:
        cur.execute("DELETE FROM episodes WHERE namespace = ? AND seq IN (SELECT unnest(?))",
                    [namespace, list(found.values())])
    return found


def delete_by_seqs(cur: duckdb.DuckDBPyConnection, namespace: str, seqs: Sequence[int]) -> None:
    cur.execute("DELETE FROM episodes WHERE namespace = ? AND seq IN (SELECT unnest(?))",
                [namespace, [int(s) for s in seqs]])


# -- episodes: reads ---------------------------------------------------------------------------------------
def get_episode(cur: duckdb.DuckDBPyConnection, namespace: str, id_: str) -> Episode | None:
    row = cur.execute(f"SELECT {_EPISODE_COLUMNS} FROM episodes WHERE namespace = ? AND id = ?",
                      [namespace, id_]).fetchone()
    return _row_to_episode(row) if row else None


def get_by_seqs(cur: duckdb.DuckDBPyConnection, namespace: str, seqs: Sequence[int]) -> dict[int, Episode]:
    if not len(seqs):
        return {}
    rows = cur.execute(f"SELECT {_EPISODE_COLUMNS} FROM episodes WHERE namespace = ? AND seq IN (SELECT unnest(?))",
                       [namespace, [int(s) for s in seqs]]).fetchall()
    return {int(r[0]): _row_to_episode(r) for r in rows}


def list_episodes(cur: duckdb.DuckDBPyConnection, namespace: str, after_seq: int, limit: int,
                  session_id: str = "") -> list[Episode]:
    sql = f"SELECT {_EPISODE_COLUMNS} FROM episodes WHERE namespace = ? AND seq > ?"
    params: list = [namespace, after_seq]
    if session_id:
        sql += " AND session_id = ?"
        params.append(session_id)
    rows = cur.execute(sql + " ORDER BY seq LIMIT ?", [*params, limit]).fetchall()
    return [_row_to_episode(r) for r in rows]


def ids_and_texts_by_seq(cur: duckdb.DuckDBPyConnection, namespace: str) -> dict[int, tuple[str, str]]:
    """seq -> (public id, text) for every episode of the namespace (what a graph export shows of a passage)."""
    rows = cur.execute("SELECT seq, id, text FROM episodes WHERE namespace = ?", [namespace]).fetchall()
    return {int(s): (i, t) for s, i, t in rows}


def embeddings_of(cur: duckdb.DuckDBPyConnection, namespace: str, seqs: Sequence[int]) -> dict[int, np.ndarray]:
    """seq -> stored embedding for a few seqs (the query path's cosines beyond the dense pool). Uses execute, not
    the relation API, so it runs on a reader cursor whatever result that cursor last left open."""
    rows = cur.execute("SELECT seq, embedding FROM episodes WHERE namespace = ? AND seq IN (SELECT unnest(?))",
                       [namespace, [int(s) for s in seqs]]).fetchall()
    return {int(s): np.asarray(e, dtype=np.float32) for s, e in rows}


def live_seqs(cur: duckdb.DuckDBPyConnection, namespace: str) -> np.ndarray:
    return cur.execute("SELECT seq FROM episodes WHERE namespace = ? ORDER BY seq",
                       [namespace]).fetchnumpy()["seq"].astype(np.int64)


def load_embeddings(cur: duckdb.DuckDBPyConnection, namespace: str,
                    seqs: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(seqs int64 (n,), vectors float32 (n, d)) for the namespace, or for the given seqs."""
    if seqs is None:
        table = cur.sql("SELECT seq, embedding FROM episodes WHERE namespace = ? ORDER BY seq",
                        params=[namespace]).to_arrow_table()
    else:
        table = cur.sql("SELECT seq, embedding FROM episodes WHERE namespace = ? AND seq IN (SELECT unnest(?)) "
                        "ORDER BY seq", params=[namespace, [int(s) for s in seqs]]).to_arrow_table()
    ids = table.column("seq").to_numpy().astype(np.int64)
    if len(ids) == 0:
        return ids, np.zeros((0, 0), dtype=np.float32)
    emb = table.column("embedding").combine_chunks()
    flat = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return ids, flat.reshape(len(ids), -1)


def filter_seqs(cur: duckdb.DuckDBPyConnection, namespace: str, flt: QueryFilter) -> np.ndarray:
    """Seqs of the namespace's episodes that pass the filter."""
    sql = "SELECT seq FROM episodes WHERE namespace = ?"
    params: list = [namespace]
    if flt.session_ids:
        sql += " AND session_id IN (SELECT unnest(?))"
        params.append(list(flt.session_ids))
    if flt.time_start is not None:
        sql += " AND event_time >= ?"
        params.append(flt.time_start)
    if flt.time_end is not None:
        sql += " AND event_time < ?"
        params.append(flt.time_end)
    for key, value in sorted(flt.metadata.items()):
        # JSON pointer (RFC 6901), so keys may hold any character.
        sql += " AND json_extract_string(metadata, ?) = ?"
        params += ["/" + key.replace("~", "~0").replace("/", "~1"), value]
    return cur.execute(sql, params).fetchnumpy()["seq"].astype(np.int64)


def namespace_counts(cur: duckdb.DuckDBPyConnection, namespace: str) -> tuple[int, int, int]:
    """(episodes, sessions, text bytes)."""
    row = one_row(cur.execute("SELECT count(*), count(DISTINCT session_id), coalesce(sum(text_bytes), 0) FROM "
                              "episodes WHERE namespace = ?", [namespace]))
    return int(row[0]), int(row[1]), int(row[2])



def lexical_rows(cur: duckdb.DuckDBPyConnection,
                 namespace: str) -> list[tuple[int, str, str, str, datetime | None]]:
    """(seq, session_id, speaker, text, event_time) of every live episode of the namespace, in seq order: what
    the lexical channel and the conversation signals are rebuilt from."""
    rows = cur.execute("SELECT seq, session_id, speaker, text, event_time FROM episodes WHERE namespace = ? "
                       "ORDER BY seq", [namespace]).fetchall()
    return [(int(s), str(sess or ""), str(spk or ""), str(t), when) for s, sess, spk, t, when in rows]
