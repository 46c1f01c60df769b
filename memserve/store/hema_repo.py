"""SQL for HEMA state (tables from migration 0003_hema.sql): summaries, segments, access stats, prune log.

Functions take the caller's ``duckdb.DuckDBPyConnection`` and never open or commit transactions themselves, so
the engine can group them (e.g. delete episodes + write the prune log in one transaction). Writes are ordered
and idempotent where a crash between two of them could otherwise lose work (see ``save_fold_result``).
Batches go in as one statement over ``unnest`` of list parameters: DuckDB's ``executemany`` runs one statement
per row and is slow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

import duckdb

from memserve.domain.clock import as_utc
from memserve.domain.hema import FoldResult, PruneCandidate, PruneDecision, SegmentSummary, SummaryState

# ---------------------------------------------------------------------------------------------------------
# Compact memory


def load_summary_state(conn: duckdb.DuckDBPyConnection, namespace: str, session_id: str = "") -> SummaryState:
    """The stored state, or an empty one (nothing folded yet)."""
    row = conn.execute(
        """
        SELECT text, episode_count, last_seq, segments_summary, segment_count, open_first_seq, open_count,
               open_notes, update_time
        FROM hema_summaries WHERE namespace = ? AND session_id = ?
        """,
        [namespace, session_id],
    ).fetchone()
    if row is None:
        return SummaryState(namespace=namespace, session_id=session_id)
    text, count, last_seq, seg_summary, seg_count, open_first, open_count, notes, update_time = row
    return SummaryState(
        namespace=namespace,
        session_id=session_id,
        text=text,
        episode_count=count,
        last_seq=last_seq,
        segments_summary=seg_summary,
        segment_count=seg_count,
        open_first_seq=open_first,
        open_count=open_count,
        open_notes=tuple(json.loads(notes)),
        update_time=as_utc(update_time) if update_time is not None else None,
    )


def save_summary_state(conn: duckdb.DuckDBPyConnection, state: SummaryState) -> None:
    conn.execute(
        """
        INSERT OR REPLACE INTO hema_summaries
            (namespace, session_id, text, episode_count, last_seq, segments_summary, segment_count,
             open_first_seq, open_count, open_notes, update_time)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [
            state.namespace,
            state.session_id,
            state.text,
            state.episode_count,
            state.last_seq,
            state.segments_summary,
            state.segment_count,
            state.open_first_seq,
            state.open_count,
            json.dumps(list(state.open_notes), ensure_ascii=False),
            state.update_time,
        ],
    )


def save_segments(conn: duckdb.DuckDBPyConnection, segments: Iterable[SegmentSummary]) -> None:
    # A fold closes at most a few segments, so one statement each is fine; REPLACE makes re-saving idempotent.
    for seg in segments:
        conn.execute(
            """
            INSERT OR REPLACE INTO hema_segments (namespace, session_id, idx, first_seq, last_seq, text, update_time)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """,
            [seg.namespace, seg.session_id, seg.idx, seg.first_seq, seg.last_seq, seg.text, seg.update_time],
        )


def save_fold_result(conn: duckdb.DuckDBPyConnection, result: FoldResult) -> None:
    """Segments first, then the state: if the process dies in between, the state still points before the
    segment, the next fold closes it again under the same idx, and the REPLACE overwrites it. Wrap the call in a
    transaction to make the pair atomic anyway."""
    save_segments(conn, result.closed_segments)
    save_summary_state(conn, result.state)


def load_segments(conn: duckdb.DuckDBPyConnection, namespace: str, session_id: str = "") -> list[SegmentSummary]:
    """Closed segments of one summary, oldest first (what ``summary.fold`` wants as ``segments``)."""
    rows = conn.execute(
        """
        SELECT idx, first_seq, last_seq, text, update_time FROM hema_segments
        WHERE namespace = ? AND session_id = ? ORDER BY idx
        """,
        [namespace, session_id],
    ).fetchall()
    return [
        SegmentSummary(namespace, session_id, idx, first, last, text, as_utc(update_time))
        for idx, first, last, text, update_time in rows
    ]


def load_unfolded_episodes(
    conn: duckdb.DuckDBPyConnection, namespace: str, session_id: str, after_seq: int, limit: int = 1_000
) -> list[tuple[int, str]]:
    """``(seq, text)`` of episodes not yet folded into a summary, ascending: feed them to ``summary.fold``.

    ``session_id == ""`` is the namespace-level summary and reads every session of the namespace.
    """
    rows = conn.execute(
        """
        SELECT seq, text FROM episodes
        WHERE namespace = ? AND (? = '' OR session_id = ?) AND seq > ?
        ORDER BY seq LIMIT ?
        """,
        [namespace, session_id, session_id, after_seq, limit],
    ).fetchall()
    return [(seq, text) for seq, text in rows]


def count_backlog(conn: duckdb.DuckDBPyConnection, namespace: str, session_id: str, after_seq: int) -> int:
    """Episodes written but not yet folded (GetSummaryResponse.backlog)."""
    row = conn.execute(
        "SELECT count(*) FROM episodes WHERE namespace = ? AND (? = '' OR session_id = ?) AND seq > ?",
        [namespace, session_id, session_id, after_seq],
    ).fetchone()
    return int(row[0]) if row else 0


