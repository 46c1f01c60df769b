-- Knowledge graph per namespace, stored as edge tables (the in-memory graph and its indexes are derived).
-- Phrase and fact ids are stable hashes of their normalised text (memserve/graph/ids.py), so re-extraction and
-- re-ingest are idempotent. No primary keys here on purpose: a graph delta is applied as "delete removed rows,
-- then insert added rows" in one transaction, and the same id may legitimately leave and come back in one delta
-- (DuckDB checks index constraints eagerly within a transaction). The KnowledgeGraph guarantees uniqueness.

CREATE TABLE graph_passages (       -- passages whose extraction has entered the graph (even with no phrase)
    namespace VARCHAR NOT NULL,
    seq       BIGINT NOT NULL
);

CREATE TABLE graph_phrases (
    namespace VARCHAR NOT NULL,
    phrase_id BIGINT NOT NULL,
    text      VARCHAR NOT NULL,      -- normalised phrase
    embedding FLOAT[] NOT NULL
);

CREATE TABLE graph_facts (
    namespace  VARCHAR NOT NULL,
    fact_id    BIGINT NOT NULL,
    subject_id BIGINT NOT NULL,
    predicate  VARCHAR NOT NULL,
    object_id  BIGINT NOT NULL,
    text       VARCHAR NOT NULL,     -- "subject predicate object", the embedded text
    embedding  FLOAT[] NOT NULL
);

CREATE TABLE graph_passage_phrases (
    namespace VARCHAR NOT NULL,
    seq       BIGINT NOT NULL,
    phrase_id BIGINT NOT NULL
);

CREATE TABLE graph_passage_facts (
    namespace VARCHAR NOT NULL,
    seq       BIGINT NOT NULL,
    fact_id   BIGINT NOT NULL
);

-- Every phrase pair above the synonymy threshold (phrase_a < phrase_b), uncapped: the per-phrase cap is applied
-- when the in-memory graph is built, so the stored set never depends on insertion order.
CREATE TABLE graph_synonyms (
    namespace  VARCHAR NOT NULL,
    phrase_a   BIGINT NOT NULL,
    phrase_b   BIGINT NOT NULL,
    similarity DOUBLE NOT NULL
);

-- Background extraction queue. A job moves pending → running → done (or failed after max attempts). The graph
-- delta and the job's 'done' are committed in one transaction, so after a crash a 'running' job is simply reset
-- to 'pending' (graph_repo.requeue_running) and extracted again: extraction is cached and ids are stable.
-- No index on state: DuckDB rewrites an indexed column as delete + insert, which trips the primary key.
CREATE TABLE extraction_jobs (
    namespace   VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    state       VARCHAR NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  VARCHAR,
    update_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (namespace, seq)
);

