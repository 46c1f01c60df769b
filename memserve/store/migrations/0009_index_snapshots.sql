-- One row per namespace: the checksum of its vector-index snapshot files as last written, checked before a
-- snapshot is loaded (a snapshot that still parses but does not match is rebuilt from episodes.embedding).
-- Replaced as delete + insert in one transaction, hence no primary key (see 0002_graph.sql).
CREATE TABLE index_snapshots (
    namespace    VARCHAR NOT NULL,
    sha256       VARCHAR NOT NULL,   -- over the snapshot's files, in name order (vector/ writes one or two)
    vector_count BIGINT NOT NULL,
    write_time   TIMESTAMPTZ NOT NULL
);