def pending_summaries(conn: duckdb.DuckDBPyConnection, namespace: str | None = None) -> list[tuple[str, str]]:
    """``(namespace, session_id)`` of every summary with a backlog, the namespace level as session ``""``.

    For the worker at start-up: after a crash this is the list of summaries to resume.
    """
    return [
        (ns, sid)
        for ns, sid in conn.execute(
            """
            WITH levels AS (
                SELECT namespace, session_id, max(seq) AS max_seq FROM episodes
                WHERE session_id <> '' AND (CAST(? AS VARCHAR) IS NULL OR namespace = ?)
                GROUP BY namespace, session_id
                UNION ALL
                SELECT namespace, '' AS session_id, max(seq) AS max_seq FROM episodes
                WHERE (CAST(? AS VARCHAR) IS NULL OR namespace = ?)
                GROUP BY namespace
            )
            SELECT l.namespace, l.session_id FROM levels AS l
            LEFT JOIN hema_summaries AS s ON s.namespace = l.namespace AND s.session_id = l.session_id
            WHERE l.max_seq > coalesce(s.last_seq, 0)
            ORDER BY l.namespace, l.session_id
            """,
            [namespace, namespace, namespace, namespace],
        ).fetchall()
    ]


# ---------------------------------------------------------------------------------------------------------
# Access statistics and pruning


def record_accesses(conn: duckdb.DuckDBPyConnection, namespace: str, seqs: Sequence[int], now: datetime) -> None:
    """Count one retrieval for each seq (a seq listed twice counts twice), in one statement.

    Seqs are grouped first because ON CONFLICT DO UPDATE cannot touch the same row twice in one statement, and
    joined with ``episodes`` so a retrieval racing with a prune does not re-create stats for a deleted episode.
    """
    if not seqs:
        return
    conn.execute(
        """
        INSERT INTO hema_episode_access (namespace, seq, access_count, last_access)
        SELECT ?, hit.seq, count(*), ?
        FROM (SELECT unnest(?::BIGINT[]) AS seq) AS hit
        WHERE hit.seq IN (SELECT seq FROM episodes WHERE namespace = ?)
        GROUP BY hit.seq
        ON CONFLICT (namespace, seq) DO UPDATE SET
            access_count = hema_episode_access.access_count + excluded.access_count,
            last_access = greatest(hema_episode_access.last_access, excluded.last_access)
        """,
        [namespace, now, [int(s) for s in seqs], namespace],
    )


def load_access_stats(conn: duckdb.DuckDBPyConnection, namespace: str) -> dict[int, tuple[int, datetime]]:
    """seq -> (access_count, last_access) for a namespace."""
    rows = conn.execute(
        "SELECT seq, access_count, last_access FROM hema_episode_access WHERE namespace = ?", [namespace]
    ).fetchall()
    return {seq: (count, as_utc(last)) for seq, count, last in rows}


def load_prune_candidates(conn: duckdb.DuckDBPyConnection, namespace: str) -> list[PruneCandidate]:
    """Every episode of a namespace with its access statistics, by seq (input of ``select_for_pruning``)."""
    rows = conn.execute(
        """
        SELECT e.seq, e.id, e.create_time, e.event_time, e.importance, e.pinned, e.text_bytes,
               coalesce(a.access_count, 0), a.last_access
        FROM episodes AS e
        LEFT JOIN hema_episode_access AS a ON a.namespace = e.namespace AND a.seq = e.seq
        WHERE e.namespace = ?
        ORDER BY e.seq
        """,
        [namespace],
    ).fetchall()
    return [
        PruneCandidate(
            seq=seq,
            id=id_,
            create_time=as_utc(create_time),
            event_time=as_utc(event_time) if event_time is not None else None,
            importance=float(importance),
            pinned=bool(pinned),
            text_bytes=int(text_bytes),
            access_count=int(access_count),
            last_access=as_utc(last_access) if last_access is not None else None,
        )
        for seq, id_, create_time, event_time, importance, pinned, text_bytes, access_count, last_access in rows
    ]


def write_prune_log(
    conn: duckdb.DuckDBPyConnection, namespace: str, decisions: Sequence[PruneDecision], now: datetime
) -> None:
    """Audit rows for episodes actually removed (call in the transaction that deletes them)."""
    if not decisions:
        return
    conn.execute(
        """
        INSERT INTO hema_prune_log (namespace, id, seq, score, reason, prune_time)
        SELECT ?, unnest(?::VARCHAR[]), unnest(?::BIGINT[]), unnest(?::DOUBLE[]), unnest(?::VARCHAR[]), ?
        """,
        [
            namespace,
            [d.id for d in decisions],
            [d.seq for d in decisions],
            [d.score for d in decisions],
            [d.reason for d in decisions],
            now,
        ],
    )


def load_prune_log(conn: duckdb.DuckDBPyConnection, namespace: str, limit: int = 1_000) -> list[tuple[PruneDecision, datetime]]:
    """Most recent first."""
    rows = conn.execute(
        """
        SELECT seq, id, score, reason, prune_time FROM hema_prune_log
        WHERE namespace = ? ORDER BY prune_time DESC, seq LIMIT ?
        """,
        [namespace, limit],
    ).fetchall()
    return [(PruneDecision(seq, id_, score, reason), as_utc(when)) for seq, id_, score, reason, when in rows]


def forget_episodes(conn: duckdb.DuckDBPyConnection, namespace: str, seqs: Sequence[int]) -> None:
    """Drop access statistics of deleted episodes. Summaries are kept: they describe what was said."""
    if not seqs:
        return
    conn.execute(
        "DELETE FROM hema_episode_access WHERE namespace = ? AND seq IN (SELECT unnest(?::BIGINT[]))",
        [namespace, [int(s) for s in seqs]],
    )


def delete_namespace(conn: duckdb.DuckDBPyConnection, namespace: str) -> None:
    """Every HEMA row of a namespace, audit log included (the namespace is gone, so is its history)."""
    for table in ("hema_summaries", "hema_segments", "hema_episode_access", "hema_prune_log"):
        conn.execute(f"DELETE FROM {table} WHERE namespace = ?", [namespace])  # table names are constants
