"""The server sees the ``memserve-namespace`` header on every namespaced call of the Python SDK (the TS SDK's
twin is clients/typescript/test/live.test.ts): what an L7 proxy will route tenants by.

Observed in the server's per-call DEBUG line, which is logged before the answer is sent, so it is in the log
file by the time the call returns.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from memserve_client import AsyncMemoryClient, InvalidArgumentError, MemoryClient
from memserve_client._proto import memory_pb2 as pb

from tests.support.server import ServerProcess

CALLS = [
    ("WriteEpisodes", "write", lambda ns: (ns, ["Alice moved to Paris in 2019."]), {"wait_for_graph": True}),
    ("Query", "query", lambda ns: (ns, "Paris"), {}),
    ("ListEpisodes", "list", lambda ns: (ns,), {}),
    ("GetStats", "stats", lambda ns: (ns,), {}),
    ("ExportGraph", "export_graph", lambda ns: (ns,), {}),
    ("GetSummary", "summary", lambda ns: (ns,), {}),
    ("Prune", "prune", lambda ns: (ns,), {"dry_run": True}),
    ("DeleteEpisodes", "delete", lambda ns: (ns, ["no-such-id"]), {}),
    ("DeleteNamespace", "delete_namespace", lambda ns: (ns,), {}),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("nsh") / "data", settings={"log_level": "DEBUG"}) as proc:
        yield proc


def lines_for(server: ServerProcess, namespace: str) -> dict[str, str]:
    """RPC name -> the status of its call carrying ``memserve-namespace=<namespace>``."""
    pattern = re.compile(rf"memserve\.rpc: (\w+) \w+ [\d.]+ms (\w+) memserve-namespace={re.escape(namespace)}$",
                         re.MULTILINE)
    return {m[1]: m[2] for m in pattern.finditer(server.log())}


def test_the_calls_cover_every_namespaced_rpc() -> None:
    service = pb.DESCRIPTOR.services_by_name["MemoryService"]
    namespaced = {m.name for m in service.methods if "namespace" in m.input_type.fields_by_name}
    # GetEpisode needs an existing id; it is checked on its own below, like the admin calls (client.admin).
    assert {rpc for rpc, *_ in CALLS} | {"GetEpisode", "ExportNamespace", "ImportNamespace"} == namespaced


def test_sync_client_sends_the_namespace_on_every_namespaced_call(server: ServerProcess) -> None:
    with MemoryClient(server.target, timeout=60) as client:
        for _, method, args, kwargs in CALLS:
            getattr(client, method)(*args("py-sync"), **kwargs)
        client.write("py-get", [{"text": "x", "id": "e1"}])
        client.get("py-get", "e1")
        client.list_namespaces()
    seen = lines_for(server, "py-sync")
    assert seen == {rpc: "OK" for rpc, *_ in CALLS}
    assert lines_for(server, "py-get") == {"WriteEpisodes": "OK", "GetEpisode": "OK"}
    assert re.search(r"memserve\.rpc: ListNamespaces \w+ [\d.]+ms OK memserve-namespace=-$", server.log(), re.MULTILINE)


def test_admin_calls_send_the_namespace_too(server: ServerProcess) -> None:
    with MemoryClient(server.target, timeout=60) as client:
        client.write("py-admin", ["Alice moved to Paris in 2019."])
        page = client.admin.export_namespace("py-admin")
        client.admin.import_namespace("py-admin", page.items, embedding_model=page.embedding_model)
    assert lines_for(server, "py-admin") == {"WriteEpisodes": "OK", "ExportNamespace": "OK", "ImportNamespace": "OK"}


def test_async_client_sends_the_namespace_too(server: ServerProcess) -> None:
    async def run() -> None:
        async with AsyncMemoryClient(server.target, timeout=60) as client:
            for _, method, args, kwargs in CALLS:
                await getattr(client, method)(*args("py-async"), **kwargs)

    asyncio.run(run())
    assert lines_for(server, "py-async") == {rpc: "OK" for rpc, *_ in CALLS}


def test_a_namespace_that_cannot_be_a_header_still_gets_the_servers_answer(server: ServerProcess) -> None:
    with MemoryClient(server.target) as client, pytest.raises(InvalidArgumentError) as error:
        client.query("naïve namespace", "q")
    assert error.value.field == "namespace"
