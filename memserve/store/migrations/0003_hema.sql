-- HEMA state: compact memory (rolling summaries, segment summaries, summary of segments), episode access
-- statistics for age-weighted pruning, and the audit log of what pruning removed. All of it is keyed by
-- namespace, without foreign keys to episodes: DuckDB cannot cascade, and a dangling row is harmless here
-- (hema_repo.forget_episodes and delete_namespace clean up).

-- One row per (namespace, session_id). session_id '' is the namespace-level summary. The open_* columns
-- describe the segment being filled so folding can resume after a restart. segments_summary is the summary
-- of all closed segments of the same key, stored here so it changes atomically with the state.
CREATE TABLE hema_summaries (
    namespace        VARCHAR NOT NULL,
    session_id       VARCHAR NOT NULL,
    text             VARCHAR NOT NULL,
    episode_count    BIGINT NOT NULL,
    last_seq         BIGINT NOT NULL,
    segments_summary VARCHAR NOT NULL,
    segment_count    INTEGER NOT NULL,
    open_first_seq   BIGINT,
    open_count       INTEGER NOT NULL,
    open_notes       VARCHAR NOT NULL,  -- JSON array of strings
    update_time      TIMESTAMPTZ,
    PRIMARY KEY (namespace, session_id)
);

-- Closed segments. first_seq and last_seq are inclusive.
CREATE TABLE hema_segments (
    namespace   VARCHAR NOT NULL,
    session_id  VARCHAR NOT NULL,
    idx         INTEGER NOT NULL,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    text        VARCHAR NOT NULL,
    update_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (namespace, session_id, idx)
);

-- How often, and how recently, each episode was returned by a query.
CREATE TABLE hema_episode_access (
    namespace    VARCHAR NOT NULL,
    seq          BIGINT NOT NULL,
    access_count BIGINT NOT NULL,
    last_access  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (namespace, seq)
);

-- Append-only: one row per episode removed by pruning (dry runs are not logged).
CREATE TABLE hema_prune_log (
    namespace  VARCHAR NOT NULL,
    id         VARCHAR NOT NULL,
    seq        BIGINT NOT NULL,
    score      DOUBLE NOT NULL,
    reason     VARCHAR NOT NULL,
    prune_time TIMESTAMPTZ NOT NULL
);
