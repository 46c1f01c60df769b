-- The extraction of each episode (precomputed by the client, or produced by the server's extractor), kept so
-- the graph can be rebuilt without paying for extraction again, and so a crash between "stored" and
-- "extracted" resumes exactly where it stopped.
CREATE TABLE episode_extractions (
    namespace   VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    source      VARCHAR NOT NULL,   -- 'client' or the extractor's name
    entities    VARCHAR NOT NULL,   -- JSON array of strings
    triples     VARCHAR NOT NULL,   -- JSON array of [subject, predicate, object]
    dropped     INTEGER NOT NULL,   -- malformed triples dropped
    PRIMARY KEY (namespace, seq)
);
