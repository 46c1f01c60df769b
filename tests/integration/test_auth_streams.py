"""Streaming RPCs of MemoryService (a backup stream, say) get the same checks as unary ones: a real grpc.aio
server with the real AuthInterceptor and two streaming handlers registered under MemoryService's name."""

from __future__ import annotations

import grpc
import pytest
from memserve_client._proto import memory_pb2 as pb

from memserve.server.auth import SERVICE_PREFIX, AuthInterceptor, current_principal
from memserve.server.keys import KeyRing, entry_toml, hash_key


async def _stream_stats(request, context):
    principal = current_principal()
    assert principal is not None
    for _ in range(2):
        yield pb.GetStatsResponse(embedding_model=principal.name)


async def _upload(request_iterator, context):
    count = 0
    async for _ in request_iterator:
        count += 1
    return pb.GetStatsResponse(episode_count=count)


@pytest.fixture()
async def stream_server(tmp_path):
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(entry_toml("scoped", hash_key("k-scoped"), ["t-*"], ["admin"]) + "\n"
                         + entry_toml("all", hash_key("k-all"), ["*"], ["admin"]))
    server = grpc.aio.server(interceptors=[AuthInterceptor(KeyRing(keys_file=keys_file))])
    handlers = {
        "StreamStats": grpc.unary_stream_rpc_method_handler(
            _stream_stats, request_deserializer=pb.GetStatsRequest.FromString,
            response_serializer=pb.GetStatsResponse.SerializeToString),
        "Upload": grpc.stream_unary_rpc_method_handler(
            _upload, request_deserializer=pb.GetStatsRequest.FromString,
            response_serializer=pb.GetStatsResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("memserve.v1.MemoryService", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    await channel.close()
    await server.stop(0)


def _md(key: str | None):
    return (("authorization", f"Bearer {key}"),) if key else ()


async def test_a_server_stream_is_checked_against_its_namespace(stream_server):
    call = stream_server.unary_stream(SERVICE_PREFIX + "StreamStats",
                                      request_serializer=pb.GetStatsRequest.SerializeToString,
                                      response_deserializer=pb.GetStatsResponse.FromString)
    got = [r.embedding_model async for r in call(pb.GetStatsRequest(namespace="t-1"), metadata=_md("k-scoped"),
                                                   timeout=30)]
    assert got == ["scoped", "scoped"]  # the handler ran with the caller's principal
    for key, ns, code in (("k-scoped", "other", grpc.StatusCode.PERMISSION_DENIED),
                          (None, "t-1", grpc.StatusCode.UNAUTHENTICATED)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            [r async for r in call(pb.GetStatsRequest(namespace=ns), metadata=_md(key), timeout=30)]
        assert err.value.code() == code


async def test_a_client_stream_needs_a_key_for_every_namespace(stream_server):
    call = stream_server.stream_unary(SERVICE_PREFIX + "Upload",
                                      request_serializer=pb.GetStatsRequest.SerializeToString,
                                      response_deserializer=pb.GetStatsResponse.FromString)

    async def requests():
        for ns in ("t-1", "t-2", "t-3"):
            yield pb.GetStatsRequest(namespace=ns)

    assert (await call(requests(), metadata=_md("k-all"), timeout=30)).episode_count == 3
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(requests(), metadata=_md("k-scoped"), timeout=30)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
