"""Typed settings, read once at start-up and passed down.

Sources, later wins: defaults < TOML file (``--config``; flat keys named as below, or under a ``[memserve]``
table) < environment (``MEMSERVE_<NAME>``, e.g. ``MEMSERVE_PORT=6000``) < command-line flags. Every value is
validated here, so a bad setting stops the server at start-up with a message naming it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "MEMSERVE_"
# MEMSERVE_* variables of the client commands (memserve query/health/...), which a server may share a
# container environment with.
_CLIENT_ENV = frozenset({"config", "server", "tls", "tls_ca", "tls_cert", "tls_key", "health_server"})


def _doc(text: str, **kw: Any) -> Any:
    return field(metadata={"doc": text, **kw.pop("meta", {})}, **kw)


@dataclass(frozen=True)
class Settings:
    # --- server -------------------------------------------------------------------------------------------
    data_dir: Path = _doc("Directory holding the DuckDB database and index snapshots.",
                          default=Path("memserve-data"))
    host: str = _doc("Bind address.", default="127.0.0.1")
    port: int = _doc("Bind port (0 picks a free one and logs it).", default=50051)
    api_key: str = _doc("When set, every call must send `authorization: Bearer <key>`; an all-access key "
                        "(beside any keys in api_keys_file).", default="")
    api_keys_file: str = _doc("TOML file of scoped API keys (hashed; see docs/SECURITY.md and `memserve keys "
                              "add`). Re-read on SIGHUP and when its content changes.", default="")
    api_keys_poll_s: float = _doc("Seconds between checks of api_keys_file for changes (0: only on SIGHUP).",
                                  default=2.0)
    reflection_without_key: bool = _doc("Answer gRPC reflection without a key even when keys are configured.",
                                        default=False)
    tls_cert_file: str = _doc("PEM certificate chain of the server: serve TLS instead of plaintext.", default="")
    tls_key_file: str = _doc("PEM private key of tls_cert_file.", default="")
    tls_client_ca_file: str = _doc("PEM CA bundle: when set, clients must present a certificate it signed (mTLS).",
                                   default="")
    allow_insecure_remote: bool = _doc("Start even when bound beyond loopback with no key, keys file or mTLS "
                                       "(anyone who can reach the port gets full access).", default=False)
    max_message_bytes: int = _doc("Largest gRPC message accepted or sent.", default=64 * 1024 * 1024)
    shutdown_grace_s: float = _doc("Seconds in-flight calls get to finish on shutdown.", default=10.0)
    snapshot_interval_s: float = _doc("Seconds between index snapshots to disk (0: only at shutdown).",
                                      default=60.0)
    log_level: str = _doc("Logging level.", default="INFO")
    log_format: str = _doc("text or json (one JSON object per line, access fields as keys).", default="text")
    access_log: bool = _doc("Log one line per RPC (logger memserve.access: method, namespace, code, ms, "
                            "request id).", default=True)
    metrics_port: int = _doc("Port of the Prometheus /metrics endpoint on `host` (0: off).", default=0)
    checkpoint_threshold_mb: int = _doc("DuckDB folds its WAL into the database file once the WAL passes this "
                                        "many MB (DuckDB's own default is 16). A checkpoint needs free disk "
                                        "space about the size of the WAL.", default=16)
    max_concurrent_rpcs: int = _doc("Calls served at once; past it a call gets RESOURCE_EXHAUSTED at once "
                                    "(retry with back-off) instead of queueing without bound.", default=64)
    rpc_threads: int = _doc("Threads that run RPC work (DuckDB, FAISS, PPR). Waits for the graph hold none.",
                            default=16)
    background_threads: int = _doc("Threads per background worker (extraction, summaries): with 2 or more, "
                                   "one tenant's slow LLM batch does not hold up another tenant's.", default=2)
    encode_chunk: int = _doc("Texts per encoder call for writes and graph updates: a query waits for at "
                             "most one such chunk before its own encode runs.", default=16)
    encode_chunk_chars: int = _doc("Characters per text in a bulk chunk's cost budget: a chunk of short texts "
                                   "(graph phrases, facts) takes more than `encode_chunk` texts while texts x "
                                   "longest text stays within `encode_chunk` x this (0: exactly `encode_chunk` "
                                   "texts).", default=512)
    graph_embedding_cache: bool = _doc("Keep phrase and fact vectors in DuckDB keyed by model and text, shared "
                                       "by all namespaces: a phrase seen before is never encoded again.",
                                       default=True)
    # --- limits -------------------------------------------------------------------------------------------
    max_text_bytes: int = _doc("Largest episode text (UTF-8 bytes).", default=64 * 1024)
    max_batch_episodes: int = _doc("Most episodes in one WriteEpisodes call.", default=1000)
    max_top_k: int = _doc("Largest top_k a query may ask for.", default=1000)
    max_metadata_entries: int = _doc("Most metadata entries per episode.", default=64)
    # --- embeddings and vectors ---------------------------------------------------------------------------
    embedding_model: str = _doc("sentence-transformers model: local path, name, `bundled:all-MiniLM-L6-v2` "
                                "(offline default) or `hash:<dim>` (deterministic test embedder).",
                                default="bundled:all-MiniLM-L6-v2")
    embedding_device: str = _doc("auto, cpu or cuda.", default="auto")
    embedding_batch_size: int = _doc("Encoder batch size: texts per forward pass (at least; see "
                                     "`embedding_batch_chars`).", default=32)
    embedding_batch_chars: int = _doc("Characters per text in a forward pass's cost budget (0, the default: "
                                      "exactly `embedding_batch_size` texts per pass). With N > 0 a batch of "
                                      "short texts (graph phrases, facts) takes more texts (up to 1024) while "
                                      "texts x longest text stays within `embedding_batch_size` x N. Measured on "
                                      "2 CPU cores: 9% slower graph ingest when idle, up to 1.7x faster short-text "
                                      "encodes when the cores are oversubscribed; see docs/CONCURRENCY.md.",
                                      default=0)
    query_encoder_replica: bool = _doc("Load a second copy of the embedding model for queries (loaded in the "
                                       "background after start-up): queries then never wait for a write's "
                                       "encode. Costs the model's memory once more (~90 MB for MiniLM).",
                                       default=True)
    index_kind: str = _doc("auto (exact flat, HNSW past hnsw_threshold), flat, hnsw or exact (NumPy).",
                           default="auto")
    hnsw_threshold: int = _doc("Vectors per namespace past which `auto` switches to HNSW (built in the "
                               "background; the exact flat index serves until it is swapped in).",
                               default=50_000)
    use_gpu: str = _doc("auto, true or false: FAISS on the GPU when faiss has GPU support and one is visible.",
                        default="auto")
    # --- LLM ----------------------------------------------------------------------------------------------
    llm_model: str = _doc("Any litellm model string (openai/gpt-4o-mini, ollama/llama3, ...). Empty: no LLM.",
                          default="")
    llm_api_base: str = _doc("Base URL of an OpenAI-compatible or provider endpoint.", default="")
    llm_api_key: str = _doc("API key for the LLM (else the provider's usual environment variable).", default="")
    llm_timeout_s: float = _doc("Per-call LLM timeout.", default=60.0)
    llm_max_concurrency: int = _doc("Concurrent LLM calls.", default=8)
    llm_max_retries: int = _doc("Retries for rate limits, timeouts and 5xx.", default=4)
    llm_prompt_style: str = _doc("chat (chat-completions route: instruction-tuned models), completion (few-shot "
                                 "text on /v1/completions: base models with no chat template) or auto "
                                 "(completion for text-completion-* model strings, else chat). See README.",
                                 default="auto")
    llm_max_tokens: int = _doc("Most tokens one LLM answer may have (bounds a small model that runs on).",
                               default=2048)
    # --- extraction and graph -----------------------------------------------------------------------------
    extractor: str = _doc("auto (llm when llm_model is set, else offline), offline, llm or none.", default="auto")
    extraction_batch: int = _doc("Episodes per background extraction batch.", default=64)
    default_query_mode: str = _doc("dense, graph, hybrid or lexical: the mode of a query that names none.",
                                   default="hybrid")
    ppr_damping: float = _doc("Personalized PageRank damping.", default=0.5)
    ppr_method: str = _doc("push (local forward-push PPR: cost independent of the graph's size) or power "
                           "(power iteration over every node, the reference).", default="push")
    ppr_epsilon: float = _doc("Forward-push residual threshold per unit of weighted degree; L1 error <= "
                              "damping × epsilon × volume of the nodes reached.", default=1e-5)
    fact_top_k: int = _doc("Facts kept as PPR seeds.", default=5)
    dense_pool: int = _doc("Graph and hybrid modes: the dense candidates that seed PPR's passage nodes and enter "
                           "fusion, each weighted by its score min-max normalised down to the score at this rank. "
                           "An exact index returns all of them (a full scan: any pool costs what the top 10 "
                           "do).", default=5000)
    dense_pool_hnsw: int = _doc("How many of them an HNSW index returns: its beam is as wide as the pool, so the "
                                "search costs in proportion to it. The score at rank dense_pool is then estimated "
                                "from a sample of the namespace's vectors, so the weights keep their scale and "
                                "only the lightest candidates go (README, Graph at scale).", default=2000)
    passage_weight: float = _doc("Reset weight of every passage node, times its normalised dense score.",
                                 default=0.05)
    adaptive_passage_weight: bool = _doc("Raise the passage weight towards 1 in namespaces whose graph has few "
                                         "specific phrases per passage (chat turns), so the graph cannot bury "
                                         "good dense hits.", default=True)
    query_entity_weight: float = _doc("Seed weight (× specificity) of graph phrases the query names verbatim; "
                                      "0 turns it off (plain HippoRAG 2).", default=3.0)
    synonym_threshold: float = _doc("Cosine at or above which two phrases get a synonymy edge.", default=0.8)
    graph_vectors: str = _doc("Where the graph's phrase and fact vectors come from. encode: every new phrase and "
                              "fact text is encoded. compose: phrases are encoded, a fact's vector is the "
                              "normalised sum of its subject, predicate and object vectors. spans: as compose, and a "
                              "phrase found in its episode gets the mean of its tokens' vectors from the episode's "
                              "own encode (only predicates and phrases not found are encoded). auto: spans with the "
                              "offline extractor, encode with an LLM extractor.", default="auto")
    graph_predicate_weight: float = _doc("graph_vectors=compose or spans: weight of the predicate's vector beside "
                                         "the subject's and object's in a fact's vector (chosen by "
                                         "leave-one-dataset-out, evals/graph_vectors_cv.py).", default=0.5)
    graph_token_stash_mb: int = _doc("graph_vectors=spans: memory (MB) for written episodes' token vectors waiting "
                                     "for the graph worker; past it the oldest are dropped and their phrases "
                                     "encoded instead.", default=256)
    # --- lexical channel and conversation signals (hybrid mode) ---------------------------------------------
    lexical_weight: float = _doc("Hybrid mode: weight of the normalised BM25 score beside the normalised dense "
                                 "score (1); with a graph the fused score also anchors and seeds it (0: no BM25).",
                                 default=0.8)
    lexical_k1: float = _doc("BM25 k1 (term-frequency saturation).", default=1.2)
    lexical_b: float = _doc("BM25 b (document-length normalisation).", default=0.5)
    lexical_previous_turn: bool = _doc("Index each episode's words together with those of the episode before it "
                                       "in the same session (a reply matches the question it answers).",
                                       default=True)
    speaker_boost: float = _doc("Hybrid mode: lift the turns of the speaker a query names (or the request's "
                                "speaker) by this fraction of the fused score spread (0: off).", default=0.2)
    time_boost: float = _doc("Hybrid mode: lift the turns whose event time falls in the window a time expression "
                             "of the query names (\"in May 2023\", \"last week\") by this fraction of the fused "
                             "score spread (0: off).", default=0.2)
    synonym_max_neighbors: int = _doc("Most synonymy edges per phrase.", default=100)
    # --- HEMA ---------------------------------------------------------------------------------------------
    summarizer: str = _doc("auto (llm when llm_model is set, else extractive), extractive, llm or none.",
                           default="auto")
    summary_segment_size: int = _doc("Episodes per segment summary.", default=100)
    token_budget: int = _doc("Default token budget of a query's context.", default=3500)
    prune_half_life_days: float = _doc("Half-life of an episode's age weight.", default=30.0)
    prune_max_episodes: int = _doc("Per-namespace episode limit for pruning (0: none).", default=0)
    prune_max_bytes: int = _doc("Per-namespace text-bytes limit for pruning (0: none).", default=0)
    prune_min_score: float = _doc("Prune episodes scoring below this (negative: off).", default=-1.0)
    prune_interval_s: float = _doc("Seconds between background pruning passes (0: off).", default=0.0)

    def replace(self, **changes: Any) -> Settings:
        return load_settings(base=self, overrides=changes)


_CHOICES = {
    "index_kind": {"auto", "flat", "hnsw", "exact"},
    "use_gpu": {"auto", "true", "false"},
    "embedding_device": {"auto", "cpu", "cuda"},
    "extractor": {"auto", "offline", "llm", "none"},
    "llm_prompt_style": {"auto", "chat", "completion"},
    "summarizer": {"auto", "extractive", "llm", "none"},
    "default_query_mode": {"dense", "graph", "hybrid", "lexical"},
    "ppr_method": {"push", "power"},
    "graph_vectors": {"auto", "compose", "encode", "spans"},
    "log_level": {"DEBUG", "INFO", "WARNING", "ERROR"},
    "log_format": {"text", "json"},
}
_POSITIVE = {"max_message_bytes", "max_text_bytes", "max_batch_episodes", "max_top_k", "embedding_batch_size",
             "hnsw_threshold", "llm_timeout_s", "llm_max_concurrency", "extraction_batch", "summary_segment_size",
             "llm_max_tokens",
             "token_budget", "prune_half_life_days", "fact_top_k", "dense_pool", "dense_pool_hnsw",
             "synonym_max_neighbors",
             "max_metadata_entries", "max_concurrent_rpcs", "rpc_threads", "background_threads",
             "encode_chunk", "checkpoint_threshold_mb", "ppr_epsilon"}
_NON_NEGATIVE = {"time_boost", "lexical_weight", "lexical_k1", "speaker_boost", "query_entity_weight", "port",
                 "metrics_port", "shutdown_grace_s", "snapshot_interval_s", "llm_max_retries", "prune_max_episodes",
                 "prune_max_bytes", "prune_interval_s", "api_keys_poll_s", "encode_chunk_chars",
                 "embedding_batch_chars", "graph_token_stash_mb", "graph_predicate_weight"}
_UNIT_INTERVAL = {"ppr_damping", "passage_weight", "synonym_threshold", "lexical_b"}


def _coerce(name: str, kind: type, value: Any) -> Any:
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes")
            return bool(value)
        if kind is Path:
            return Path(value).expanduser()
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if kind is int and isinstance(value, bool):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}: expected {kind.__name__}, got {value!r}", field=name) from None


def _field_types() -> dict[str, type]:
    hints = {"Path": Path, "str": str, "int": int, "float": float, "bool": bool}
    return {f.name: hints[f.type if isinstance(f.type, str) else f.type.__name__] for f in fields(Settings)}


def load_settings(*, config_file: Path | None = None, env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None, base: Settings | None = None) -> Settings:
    types = _field_types()
    values: dict[str, Any] = dataclasses.asdict(base) if base else {}
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        data = data.get("memserve", data)
        for key, value in data.items():
            if key not in types:
                raise ConfigError(f"config file {config_file}: unknown setting {key!r}", field=key)
            values[key] = value
    env = os.environ if env is None else env
    for key, value in env.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX):].lower()
            if name in types:
                values[name] = value
            elif name not in _CLIENT_ENV:  # read by the CLI client commands, not the server
                raise ConfigError(f"environment variable {key}: unknown setting {name!r}", field=name)
    for key, value in (overrides or {}).items():
        if key not in types:
            raise ConfigError(f"unknown setting {key!r}", field=key)
        if value is not None:
            values[key] = value
    coerced = {k: _coerce(k, types[k], v) for k, v in values.items()}
    settings = Settings(**coerced)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    for name, allowed in _CHOICES.items():
        value = getattr(s, name)
        if name == "log_level":
            value = value.upper()
        if value not in allowed:
            raise ConfigError(f"setting {name}: {getattr(s, name)!r} is not one of {sorted(allowed)}", field=name)
    for name in _POSITIVE:
        if getattr(s, name) <= 0:
            raise ConfigError(f"setting {name}: must be > 0, got {getattr(s, name)}", field=name)
    for name in _NON_NEGATIVE:
        if getattr(s, name) < 0:
            raise ConfigError(f"setting {name}: must be >= 0, got {getattr(s, name)}", field=name)
    for name in _UNIT_INTERVAL:
        if not 0.0 <= getattr(s, name) <= 1.0:
            raise ConfigError(f"setting {name}: must be within [0, 1], got {getattr(s, name)}", field=name)
    for name in ("port", "metrics_port"):
        if getattr(s, name) > 65535:
            raise ConfigError(f"setting {name}: must be <= 65535, got {getattr(s, name)}", field=name)
    _validate_security(s)
    if s.extractor == "llm" and not s.llm_model:
        raise ConfigError("setting extractor: 'llm' needs llm_model to be set", field="extractor")
    if s.summarizer == "llm" and not s.llm_model:
        raise ConfigError("setting summarizer: 'llm' needs llm_model to be set", field="summarizer")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or 0.0.0.0 / :: (every interface)


def _validate_security(s: Settings) -> None:
    if bool(s.tls_cert_file) != bool(s.tls_key_file):
        raise ConfigError("setting tls_cert_file: tls_cert_file and tls_key_file must be set together",
                          field="tls_cert_file" if not s.tls_cert_file else "tls_key_file")
    if s.tls_client_ca_file and not s.tls_cert_file:
        raise ConfigError("setting tls_client_ca_file: mTLS needs tls_cert_file and tls_key_file too",
                          field="tls_client_ca_file")
    for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "api_keys_file"):
        path = getattr(s, name)
        if path and not Path(path).expanduser().is_file():
            raise ConfigError(f"setting {name}: no such file {path}", field=name)


def check_exposure(s: Settings) -> None:
    """At serve time: no unauthenticated listener beyond loopback unless asked for by name."""
    authenticated = bool(s.api_key or s.api_keys_file or s.tls_client_ca_file)
    if not is_loopback(s.host) and not authenticated and not s.allow_insecure_remote:
        raise ConfigError(f"refusing to serve {s.host} (beyond loopback) without authentication: set api_key, "
                          "api_keys_file or tls_client_ca_file, or allow_insecure_remote=true", field="host")


def describe_settings() -> str:
    """Markdown table of every setting (README and `memserve serve --help-settings`)."""
    rows = ["| setting | env | default | meaning |", "| --- | --- | --- | --- |"]
    for f in fields(Settings):
        default = f.default if f.default is not dataclasses.MISSING else ""
        rows.append(f"| `{f.name}` | `{ENV_PREFIX}{f.name.upper()}` | `{default}` | {f.metadata['doc']} |")
    return "\n".join(rows)
