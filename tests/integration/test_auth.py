"""Scoped API keys through the real server and SDK: the auth matrix (every RPC × every kind of caller),
refusal before the request body is read, filtered listings, reload of the keys file, reflection, and
error details any gRPC client can read."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from memserve_client import (
    MemoryClient,
    MemserveError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from memserve_client._proto import memory_pb2 as pb
from memserve_client._proto import memory_pb2_grpc

from memserve.server.auth import RPC_SCOPES, SERVICE_PREFIX, scope_for
from memserve.server.keys import Scope, entry_toml, hash_key
from tests.integration.test_live_serving import Running
from tests.support.gates import wait_until

KEYS = {  # name -> (secret, namespace patterns, scopes)
    "reader": ("k-read", ["t-*"], ["read"]),
    "writer": ("k-write", ["t-*"], ["write"]),
    "admin": ("k-admin", ["t-*"], ["admin"]),
    "elsewhere": ("k-elsewhere", ["other-*"], ["read", "write", "admin"]),
}
ROOT = "k-root"  # the single api_key setting: all access


def write_keys(path: Path, keys: dict[str, tuple[str, list[str], list[str]]]) -> None:
    text = "\n".join(entry_toml(name, hash_key(secret), ns, scopes) for name, (secret, ns, scopes) in keys.items())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


@pytest.fixture()
def keyed(tmp_path):
    servers: list[Running] = []

    def start(keys=KEYS, **overrides) -> Running:
        keys_file = tmp_path / "keys.toml"
        write_keys(keys_file, keys)
        servers.append(Running(tmp_path / f"s{len(servers)}", api_key=ROOT, api_keys_file=str(keys_file),
                               **overrides))
        servers[-1].keys_file = keys_file  # type: ignore[attr-defined]
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


# One SDK call per RPC. ``ids`` are the seeded episode ids of the namespace.
CALLS: dict[str, Callable[[MemoryClient, str, tuple[str, ...]], object]] = {
    "WriteEpisodes": lambda c, ns, ids: c.write(ns, ["another episode"]),
    "Query": lambda c, ns, ids: c.query(ns, "seed"),
    "GetEpisode": lambda c, ns, ids: c.get(ns, ids[0]),
    "ListEpisodes": lambda c, ns, ids: c.list(ns),
    "DeleteEpisodes": lambda c, ns, ids: c.delete(ns, ids[:1]),
    "GetStats": lambda c, ns, ids: c.stats(ns),
    "ListNamespaces": lambda c, ns, ids: c.list_namespaces(),
    "DeleteNamespace": lambda c, ns, ids: c.delete_namespace(ns),
    "ExportGraph": lambda c, ns, ids: c.export_graph(ns),
    "GetSummary": lambda c, ns, ids: c.summary(ns),
    "Prune": lambda c, ns, ids: c.prune(ns, max_episodes=1),
    "ExportNamespace": lambda c, ns, ids: c.admin.export_namespace(ns),
    # Re-imports the namespace's own export (a no-op once authorised); a caller without admin is refused at
    # the export already, with the same status.
    "ImportNamespace": lambda c, ns, ids: c.admin.import_namespace(
        ns, [x for _, x in c.admin.iter_export(ns)], embedding_model=next(c.admin.iter_export(ns))[0]),
}
SERVICE_METHODS = [m.name for m in pb.DESCRIPTOR.services_by_name["MemoryService"].methods]
CALLERS = ["reader", "writer", "admin", "elsewhere", "no key", "wrong key"]


def expected(rpc: str, caller: str) -> str:
    if caller in ("no key", "wrong key"):
        return "UNAUTHENTICATED"
    if caller == "elsewhere":  # every scope, other namespaces: listings are filtered, the rest refused
        return "OK" if rpc == "ListNamespaces" else "PERMISSION_DENIED"
    return "OK" if RPC_SCOPES[rpc].value == {"reader": "read", "writer": "write", "admin": "admin"}[caller] \
        else "PERMISSION_DENIED"


def outcome(fn: Callable[[], object]) -> str:
    try:
        fn()
    except MemserveError as exc:
        return exc.code.name if exc.code is not None else "UNKNOWN"
    return "OK"


def test_auth_matrix_every_rpc_times_every_caller(keyed):
    srv = keyed()
    assert set(CALLS) <= set(SERVICE_METHODS)
    secrets = {name: spec[0] for name, spec in KEYS.items()} | {"no key": None, "wrong key": "k-nope"}
    seeded: dict[str, tuple[str, ...]] = {}
    with MemoryClient(srv.target, timeout=30, api_key=ROOT) as root:
        for i in range(len(CALLS)):
            for j in range(len(CALLERS)):
                ns = f"t-{i}-{j}"
                seeded[ns] = root.write(ns, ["seed episode one", "seed episode two"]).ids
    got, want = {}, {}
    for i, rpc in enumerate(CALLS):
        for j, caller in enumerate(CALLERS):
            ns = f"t-{i}-{j}"
            with MemoryClient(srv.target, timeout=30, max_retries=0, api_key=secrets[caller]) as client:
                got[rpc, caller] = outcome(lambda rpc=rpc, ns=ns, client=client: CALLS[rpc](client, ns, seeded[ns]))
            want[rpc, caller] = expected(rpc, caller)
    assert got == want
    # The single api_key is all-access: every RPC works with it.
    with MemoryClient(srv.target, timeout=30, api_key=ROOT) as root:
        for i, rpc in enumerate(CALLS):
            ns = f"t-{i}-0"
            assert outcome(lambda rpc=rpc, ns=ns: CALLS[rpc](root, ns, seeded[ns])) == "OK", rpc


def test_backup_needs_admin_for_every_namespace(keyed, tmp_path):
    """BackupDatabase names no namespace: it copies them all, so only an admin key for '*' may call it."""
    srv = keyed()
    assert RPC_SCOPES["BackupDatabase"] is Scope.ADMIN
    for secret in ("k-read", "k-write", "k-admin", "k-elsewhere"):
        with MemoryClient(srv.target, timeout=30, max_retries=0, api_key=secret) as client, pytest.raises(PermissionDeniedError):
            client.admin.backup(str(tmp_path / f"backup-{secret}"))
        assert not (tmp_path / f"backup-{secret}").exists()
    with MemoryClient(srv.target, timeout=30, api_key=ROOT) as root:
        root.write("t-backup", ["one episode"])
        assert root.admin.backup(str(tmp_path / "backup-root")).last_seq >= 1


def test_rpcs_outside_the_table_need_admin(keyed):
    """A new RPC (or one the SDK does not wrap yet) is admin until the table says otherwise."""
    srv = keyed()
    assert scope_for(SERVICE_PREFIX + "SomeFutureRpc") is Scope.ADMIN
    assert scope_for("/other.Service/Method") is Scope.ADMIN
    unlisted = [m for m in SERVICE_METHODS if m not in RPC_SCOPES]
    with grpc.insecure_channel(srv.target) as channel:
        for name in [*unlisted, "NoSuchMethod"]:
            call = channel.unary_unary(SERVICE_PREFIX + name, request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
            for secret, code in ((None, grpc.StatusCode.UNAUTHENTICATED),
                                 ("k-read", grpc.StatusCode.PERMISSION_DENIED),
                                 ("k-write", grpc.StatusCode.PERMISSION_DENIED)):
                md = (("authorization", f"Bearer {secret}"),) if secret else ()
                with pytest.raises(grpc.RpcError) as err:
                    call(b"", metadata=md, timeout=30)
                assert err.value.code() == code, (name, secret)


def test_listings_show_only_the_namespaces_a_key_may_see(keyed):
    keys = dict(KEYS, team=("k-team", ["team-a*", "shared"], ["read"]))
    srv = keyed(keys=keys)
    names = [f"team-a{i:02d}" for i in range(7)] + ["team-b", "shared", "zeta", "t-x"]
    with MemoryClient(srv.target, timeout=30, api_key=ROOT) as root:
        for ns in names:
            root.write(ns, [f"an episode of {ns}"])
        assert root.stats().episode_count == len(names)
    with MemoryClient(srv.target, timeout=30, api_key="k-team") as team:
        seen, token = [], ""
        while True:  # small pages stay full although most namespaces are hidden
            page = team.list_namespaces(page_size=3, page_token=token)
            assert len(page.items) == 3 or not page.next_page_token
            seen += [n.name for n in page.items]
            token = page.next_page_token
            if not token:
                break
        assert seen == sorted([n for n in names if n.startswith("team-a")] + ["shared"])
        stats = team.stats()
        assert sorted(s.namespace for s in stats.namespaces) == seen
        assert stats.episode_count == len(seen) and stats.db_bytes == 0
        with pytest.raises(PermissionDeniedError) as err:
            team.stats("zeta")
        assert err.value.field == "namespace" and err.value.reason == "NAMESPACE_DENIED"
        # a namespace that does not exist is refused the same way: no existence oracle
        with pytest.raises(PermissionDeniedError):
            team.query("nonexistent", "hello")


def test_an_unauthenticated_oversized_request_is_refused_before_it_is_read(keyed):
    srv = keyed(max_message_bytes=1 << 20)
    big = [f"{i:04d} " + "x" * 60_000 for i in range(40)]  # ~2.4 MB, past the 1 MiB limit
    with MemoryClient(srv.target, timeout=30, max_retries=0) as anonymous, pytest.raises(UnauthenticatedError):
        anonymous.write("t-big", big)
    with MemoryClient(srv.target, timeout=30, max_retries=0, api_key="k-read") as reader, \
            pytest.raises(PermissionDeniedError) as err:
        reader.write("t-big", big)  # wrong scope: also decided from the metadata alone
    assert err.value.reason == "SCOPE_DENIED"
    # The same request with a valid key is read, and then it is too large: the limit is real.
    with MemoryClient(srv.target, timeout=30, max_retries=0, api_key="k-write") as writer, \
            pytest.raises(ResourceExhaustedError):
        writer.write("t-big", big)


def test_keys_file_changes_apply_without_restart(keyed):
    srv = keyed(api_keys_poll_s=0.01)
    new = dict(KEYS, late=("k-late", ["t-*"], ["read"]))
    with MemoryClient(srv.target, timeout=30, max_retries=0, api_key="k-late") as late, \
            MemoryClient(srv.target, timeout=30, max_retries=0, api_key="k-read") as reader:
        with pytest.raises(UnauthenticatedError):
            late.list_namespaces()
        write_keys(srv.keys_file, new)
        wait_until(lambda: outcome(late.list_namespaces) == "OK", "the added key to work")
        del new["reader"]
        write_keys(srv.keys_file, new)
        wait_until(lambda: outcome(reader.list_namespaces) == "UNAUTHENTICATED", "the removed key to fail")
        reloads = srv.server.keys.reloads
        broken = srv.keys_file.with_suffix(".broken")
        broken.write_text("[[keys]]\nname = 'broken'\n")
        broken.replace(srv.keys_file)  # atomically, as an editor should: rejected, the keys in force stay
        wait_until(lambda: srv.server.keys._text == srv.keys_file.read_text(), "the broken file to be read")
        assert srv.server.keys.reloads == reloads
        assert outcome(late.list_namespaces) == "OK"


def _reflect(target: str, secret: str | None) -> list[str]:
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        md = (("authorization", f"Bearer {secret}"),) if secret else ()
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              metadata=md, timeout=30)
        return [s.name for r in responses for s in r.list_services_response.service]


def test_reflection_needs_a_key_when_keys_are_configured(keyed):
    srv = keyed()
    with pytest.raises(grpc.RpcError) as err:
        _reflect(srv.target, None)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "memserve.v1.MemoryService" in _reflect(srv.target, "k-read")
    opened = keyed(reflection_without_key=True)
    assert "memserve.v1.MemoryService" in _reflect(opened.target, None)


def test_health_checks_need_no_key(keyed):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    srv = keyed()
    with grpc.insecure_channel(srv.target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_error_details_decode_with_plain_grpc(keyed):
    """No SDK: grpc-status reads ErrorInfo, BadRequest and RequestInfo from grpc-status-details-bin."""
    from google.rpc import error_details_pb2

    srv = keyed()

    def details(call) -> tuple[grpc.StatusCode, dict, dict]:
        with pytest.raises(grpc.RpcError) as err:
            call()
        status = rpc_status.from_call(err.value)
        assert status is not None and status.code == err.value.code().value[0]
        found = {}
        for any_ in status.details:
            for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RequestInfo):
                if any_.Is(cls.DESCRIPTOR):
                    msg = cls()
                    any_.Unpack(msg)
                    found[cls.__name__] = msg
        return err.value.code(), found, dict(err.value.trailing_metadata())

    with grpc.insecure_channel(srv.target) as channel:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        md = (("authorization", "Bearer k-read"),)
        code, found, trailers = details(lambda: stub.Query(pb.QueryRequest(namespace="t-a", text=""), metadata=md,
                                                           timeout=30))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert found["ErrorInfo"].domain == "memserve" and found["ErrorInfo"].reason == trailers["memserve-reason"]
        assert found["BadRequest"].field_violations[0].field == trailers["memserve-field"] == "text"
        assert found["RequestInfo"].request_id == trailers["memserve-request-id"]
        # refused before the body was read: the same details
        code, found, trailers = details(lambda: stub.Query(pb.QueryRequest(namespace="t-a", text="hi"), timeout=30))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert found["ErrorInfo"].reason == "UNAUTHENTICATED"
        assert found["RequestInfo"].request_id == trailers["memserve-request-id"]


def test_request_ids_of_refused_calls_are_in_the_server_log(keyed, caplog):
    srv = keyed()
    caplog.set_level(logging.WARNING, logger="memserve")
    with MemoryClient(srv.target, timeout=30, max_retries=0, api_key="k-wrong") as client, \
            pytest.raises(UnauthenticatedError) as unauthenticated:
        client.stats()
    with MemoryClient(srv.target, timeout=30, max_retries=0, api_key="k-read") as client:
        with pytest.raises(PermissionDeniedError) as scope:
            client.delete_namespace("t-a")
        with pytest.raises(PermissionDeniedError) as namespace:
            client.stats("zeta")
    for err in (unauthenticated, scope, namespace):
        request_id = err.value.request_id
        assert request_id and request_id in caplog.text, err.value
