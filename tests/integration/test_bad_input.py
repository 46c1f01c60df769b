"""Every kind of bad input gets the right status, a message naming the field, and writes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import pytest
from memserve._proto import memory_pb2 as pb
from memserve_client import (
    EpisodeInput,
    InvalidArgumentError,
    MemoryClient,
    NamespaceNotFoundError,
    QueryFilter,
    UnauthenticatedError,
)
from memserve_client._proto import memory_pb2 as pb

from tests.support.gates import LONG
from tests.support.server import ServerProcess


def ns() -> str:
    return "bad-" + uuid.uuid4().hex[:10]


def assert_nothing_written(client, name):
    with pytest.raises(NamespaceNotFoundError):
        client.stats(name)


@pytest.mark.parametrize("episodes, field", [
    ([EpisodeInput(text="")], "episodes[0].text"),
    ([EpisodeInput(text="ok"), EpisodeInput(text="   \n")], "episodes[1].text"),
    ([EpisodeInput(text="ok"), EpisodeInput(text="x" * (64 * 1024 + 1))], "episodes[1].text"),
    ([EpisodeInput(text="a", id="dup"), EpisodeInput(text="b", id="dup")], "episodes[1].id"),
    ([EpisodeInput(text="a", importance=1.5)], "episodes[0].importance"),
    ([EpisodeInput(text="a", metadata={"": "v"})], "episodes[0].metadata"),
    ([EpisodeInput(text="a", id="bad\nid")], "episodes[0].id"),
])
def test_rejected_batches_write_nothing(client, episodes, field):
    name = ns()
    with pytest.raises(InvalidArgumentError) as err:
        client.write(name, [EpisodeInput(text="a good episode"), *episodes])
    index = int(field.split("[")[1].split("]")[0])  # one good episode is prepended: indexes shift by one
    assert err.value.field == field.replace(f"episodes[{index}]", f"episodes[{index + 1}]")
    assert err.value.field in str(err.value)
    assert_nothing_written(client, name)


def test_oversized_batch_is_rejected_whole(client):
    name = ns()  # the fixture server allows 50 episodes per call
    with pytest.raises(InvalidArgumentError) as err:
        client.write(name, [f"episode {i}" for i in range(51)])
    assert err.value.field == "episodes" and err.value.reason == "BATCH_TOO_LARGE"
    assert "50" in str(err.value)
    assert_nothing_written(client, name)


def test_empty_batch(client):
    with pytest.raises(grpc.RpcError) as err:
        _stub(client).WriteEpisodes(pb.WriteEpisodesRequest(namespace=ns()), timeout=LONG)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(err.value.trailing_metadata())["memserve-field"] == "episodes"


@pytest.mark.parametrize("name", ["", "has space", "-leading-dash", "x" * 65, "slash/name", "ünïcode"])
def test_invalid_namespace_names(client, name):
    with pytest.raises(InvalidArgumentError) as err:
        client.write(name, ["text"])
    assert err.value.field == "namespace"


def test_unknown_namespace_on_every_read(client):
    name = ns()
    for call in (lambda: client.query(name, "q"), lambda: client.get(name, "x"), lambda: client.list(name),
                 lambda: client.delete(name, ["x"]), lambda: client.stats(name),
                 lambda: client.delete_namespace(name)):
        with pytest.raises(NamespaceNotFoundError) as err:
            call()
        assert name in str(err.value)


@pytest.fixture()
def filled(client):
    name = ns()
    client.write(name, ["alpha beta", "gamma delta"])
    return name


@pytest.mark.parametrize("top_k", [-1, 1001, 10**9])
def test_bad_top_k(client, filled, top_k):
    raw = pb.QueryRequest(namespace=filled, text="alpha", top_k=top_k)
    with pytest.raises(grpc.RpcError) as err:
        _stub(client).Query(raw, timeout=LONG)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "top_k" in err.value.details()


def test_empty_query_text(client, filled):
    with pytest.raises(InvalidArgumentError) as err:
        client.query(filled, "  ")
    assert err.value.field == "text"


@pytest.mark.parametrize("flt, field", [
    (QueryFilter(session_ids=("",)), "filter.session_ids[0]"),
    (QueryFilter(event_time_start=datetime(2025, 1, 2, tzinfo=UTC),
                 event_time_end=datetime(2025, 1, 1, tzinfo=UTC)), "filter.event_time"),
    (QueryFilter(metadata={"": "x"}), "filter.metadata"),
])
def test_invalid_filters(client, filled, flt, field):
    with pytest.raises(InvalidArgumentError) as err:
        client.query(filled, "alpha", filter=flt)
    assert err.value.field == field


def test_bad_page_tokens(client, filled):
    for token in ("garbage!!", "eyJ4IjoxfQ", "AAAA"):
        with pytest.raises(InvalidArgumentError) as err:
            client.list(filled, page_token=token)
        assert err.value.field == "page_token"
    other = ns()
    client.write(other, [f"e{i}" for i in range(3)])
    token = client.list(other, page_size=1).next_page_token
    with pytest.raises(InvalidArgumentError):  # a token from another namespace's listing
        client.list(filled, page_token=token)
    with pytest.raises(InvalidArgumentError) as err:
        client.list(filled, page_size=5000)
    assert err.value.field == "page_size"


def _stub(client):
    from memserve_client._proto import memory_pb2_grpc

    return memory_pb2_grpc.MemoryServiceStub(grpc.insecure_channel(client.target))


def test_invalid_utf8_names_the_field(server, client):
    name = ns()
    good = pb.WriteEpisodesRequest(namespace=name, episodes=[
        pb.EpisodeInput(text="fine"), pb.EpisodeInput(text="MARKER", metadata={"k": "v"})]).SerializeToString()
    bad = good.replace(b"MARKER", b"\xc3\x28\xff\xfe\xfd\xfc")
    with grpc.insecure_channel(server.target) as channel:
        call = channel.unary_unary("/memserve.v1.MemoryService/WriteEpisodes",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as err:
            call(bad, timeout=LONG)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "episodes[1].text" in err.value.details() and "UTF-8" in err.value.details()
    md = dict(err.value.trailing_metadata())
    assert md["memserve-field"] == "episodes[1].text"
    assert_nothing_written(client, name)


def test_garbage_bytes_are_invalid_argument(server):
    with grpc.insecure_channel(server.target) as channel:
        call = channel.unary_unary("/memserve.v1.MemoryService/Query",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as err:
            call(b"\xff\xff\xff\xff", timeout=LONG)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_message_over_the_size_limit(tmp_path):
    with ServerProcess(tmp_path / "d", settings={"max_message_bytes": str(256 * 1024)}) as srv, \
            MemoryClient(srv.target, timeout=LONG) as c:
        with pytest.raises(Exception) as err:
            c.write("big", ["x" * 60_000] * 6)
        assert "RESOURCE_EXHAUSTED" in str(err.value) or "resource" in type(err.value).__name__.lower()
        with pytest.raises(NamespaceNotFoundError):
            c.stats("big")


def test_api_key_is_enforced(tmp_path):
    with ServerProcess(tmp_path / "d", settings={"api_key": "s3cret"}) as srv:
        with MemoryClient(srv.target, timeout=LONG) as anonymous, pytest.raises(UnauthenticatedError):
            anonymous.write("ns", ["x"])
        with MemoryClient(srv.target, timeout=LONG, api_key="wrong") as wrong, pytest.raises(UnauthenticatedError):
            wrong.stats()
        with MemoryClient(srv.target, timeout=LONG, api_key="s3cret") as ok:
            assert ok.write("ns", ["x"]).created == (True,)
