-- The fact index's trained IVF quantizer (faiss.serialize_index of the trained, empty IVFFlat: its centroids),
-- so start-up assigns facts to lists instead of running k-means again. Derived data: a missing or unusable row
-- only means fact search stays exact until the server trains a new one. One row per namespace (replaced as
-- delete + insert in one transaction, hence no primary key; see 0002_graph.sql).
CREATE TABLE graph_fact_ivf (
    namespace   VARCHAR NOT NULL,
    fact_count  BIGINT NOT NULL,     -- facts when it was trained: the next retraining is due at 4x this
    quantizer   BLOB NOT NULL,
    update_time TIMESTAMPTZ NOT NULL
);
