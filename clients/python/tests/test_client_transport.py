"""Both clients against a real grpc.aio server (see conftest): error mapping, retries, deadlines, metadata.

Most tests run once per client through the ``invoke`` fixture, so the sync and async clients are held to the
very same behaviour.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from memserve_client import (
    AlreadyExistsError,
    AsyncMemoryClient,
    DeadlineExceededError,
    Episode,
    EpisodeNotFoundError,
    ExportedEpisode,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    MemoryClient,
    MemserveError,
    NamespaceNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from memserve_client._proto import memory_pb2 as pb

if TYPE_CHECKING:
    from conftest import ScriptedServicer

Invoke = Callable[..., Any]
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def _bound(client: Any, method: str) -> Any:
    """``client.admin.backup`` for "admin.backup"."""
    target = client
    for part in method.split("."):
        target = getattr(target, part)
    return target


@pytest.fixture(params=["sync", "async"])
def invoke(request: pytest.FixtureRequest, target: str, servicer: ScriptedServicer) -> Invoke:
    """invoke("query", "ns", "text", client_kwargs={...}) on a fresh client of the parametrized kind."""

    def run(method: str, *args: Any, client_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if request.param == "sync":
            with MemoryClient(target, **(client_kwargs or {})) as client:
                return _bound(client, method)(*args, **kwargs)

        async def run_async() -> Any:
            async with AsyncMemoryClient(target, **(client_kwargs or {})) as client:
                return await _bound(client, method)(*args, **kwargs)

        return asyncio.run(run_async())

    return run


# --- error mapping -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, None, InvalidArgumentError),
        (grpc.StatusCode.NOT_FOUND, "NAMESPACE_NOT_FOUND", NamespaceNotFoundError),
        (grpc.StatusCode.NOT_FOUND, "EPISODE_NOT_FOUND", EpisodeNotFoundError),
        (grpc.StatusCode.NOT_FOUND, None, NotFoundError),
        (grpc.StatusCode.ALREADY_EXISTS, None, AlreadyExistsError),
        (grpc.StatusCode.FAILED_PRECONDITION, None, FailedPreconditionError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED", ResourceExhaustedError),
        (grpc.StatusCode.UNAUTHENTICATED, None, UnauthenticatedError),
        (grpc.StatusCode.PERMISSION_DENIED, None, PermissionDeniedError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, DeadlineExceededError),
        (grpc.StatusCode.INTERNAL, None, InternalError),
        (grpc.StatusCode.UNAVAILABLE, "LLM_FAILED", UnavailableError),
        (grpc.StatusCode.ABORTED, None, MemserveError),
    ],
)
def test_status_codes_map_to_exceptions(
    invoke: Invoke, servicer: ScriptedServicer, code: grpc.StatusCode, reason: str | None, expected: type
) -> None:
    servicer.script("GetEpisode", servicer.abort(code, "it went wrong", reason=reason, request_id="req-7"))
    with pytest.raises(expected) as info:
        invoke("get", "ns", "e1", client_kwargs={"max_retries": 0})
    error = info.value
    assert type(error) is expected
    assert error.code == code and error.reason == (reason or code.name)
    assert error.message == "it went wrong" and error.request_id == "req-7"
    assert isinstance(error.__cause__, grpc.RpcError)  # the original stays reachable


def test_invalid_argument_names_the_field(invoke: Invoke, servicer: ScriptedServicer) -> None:
    servicer.script(
        "WriteEpisodes",
        servicer.abort(grpc.StatusCode.INVALID_ARGUMENT, "episodes[3].text: text is empty", field="episodes[3].text",
              request_id=None),
    )
    with pytest.raises(InvalidArgumentError) as info:
        invoke("write", "ns", ["a", "b", "c", {"text": ""}])
    assert info.value.field == "episodes[3].text"
    assert str(info.value) == "INVALID_ARGUMENT: episodes[3].text: text is empty (field episodes[3].text)"


def test_bad_mode_fails_before_any_call(invoke: Invoke, servicer: ScriptedServicer) -> None:
    with pytest.raises(ValueError):
        invoke("query", "ns", "where?", mode="pagerank")
    assert not servicer.calls


# --- retries -------------------------------------------------------------------------------------------------


def test_idempotent_call_is_retried_on_unavailable(invoke: Invoke, servicer: ScriptedServicer) -> None:
    servicer.script(
        "Query",
        servicer.abort(UNAVAILABLE, "warming up"),
        servicer.abort(UNAVAILABLE, "warming up"),
        servicer.respond(pb.QueryResponse(mode=pb.QUERY_MODE_DENSE, context="ok")),
    )
    result = invoke("query", "ns", "where?")
    assert result.context == "ok" and result.mode == "dense"
    assert len(servicer.calls["Query"]) == 3


def test_non_idempotent_call_is_not_retried(invoke: Invoke, servicer: ScriptedServicer) -> None:
    servicer.script(
        "DeleteNamespace", servicer.abort(UNAVAILABLE, "busy"), servicer.respond(pb.DeleteNamespaceResponse())
    )
    with pytest.raises(UnavailableError):
        invoke("delete_namespace", "ns")
    assert len(servicer.calls["DeleteNamespace"]) == 1


def test_only_dry_run_prunes_are_retried(invoke: Invoke, servicer: ScriptedServicer) -> None:
    servicer.script("Prune", servicer.abort(UNAVAILABLE, "busy"), servicer.respond(pb.PruneResponse(dry_run=True)))
    assert invoke("prune", "ns", dry_run=True).dry_run
    assert len(servicer.calls["Prune"]) == 2
    servicer.reset()
    servicer.script("Prune", servicer.abort(UNAVAILABLE, "busy"), servicer.respond(pb.PruneResponse()))
    with pytest.raises(UnavailableError):
        invoke("prune", "ns")
    assert len(servicer.calls["Prune"]) == 1


def test_retries_are_bounded(invoke: Invoke, servicer: ScriptedServicer) -> None:
    servicer.script("GetStats", servicer.abort(UNAVAILABLE, "down"))
    with pytest.raises(UnavailableError):
        invoke("stats", client_kwargs={"max_retries": 1})
    assert len(servicer.calls["GetStats"]) == 2


def test_other_codes_are_not_retried(invoke: Invoke, servicer: ScriptedServicer) -> None:
    servicer.script(
        "GetStats", servicer.abort(grpc.StatusCode.INTERNAL, "bug"), servicer.respond(pb.GetStatsResponse())
    )
    with pytest.raises(InternalError):
        invoke("stats")
    assert len(servicer.calls["GetStats"]) == 1


# --- deadlines -----------------------------------------------------------------------------------------------


def test_short_timeout_raises_deadline_exceeded(invoke: Invoke, servicer: ScriptedServicer) -> None:
    servicer.script("Query", servicer.hang())  # only the client's deadline can end this call
    with pytest.raises(DeadlineExceededError):
        invoke("query", "ns", "slow", timeout=0.3)
    assert servicer.calls["Query"][0].time_remaining is not None
    assert servicer.calls["Query"][0].time_remaining <= 0.3 + 0.5  # the 0.3 s, not a default, was on the wire


def test_client_wide_timeout_applies(invoke: Invoke, servicer: ScriptedServicer) -> None:
    servicer.script("GetSummary", servicer.hang())
    with pytest.raises(DeadlineExceededError):
        invoke("summary", "ns", client_kwargs={"timeout": 0.3})


def test_default_deadlines_reach_the_server(invoke: Invoke, servicer: ScriptedServicer) -> None:
    invoke("query", "ns", "q")
    invoke("write", "ns", ["a"])
    invoke("query", "ns", "q", timeout=7.0)
    query_default, query_override = (c.time_remaining for c in servicer.calls["Query"])
    # gRPC rounds the timeout it puts on the wire up to coarse units, hence the slack above the nominal value.
    # The lower bounds only separate the three (30 s, 120 s, 7 s): a loaded machine may take seconds to
    # deliver a call, and what the server sees then is less than was sent.
    write_default = servicer.calls["WriteEpisodes"][0].time_remaining
    assert query_default is not None and 8.5 < query_default <= 31.5
    assert write_default is not None and 31.5 < write_default <= 121.5
    assert query_override is not None and 0.0 < query_override <= 8.5


# --- requests on the wire ------------------------------------------------------------------------------------


def test_api_key_is_sent_as_bearer_token(invoke: Invoke, servicer: ScriptedServicer) -> None:
    invoke("stats", client_kwargs={"api_key": "s3cret"})
    metadata = servicer.calls["GetStats"][0].metadata
    assert metadata["authorization"] == "Bearer s3cret"
    assert metadata["user-agent"].startswith("memserve-client/")


# One call of every public method that names a namespace: (method, args, kwargs, the RPC it makes).
NAMESPACED_CALLS = [
    ("write", ("tenant-7", ["hello"]), {}, "WriteEpisodes"),
    ("query", ("tenant-7", "hello"), {}, "Query"),
    ("get", ("tenant-7", "id-1"), {}, "GetEpisode"),
    ("list", ("tenant-7",), {}, "ListEpisodes"),
    ("delete", ("tenant-7", ["id-1"]), {}, "DeleteEpisodes"),
    ("stats", ("tenant-7",), {}, "GetStats"),
    ("delete_namespace", ("tenant-7",), {}, "DeleteNamespace"),
    ("export_graph", ("tenant-7",), {}, "ExportGraph"),
    ("summary", ("tenant-7",), {}, "GetSummary"),
    ("prune", ("tenant-7",), {"dry_run": True}, "Prune"),
    ("admin.export_namespace", ("tenant-7",), {}, "ExportNamespace"),
    ("admin.import_namespace", ("tenant-7", [ExportedEpisode(
        episode=Episode(id="id-1", namespace="", session_id="", speaker="", text="hello", event_time=None,
                        metadata={}, importance=0.5, pinned=False, create_time=None),
        embedding=b"\0" * 16)]), {"embedding_model": "hash-4|4"}, "ImportNamespace"),
]


def test_namespaced_calls_cover_every_rpc_whose_request_has_a_namespace() -> None:
    service = pb.DESCRIPTOR.services_by_name["MemoryService"]
    namespaced = {m.name for m in service.methods if "namespace" in m.input_type.fields_by_name}
    assert {rpc for *_, rpc in NAMESPACED_CALLS} == namespaced


@pytest.mark.parametrize(("method", "args", "kwargs", "rpc"), NAMESPACED_CALLS, ids=[c[0] for c in NAMESPACED_CALLS])
def test_namespaced_calls_send_the_namespace_header(
    invoke: Invoke, servicer: ScriptedServicer, method: str, args: tuple, kwargs: dict, rpc: str
) -> None:
    # GetEpisode's default (empty) response would fail to convert; answer with an episode.
    servicer.script("GetEpisode", servicer.respond(pb.GetEpisodeResponse(episode=pb.Episode(id="id-1"))))
    invoke(method, *args, **kwargs)
    assert servicer.calls[rpc][0].metadata["memserve-namespace"] == "tenant-7"


def test_calls_without_a_namespace_send_no_namespace_header(invoke: Invoke, servicer: ScriptedServicer) -> None:
    invoke("stats")
    invoke("list_namespaces")
    assert "memserve-namespace" not in servicer.calls["GetStats"][0].metadata
    assert "memserve-namespace" not in servicer.calls["ListNamespaces"][0].metadata


def test_a_namespace_that_cannot_be_a_header_is_left_to_the_server(invoke: Invoke, servicer: ScriptedServicer) -> None:
    # A header must be printable ASCII: sending this one would fail inside grpc instead of at the server, which
    # names the field in its INVALID_ARGUMENT.
    invoke("query", "bad namespace \u00fc", "q")
    received = servicer.calls["Query"][0]
    assert received.request.namespace == "bad namespace \u00fc"
    assert "memserve-namespace" not in received.metadata


def test_large_writes_are_chunked(invoke: Invoke, servicer: ScriptedServicer) -> None:
    servicer.script(
        "WriteEpisodes",
        servicer.respond_with(lambda r: pb.WriteEpisodesResponse(ids=[e.text for e in r.episodes],
                                                        created=[True] * len(r.episodes))),
    )
    texts = [f"episode {i}" for i in range(7)]
    result = invoke("write", "ns", texts, wait_for_graph=True, client_kwargs={"max_batch": 3})
    assert result.ids == tuple(texts) and result.created_count == 7
    assert [len(c.request.episodes) for c in servicer.calls["WriteEpisodes"]] == [3, 3, 1]
    assert all(c.request.wait_for_graph for c in servicer.calls["WriteEpisodes"])


def test_iter_episodes_follows_page_tokens(target: str, servicer: ScriptedServicer) -> None:
    first = pb.ListEpisodesResponse(episodes=[pb.Episode(id="a"), pb.Episode(id="b")], next_page_token="p2")
    last = pb.ListEpisodesResponse(episodes=[pb.Episode(id="c")])
    pages = [servicer.respond(first), servicer.respond(last)]
    servicer.script("ListEpisodes", *pages, *pages)  # once for each client
    with MemoryClient(target) as client:
        assert [e.id for e in client.iter_episodes("ns", page_size=2, session_id="s")] == ["a", "b", "c"]

    async def collect() -> list[str]:
        async with AsyncMemoryClient(target) as client:
            return [e.id async for e in client.iter_episodes("ns", page_size=2, session_id="s")]

    assert asyncio.run(collect()) == ["a", "b", "c"]
    tokens = [(c.request.page_token, c.request.page_size, c.request.session_id)
              for c in servicer.calls["ListEpisodes"]]
    assert tokens == [("", 2, "s"), ("p2", 2, "s")] * 2


def test_export_and_delete_requests(invoke: Invoke, servicer: ScriptedServicer) -> None:
    servicer.script("ExportGraph", servicer.respond(pb.ExportGraphResponse(data=b"{}", node_count=1)))
    servicer.script("DeleteEpisodes", servicer.respond(pb.DeleteEpisodesResponse(deleted_count=1, not_found_ids=["x"])))
    assert invoke("export_graph", "ns", "node-link").data == b"{}"
    assert servicer.calls["ExportGraph"][0].request.format == pb.GRAPH_FORMAT_NODE_LINK_JSON
    result = invoke("delete", "ns", "e1")  # a lone id is one id, not its characters
    assert result.deleted_count == 1 and result.not_found_ids == ("x",)
    assert list(servicer.calls["DeleteEpisodes"][0].request.ids) == ["e1"]


# --- connectivity --------------------------------------------------------------------------------------------


def test_health_and_wait_ready(invoke: Invoke) -> None:
    assert invoke("wait_ready", 5.0) is None
    assert invoke("health") == "SERVING"


def _dead_target() -> str:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_unreachable_server(invoke: Invoke) -> None:
    dead = _dead_target()
    with MemoryClient(dead, max_retries=1) as client, pytest.raises(UnavailableError):
        client.stats()
    with MemoryClient(dead) as client, pytest.raises(UnavailableError, match="did not become ready"):
        client.wait_ready(0.3)


@pytest.mark.asyncio
async def test_async_client_in_a_running_loop(target: str, servicer: ScriptedServicer) -> None:
    servicer.script(
        "GetEpisode", servicer.abort(grpc.StatusCode.NOT_FOUND, "no such episode", reason="EPISODE_NOT_FOUND")
    )
    async with AsyncMemoryClient(target) as client:
        await client.wait_ready(5.0)
        with pytest.raises(EpisodeNotFoundError, match="no such episode"):
            await client.get("ns", "missing")
        with pytest.raises(UnavailableError, match="did not become ready"):
            async with AsyncMemoryClient(_dead_target()) as dead:
                await dead.wait_ready(0.3)
