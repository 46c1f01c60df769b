"""Names vulture reports as unused that are used, from outside its view (`make lint` runs vulture with this file).

Each entry says who uses the name. A name used nowhere is deleted, not listed here.
"""
# ruff: noqa
_ = object()

# gRPC calls these by name: the MemoryService RPCs (generated add_MemoryServiceServicer_to_server) and the
# server-interceptor hook.
_.GetEpisode, _.ListEpisodes, _.DeleteEpisodes, _.GetStats, _.ListNamespaces, _.DeleteNamespace  # servicer.py
_.GetSummary, _.Prune, _.ExportGraph, _.BackupDatabase, _.ExportNamespace, _.ImportNamespace  # servicer.py
_.intercept_service  # server/auth.py, server/interceptors.py, server/observability.py

# The MCP SDK registers these tools and resources by decorator, and reads the pydantic model's fields.
remember, default_summary, namespace_summary  # mcp_server.py
llm_calls, llm_cost_usd  # mcp_server.py MemoryStats

# Attributes that third-party code reads: logging.Formatter.converter, litellm.suppress_debug_info, faiss HNSW
# parameters, http.server's daemon_threads / protocol_version / do_POST / log_message (tests/fakes/openai_replay.py).
_.converter
_.suppress_debug_info
_.efConstruction, _.efSearch
_.daemon_threads, protocol_version, _.do_POST, _.do_GET, _.log_message  # do_GET: tests/support/local_llm.py

# The standard __exit__ / __aexit__ signature (the SDK clients).
exc_type, tb

# pytest reads module-level `pytestmark`.
pytestmark

# Held only so the event loop's weak reference to the NOT_SERVING task is not the last one (server/app.py).
_._not_serving

# Set by evals/datasets.py parse_conversation and kept on the record; no report prints it yet.
unparsed_dates

# On branch `layers` (issue 13) engine/clock.py and errors.py are being reworked: whether `Clock` (a Protocol
# that documents what FakeClock/SystemClock provide) and `Internal` (the INTERNAL status error) stay is decided
# there; drop these two lines when that lands.
Clock
Internal

# pytest calls its hooks by name: tests/conftest.py skips the `gpu`-marked tests with the reason.
pytest_collection_modifyitems  # tests/conftest.py

# pytest fixtures requested by name through request.getfixturevalue (the contract tests' "llm-down" backends).
down_server  # tests/unit/test_extractor_contract.py, tests/unit/test_summariser_contract.py
