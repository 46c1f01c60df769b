"""`memserve mcp` end to end: the MCP SDK's own client over stdio, against a real memserve server."""

from __future__ import annotations

import json
import os
import sys

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from tests.support.server import REPO, ServerProcess


@pytest.fixture(scope="module")
def mem_server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("mcp") / "data", settings={"extractor": "offline"}) as proc:
        yield proc


def params(target: str, namespace: str) -> StdioServerParameters:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "clients" / "python")])}
    return StdioServerParameters(command=sys.executable, cwd=str(REPO), env=env,
                                 args=["-m", "memserve", "mcp", "--server", target, "--namespace", namespace])


def structured(result) -> dict:
    assert not result.is_error, result.content
    return result.structured_content


async def test_tools_and_resources_over_stdio(mem_server):
    async with stdio_client(params(mem_server.target, "agent")) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {"remember", "recall", "forget", "summary", "stats"}
        assert all(t.description for t in tools.values())
        recall_schema = tools["recall"].input_schema
        assert recall_schema["required"] == ["query"]
        assert recall_schema["properties"]["top_k"]["type"] == "integer"
        assert tools["remember"].input_schema["properties"]["episodes"]["type"] == "array"

        written = structured(await session.call_tool("remember", {"episodes": [
            {"text": "Lisbon is the capital of Portugal.", "id": "lis", "session_id": "trip"},
            {"text": "The user prefers window seats on flights.", "session_id": "prefs"},
        ], "wait_for_graph": True}))
        assert written["ids"][0] == "lis" and written["created"] == [True, True]

        found = structured(await session.call_tool("recall", {"query": "What is the capital of Portugal?",
                                                                "top_k": 2, "mode": "hybrid",
                                                                "token_budget": 500}))
        assert found["hits"][0]["id"] == "lis" and found["hits"][0]["rank"] == 1
        assert {"dense_score", "graph_score", "score", "facts", "session_id"} <= set(found["hits"][0])
        assert "Lisbon is the capital of Portugal." in found["context"] and 0 < found["context_tokens"] <= 500
        only_prefs = structured(await session.call_tool("recall", {"query": "capital", "session_ids": ["prefs"]}))
        assert [h["id"] for h in only_prefs["hits"]] == [written["ids"][1]]

        stats = structured(await session.call_tool("stats", {"namespace": "agent"}))
        assert stats["namespaces"][0]["namespace"] == "agent" and stats["episode_count"] == 2
        summary = structured(await session.call_tool("summary", {}))
        assert summary["namespace"] == "agent" and summary["episode_count"] >= 0

        resources = {str(r.uri) for r in (await session.list_resources()).resources}
        assert "memserve://summary" in resources
        templates = {t.uri_template for t in (await session.list_resource_templates()).resource_templates}
        assert "memserve://summary/{name}" in templates
        text = (await session.read_resource("memserve://summary/agent")).contents[0].text
        assert text == summary["summary"] or text == "(no memories yet)"

        gone = structured(await session.call_tool("forget", {"ids": ["lis", "never-was"]}))
        assert gone == {"deleted_count": 1, "not_found_ids": ["never-was"]}
        after = structured(await session.call_tool("recall", {"query": "capital of Portugal"}))
        assert "lis" not in [h["id"] for h in after["hits"]]


async def test_errors_reach_the_model_as_tool_errors(mem_server):
    async with stdio_client(params(mem_server.target, "agent2")) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        missing = await session.call_tool("recall", {"query": "anything", "namespace": "no-such-namespace"})
        assert missing.is_error and "does not exist" in missing.content[0].text
        bad = await session.call_tool("remember", {"episodes": [{"text": ""}]})
        assert bad.is_error and "text" in bad.content[0].text
        invalid = await session.call_tool("recall", {"query": "x", "top_k": 0})
        assert invalid.is_error and "top_k" in invalid.content[0].text


async def test_streamable_http_transport(mem_server, tmp_path):
    import socket
    import subprocess

    from mcp.client.streamable_http import streamable_http_client

    from tests.support.gates import wait_until

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "clients" / "python")])}
    log = open(tmp_path / "mcp-http.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, "-m", "memserve", "mcp", "--server", mem_server.target, "--namespace",
                             "web", "--transport", "streamable-http", "--port", str(port)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)

    def listening() -> bool:
        assert proc.poll() is None, (tmp_path / "mcp-http.log").read_text()
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, "memserve mcp listening on HTTP")
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            written = structured(await session.call_tool("remember", {"episodes": [{"text": "Over HTTP."}]}))
            found = structured(await session.call_tool("recall", {"query": "HTTP", "top_k": 1}))
            assert found["hits"][0]["id"] == written["ids"][0]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_readme_snippet_is_valid_json_and_runs_this_command():
    readme = (REPO / "README.md").read_text()
    start = readme.index('{\n  "mcpServers"')
    snippet = json.loads(readme[start:readme.index("\n}\n", start) + 2])
    server = snippet["mcpServers"]["memserve"]
    assert server["args"][:1] == ["mcp"] and "--server" in server["args"] and "--namespace" in server["args"]
