"""Every RPC of the proto's MemoryService is supported by both SDKs: the Python one and the TypeScript one.

"Supported" means: the SDK's RPC table has it (with its policy: deadline, idempotency) and a public client
method calls it. An RPC added to protos/memserve/v1 without SDK support fails here, naming the SDK and the RPC.
The TypeScript side is read from its source, so this runs without node; `tsc` separately refuses a TS RPC table
that lacks a method of the generated service.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memserve._proto import memory_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
PY_CORE = REPO / "clients" / "python" / "memserve_client" / "_core.py"
TS_SRC = REPO / "clients" / "typescript" / "src"

# `  WriteEpisodes: rpc("writeEpisodes", 120_000, { idempotent: true }),` inside `export const RPCS = {...}`
_TS_TABLE = re.compile(r"^export const RPCS = \{\n(?P<body>.*?)^\}", re.MULTILINE | re.DOTALL)
_TS_ENTRY = re.compile(r"^\s+(?P<name>\w+): rpc\(\"(?P<key>\w+)\"", re.MULTILINE)


def proto_rpcs() -> set[str]:
    return {m.name for m in pb.DESCRIPTOR.services_by_name["MemoryService"].methods}


def python_sdk_rpcs() -> dict[str, bool]:
    """RPC name -> whether a plan of the Python SDK calls it."""
    from memserve_client import _core

    source = PY_CORE.read_text()
    return {name: f'RPCS["{name}"]' in source for name in _core.RPCS}


def typescript_sdk_rpcs() -> dict[str, bool]:
    """RPC name -> whether the TypeScript client calls it (and its table entry matches the generated method)."""
    table = _TS_TABLE.search((TS_SRC / "core.ts").read_text())
    assert table, "no `export const RPCS = {` table in clients/typescript/src/core.ts"
    client = (TS_SRC / "client.ts").read_text()
    out = {}
    for entry in _TS_ENTRY.finditer(table["body"]):
        name, key = entry["name"], entry["key"]
        assert key == name[0].lower() + name[1:], f"TS table entry {name} points at the generated method {key}"
        out[name] = re.search(rf"\bRPCS\.{name}\b", client) is not None
    return out


def missing(proto: set[str], sdk: dict[str, bool]) -> list[str]:
    problems = [f"{name}: not in the RPC table" for name in sorted(proto - set(sdk))]
    problems += [f"{name}: no client method calls it" for name in sorted(proto & set(sdk)) if not sdk[name]]
    problems += [f"{name}: in the RPC table but not in the proto" for name in sorted(set(sdk) - proto)]
    return problems


@pytest.mark.parametrize("sdk", ["python", "typescript"])
def test_every_proto_rpc_is_supported(sdk: str) -> None:
    table = python_sdk_rpcs() if sdk == "python" else typescript_sdk_rpcs()
    assert missing(proto_rpcs(), table) == [], f"{sdk} SDK out of step with protos/memserve/v1"


def test_the_check_notices_an_rpc_the_sdks_lack() -> None:
    # What the test above would see the day an RPC is added to the proto and not to an SDK.
    proto = proto_rpcs() | {"ExportNamespace"}
    for table in (python_sdk_rpcs(), typescript_sdk_rpcs()):
        assert missing(proto, table) == ["ExportNamespace: not in the RPC table"]
        assert missing(proto_rpcs(), {**table, "Query": False}) == ["Query: no client method calls it"]


def test_the_typescript_table_is_what_the_package_exports() -> None:
    # RPC_NAMES (exported by memserve-client) is built from the same table.
    source = (TS_SRC / "core.ts").read_text()
    assert "export const RPC_NAMES: readonly RpcName[] = Object.keys(RPCS)" in source
    assert 'export { NAMESPACE_KEY, RPC_NAMES, type RpcName } from "./core.js";' in (TS_SRC / "index.ts").read_text()
