"""Every RPC of MemoryService, fuzzed with raw protobuf over a plain gRPC channel (no SDK) against a real server.

The requests come from the service descriptor (tests/support/proto_strategies.py), so an RPC added to the
proto is fuzzed without touching this file. The contract: whatever arrives, the answer is a status that
describes the caller's mistake (or success) — never INTERNAL or UNKNOWN, which mean a server bug — and the
server stays healthy.

CI runs a bounded, reproducible form (derandomize=True, a modest number of examples per RPC);
FUZZ_EXAMPLES=500 (say) runs a longer hunt.
"""

from __future__ import annotations

import os

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memserve_client._proto import memory_pb2 as pb

from tests.support.gates import LONG
from tests.support.proto_strategies import (
    PATH_ROOT,
    message,
    raw_request,
    set_path_root,
)
from tests.support.server import ServerProcess

SERVICE = pb.DESCRIPTOR.services_by_name["MemoryService"]
METHODS = list(SERVICE.methods)  # unary and streaming alike (a client stream sends the drawn message twice)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
BUG = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    set_path_root(str(tmp_path_factory.mktemp("fuzz-paths")))  # file-system fields stay in here
    # A small message limit keeps huge requests cheap; the offline extractor builds a graph to query.
    settings = {"extractor": "offline", "max_message_bytes": str(2 * 1024 * 1024), "summarizer": "extractive"}
    with ServerProcess(tmp_path_factory.mktemp("fuzz") / "data", settings=settings) as proc:
        with grpc.insecure_channel(proc.target) as channel:
            seed = pb.WriteEpisodesRequest(namespace="fz", episodes=[
                pb.EpisodeInput(id="A", text="Alice founded Acme Robotics in Berlin.", session_id="s"),
                pb.EpisodeInput(id="fz", text="Bob joined Acme in 2020.", session_id="fz")],
                wait_for_graph=True)
            channel.unary_unary(f"/{SERVICE.full_name}/WriteEpisodes", request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.WriteEpisodesResponse.FromString)(seed, timeout=LONG)
        yield proc


@pytest.fixture(scope="module")
def channel(fuzz_server):
    with grpc.insecure_channel(fuzz_server.target, options=[("grpc.max_send_message_length", -1)]) as ch:
        yield ch


def _raw_call(channel: grpc.Channel, method):
    """A callable taking the request's bytes, whatever the method's streaming kind; it consumes any stream."""
    path, ident = f"/{SERVICE.full_name}/{method.name}", {"request_serializer": bytes, "response_deserializer": bytes}
    if method.client_streaming and method.server_streaming:
        call = channel.stream_stream(path, **ident)
        return lambda data, timeout: list(call(iter([data, data]), timeout=timeout))
    if method.client_streaming:
        call = channel.stream_unary(path, **ident)
        return lambda data, timeout: call(iter([data, data]), timeout=timeout)
    if method.server_streaming:
        call = channel.unary_stream(path, **ident)
        return lambda data, timeout: list(call(data, timeout=timeout))
    return channel.unary_unary(path, **ident)


def _send(call, data: bytes, what: str) -> grpc.StatusCode:
    try:
        call(data, timeout=LONG)
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        code = err.code()
        assert code not in BUG, f"{what} -> {code.name}: {err.details()}"
        assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"{what} hung for {LONG:.0f} s"
        return code


def _healthy(channel: grpc.Channel) -> None:
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=LONG)
    assert status.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_well_typed_requests_never_get_internal_or_unknown(channel, method):
    call = _raw_call(channel, method)

    @FUZZ
    @given(request=message(method.input_type))
    def run(request):
        _send(call, request.SerializeToString(), f"{method.name}({request!r:.300})")

    run()
    _healthy(channel)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_bytes_that_are_no_valid_message_never_get_internal_or_unknown(channel, method):
    call = _raw_call(channel, method)

    @FUZZ
    @given(data=raw_request(method.input_type))
    def run(data):
        _send(call, data, f"{method.name}(raw {data[:120]!r})")

    run()
    _healthy(channel)


def test_the_fuzzer_covers_every_rpc_of_the_service():
    """Enumerated from the descriptor, not listed by hand: a new RPC (streaming ones too) is fuzzed automatically."""
    assert [m.name for m in METHODS] == [m.name for m in SERVICE.methods]
    assert {"WriteEpisodes", "Query", "DeleteNamespace"} <= {m.name for m in METHODS}


@given(st.data())
@settings(max_examples=20, deadline=None, derandomize=True, database=None)
def test_generated_messages_are_well_typed_and_varied(data):
    """The generator itself: every draw serialises and parses back, for every request type."""
    for method in METHODS:
        request = data.draw(message(method.input_type))
        assert type(request).FromString(request.SerializeToString()) == request or _has_nan(request)


def test_path_fields_never_leave_the_path_root(tmp_path):
    """A backup directory drawn by the fuzzer must not be an arbitrary place on the machine."""
    from google.protobuf import descriptor_pb2
    from google.protobuf.descriptor_pool import DescriptorPool
    from google.protobuf.message_factory import GetMessageClass

    file = descriptor_pb2.FileDescriptorProto(name="fuzz_paths.proto", package="fz", syntax="proto3")
    msg = file.message_type.add(name="Backup")
    msg.field.add(name="directory", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = DescriptorPool()
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("fz.Backup")
    GetMessageClass(descriptor)
    saved = list(PATH_ROOT)
    set_path_root(str(tmp_path))

    @given(message(descriptor))
    @settings(max_examples=100, deadline=None, derandomize=True, database=None)
    def run(request):
        value = request.directory
        assert not value.startswith("/") or value.startswith(str(tmp_path)), value

    try:
        run()
    finally:
        PATH_ROOT[:] = saved


def _has_nan(msg) -> bool:
    return "nan" in str(msg).lower()


def test_invalid_utf8_deep_in_a_request_is_named(channel):
    """A regression guard on the raw path the fuzzer drives: nested invalid UTF-8 is INVALID_ARGUMENT."""
    from tests.support.proto_strategies import _bad_string

    write = SERVICE.methods_by_name["WriteEpisodes"]
    episodes = write.input_type.fields_by_name["episodes"]
    data = _bad_string(episodes, episodes.message_type.fields_by_name["speaker"], b"\xc3\x28")
    with pytest.raises(grpc.RpcError) as err:
        _raw_call(channel, write)(data, timeout=LONG)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "episodes[0].speaker" in err.value.details()


def test_a_metadata_key_with_control_characters_is_invalid_argument(channel):
    """Found by the fuzzer: the field path carried the key itself ('\\x12L³'), gRPC refused that header value,
    and the caller got INTERNAL "Invalid metadata" instead of INVALID_ARGUMENT naming the field."""
    request = pb.WriteEpisodesRequest(namespace="fz", episodes=[
        pb.EpisodeInput(text="fine", metadata={"\x12L\u00b3\x89": "v"})])
    write = channel.unary_unary(f"/{SERVICE.full_name}/WriteEpisodes", request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.WriteEpisodesResponse.FromString)
    with pytest.raises(grpc.RpcError) as err:
        write(request, timeout=LONG)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "control characters" in err.value.details() and "episodes[0].metadata key" in err.value.details()
    assert dict(err.value.trailing_metadata())["memserve-field"] == "episodes[0].metadata"
