-- Every LLM response, keyed by a hash of model + prompt + parameters: indexing the same text twice never
-- pays twice, and a restarted server keeps its cache.
CREATE TABLE llm_cache (
    key               VARCHAR PRIMARY KEY,
    model             VARCHAR NOT NULL,
    text              VARCHAR NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd          DOUBLE NOT NULL,
    create_time       TIMESTAMPTZ NOT NULL DEFAULT now()
);
