-- Core tables: namespaces and episodes. `seq` is the internal integer id of an episode: the FAISS id and the
-- graph's passage key. `id` is the public id (client-supplied or a content hash), unique per namespace.
CREATE SEQUENCE IF NOT EXISTS episode_seq START 1;

CREATE TABLE namespaces (
    name        VARCHAR PRIMARY KEY,
    create_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE episodes (
    seq         BIGINT PRIMARY KEY,
    namespace   VARCHAR NOT NULL,
    id          VARCHAR NOT NULL,
    session_id  VARCHAR NOT NULL,
    speaker     VARCHAR NOT NULL,
    text        VARCHAR NOT NULL,
    event_time  TIMESTAMPTZ,
    metadata    VARCHAR NOT NULL,  -- JSON object of string -> string
    importance  FLOAT NOT NULL,
    pinned      BOOLEAN NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    text_bytes  INTEGER NOT NULL,
    embedding   FLOAT[] NOT NULL
);

CREATE UNIQUE INDEX episodes_ns_id ON episodes (namespace, id);

-- Facts about the data directory that must not silently change between runs (e.g. the embedding model:
-- vectors of two models cannot share an index).
CREATE TABLE server_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
