-- Vectors of graph phrases and facts, shared by every namespace and keyed by the embedding model: a phrase
-- ("barack obama") that a second namespace, a re-ingest or a re-extraction meets again is read back instead of
-- encoded. Derived data (it never decides what is stored, only what the encoder must compute): deleting a
-- namespace leaves its entries, which hold no episode text, only normalised phrase and fact strings.
CREATE TABLE embedding_cache (
    model     VARCHAR NOT NULL,   -- the embedder's name, so another model never reuses these vectors
    text      VARCHAR NOT NULL,   -- the normalised phrase or fact string that was encoded
    embedding FLOAT[] NOT NULL,
    PRIMARY KEY (model, text)
);
