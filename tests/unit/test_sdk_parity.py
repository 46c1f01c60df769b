"""Every RPC of the proto's MemoryService is supported by both SDKs: the Python one and the TypeScript one; so are
the fields of QueryRequest, Hit and NamespaceStats and every query mode.

"Supported" means: the SDK's RPC table has it (with its policy: deadline, idempotency) and a public client
method calls it. An RPC added to protos/memserve/v1 without SDK support fails here, naming the SDK and the RPC.
The TypeScript side is read from its source, so this runs without node; `tsc` separately refuses a TS RPC table
that lacks a method of the generated service.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from memserve_client._proto import memory_pb2 as pb

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
    proto = proto_rpcs() | {"SomeFutureRpc"}
    for table in (python_sdk_rpcs(), typescript_sdk_rpcs()):
        assert missing(proto, table) == ["SomeFutureRpc: not in the RPC table"]
        assert missing(proto_rpcs(), {**table, "Query": False}) == ["Query: no client method calls it"]


def test_the_typescript_table_is_what_the_package_exports() -> None:
    # RPC_NAMES (exported by memserve-client) is built from the same table.
    source = (TS_SRC / "core.ts").read_text()
    assert "export const RPC_NAMES: readonly RpcName[] = Object.keys(RPCS)" in source
    assert 'export { NAMESPACE_KEY, RPC_NAMES, type RpcName } from "./core.js";' in (TS_SRC / "index.ts").read_text()


# --- fields and query modes: a field added to the proto and forgotten by an SDK fails here -------------------

PARITY_MESSAGES = ("QueryRequest", "Hit", "NamespaceStats")
_TS_FUNCTIONS = {"QueryRequest": "queryRequest", "Hit": "hit", "NamespaceStats": "namespaceStats"}


def proto_fields(message: str) -> list[str]:
    return [f.name for f in pb.DESCRIPTOR.message_types_by_name[message].fields]


def python_sdk_fields(message: str) -> set[str]:
    """QueryRequest: the keyword parameters of `query_request`; results: the fields of the typed dataclass."""
    import dataclasses
    import inspect

    from memserve_client import _convert, types

    if message == "QueryRequest":
        return set(inspect.signature(_convert.query_request).parameters)
    return {f.name for f in dataclasses.fields(getattr(types, message))}


def typescript_sdk_fields(message: str, source: str | None = None) -> set[str]:
    """QueryRequest: the keys `queryRequest` sets; results: the `m.<field>` the converter reads (snake_case)."""
    source = source if source is not None else (TS_SRC / "convert.ts").read_text()
    body = re.search(rf"^(?:export )?function {_TS_FUNCTIONS[message]}\(.*?^\}}", source, re.MULTILINE | re.DOTALL)
    assert body, f"no function {_TS_FUNCTIONS[message]} in clients/typescript/src/convert.ts"
    found = re.findall(r"^\s+(\w+)(?=[:,])", body[0], re.MULTILINE) if message == "QueryRequest" \
        else re.findall(r"\bm\.(\w+)", body[0])
    return {re.sub(r"[A-Z]", lambda c: "_" + c[0].lower(), name) for name in found}


@pytest.mark.parametrize("message", PARITY_MESSAGES)
@pytest.mark.parametrize("sdk", ["python", "typescript"])
def test_every_field_reaches_both_sdks(sdk: str, message: str) -> None:
    have = python_sdk_fields(message) if sdk == "python" else typescript_sdk_fields(message)
    lacking = [name for name in proto_fields(message) if name not in have]
    assert lacking == [], f"{sdk} SDK does not carry {message}.{', '.join(lacking)}"


def test_the_field_check_notices_a_forgotten_field() -> None:
    source = (TS_SRC / "convert.ts").read_text()
    assert "lexical_score" in typescript_sdk_fields("Hit", source)
    assert "lexical_score" not in typescript_sdk_fields("Hit", source.replace("m.lexicalScore", "0"))
    assert "speaker" not in typescript_sdk_fields("QueryRequest", source.replace('speaker: string(args.speaker', '('))


@pytest.mark.parametrize("sdk", ["python", "typescript"])
def test_every_query_mode_has_a_name_in_both_sdks(sdk: str) -> None:
    from memserve_client import _convert

    wanted = {v.name for v in pb.DESCRIPTOR.enum_types_by_name["QueryMode"].values if v.number != 0}
    if sdk == "python":
        have = {pb.QueryMode.Name(value) for value in _convert._MODES.values()}
    else:
        table = re.search(r"^const MODES: Record<QueryMode, pb\.QueryMode> = \{\n(.*?)^\};",
                          (TS_SRC / "convert.ts").read_text(), re.MULTILINE | re.DOTALL)
        assert table, "no MODES table in clients/typescript/src/convert.ts"
        have = set(re.findall(r"pb\.QueryMode\.(QUERY_MODE_\w+)", table[1]))
    assert sorted(wanted - have) == [], f"{sdk} SDK has no name for these query modes"
