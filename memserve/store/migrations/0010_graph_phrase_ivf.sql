-- The phrase index's trained IVF quantizer, as graph_fact_ivf (0006) is the fact index's: past a size, the
-- synonym search of new phrases range-searches this IVF instead of every phrase. Derived data: a missing or
-- unusable row only means synonym search stays exact until the server trains a new one. One row per namespace
-- (replaced as delete + insert in one transaction, hence no primary key; see 0002_graph.sql).
CREATE TABLE graph_phrase_ivf (
    namespace    VARCHAR NOT NULL,
    phrase_count BIGINT NOT NULL,    -- phrases when it was trained: the next retraining is due at 4x this
    quantizer    BLOB NOT NULL,
    update_time  TIMESTAMPTZ NOT NULL
);
