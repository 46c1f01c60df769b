"""The I/O-free core shared by the sync and asyncio clients.

Each public client method is a *plan*: a generator that yields :class:`Call` objects (which RPC, which request,
which deadline, whether it may be retried), receives each response protobuf, and returns the dataclass result.
The two clients only differ in how they drive a plan (blocking calls + ``time.sleep`` vs ``await`` +
``asyncio.sleep``); validation, chunking, conversion, deadlines and retry decisions all live here, once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from . import _convert as conv
from . import errors
from ._proto import memory_pb2 as pb
from .types import (
    BackupInfo,
    DeleteResult,
    Episode,
    EpisodeLike,
    EpisodePage,
    ExportedEpisode,
    GraphExport,
    GraphOptions,
    NamespaceExportPage,
    NamespacePage,
    PruneResult,
    QueryFilter,
    QueryResult,
    Stats,
    Summary,
    WriteResult,
)

T = TypeVar("T")

SERVICE = "memserve.v1.MemoryService"
DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_RETRIES = 3  # 4 attempts in all
# GraphML exports of large namespaces pass gRPC's 4 MiB default easily.
DEFAULT_MAX_RECEIVE_BYTES = 256 * 1024 * 1024
# Sent on every call whose request names a namespace, so an L7 proxy can route by tenant.
NAMESPACE_KEY = "memserve-namespace"


# --- per-method policy ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rpc:
    """One RPC and its policy: how long it may take by default, and whether re-sending it is safe."""

    path: str
    request_type: type[Message]
    response_type: type[Message]
    default_timeout: float
    idempotent: bool


def _memory_rpc(name: str, default_timeout: float, *, idempotent: bool) -> Rpc:
    # AIP naming (one FooRequest/FooResponse per RPC) lets the table name each method only once.
    return Rpc(
        path=f"/{SERVICE}/{name}",
        request_type=getattr(pb, f"{name}Request"),
        response_type=getattr(pb, f"{name}Response"),
        default_timeout=default_timeout,
        idempotent=idempotent,
    )


RPCS: Mapping[str, Rpc] = {
    # Idempotent: ids are client-supplied or content hashes, so a re-sent episode is a no-op.
    "WriteEpisodes": _memory_rpc("WriteEpisodes", 120.0, idempotent=True),
    "Query": _memory_rpc("Query", 30.0, idempotent=True),
    "GetEpisode": _memory_rpc("GetEpisode", 30.0, idempotent=True),
    "ListEpisodes": _memory_rpc("ListEpisodes", 30.0, idempotent=True),
    # Deleting what is already gone reports it in not_found_ids instead of failing.
    "DeleteEpisodes": _memory_rpc("DeleteEpisodes", 30.0, idempotent=True),
    "GetStats": _memory_rpc("GetStats", 30.0, idempotent=True),
    "ListNamespaces": _memory_rpc("ListNamespaces", 30.0, idempotent=True),
    # A retry after a lost response would fail with NOT_FOUND and hide the success.
    "DeleteNamespace": _memory_rpc("DeleteNamespace", 60.0, idempotent=False),
    "ExportGraph": _memory_rpc("ExportGraph", 120.0, idempotent=True),
    "GetSummary": _memory_rpc("GetSummary", 30.0, idempotent=True),
    # Each prune removes more; only a dry run (see prune()) is safe to repeat.
    "Prune": _memory_rpc("Prune", 120.0, idempotent=False),
    # A retry would find the directory taken (BACKUP_EXISTS) and hide the success.
    "BackupDatabase": _memory_rpc("BackupDatabase", 600.0, idempotent=False),
    "ExportNamespace": _memory_rpc("ExportNamespace", 120.0, idempotent=True),
    # Ids travel with the episodes, so a re-sent import is a no-op like a re-sent write.
    "ImportNamespace": _memory_rpc("ImportNamespace", 120.0, idempotent=True),
}

HEALTH_CHECK = Rpc(
    path="/grpc.health.v1.Health/Check",
    request_type=health_pb2.HealthCheckRequest,
    response_type=health_pb2.HealthCheckResponse,
    default_timeout=10.0,
    idempotent=True,
)


@dataclass(frozen=True, slots=True)
class Call:
    """One logical RPC a plan wants made (the driver may make several attempts)."""

    rpc: Rpc
    request: Message
    # Per-call override of the deadline, in seconds.
    timeout: float | None = None
    # Per-request override of the method's idempotency (a dry-run Prune is safe to repeat).
    idempotent: bool | None = None

    @property
    def retryable(self) -> bool:
        return self.rpc.idempotent if self.idempotent is None else self.idempotent


Plan = Generator[Call, Any, T]


# --- deadlines and retries -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, only for UNAVAILABLE on idempotent calls."""

    max_attempts: int = DEFAULT_MAX_RETRIES + 1
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    retryable_codes: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        # Full jitter spreads the retries of many clients that failed together.
        return ceiling * rand()


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What a client was constructed with; immutable so a client can be shared between threads/tasks."""

    timeout: float | None = None
    retry: RetryPolicy = RetryPolicy()
    metadata: tuple[tuple[str, str], ...] = ()
    max_batch: int = DEFAULT_MAX_BATCH


def make_settings(
    *, timeout: float | None, max_retries: int, api_key: str | None, max_batch: int
) -> ClientSettings:
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch!r}")
    metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
    return ClientSettings(
        timeout=timeout, retry=RetryPolicy(max_attempts=max_retries + 1), metadata=metadata, max_batch=max_batch
    )


def channel_options(options: Sequence[tuple[str, Any]] | None, version: str) -> list[tuple[str, Any]]:
    merged = {
        "grpc.primary_user_agent": f"memserve-client/{version}",
        "grpc.max_receive_message_length": DEFAULT_MAX_RECEIVE_BYTES,
    }
    merged.update(dict(options or ()))  # the caller's options win
    return list(merged.items())


def _header_value(value: str) -> bool:
    # Printable ASCII without edge spaces, what gRPC accepts in a text header. A namespace that is not (and so
    # is invalid anyway) is left out, so the server rejects it naming the field instead of grpc failing locally.
    return bool(value) and value.isascii() and value.isprintable() and value == value.strip()


def namespace_metadata(request: Message) -> tuple[tuple[str, str], ...]:
    """``memserve-namespace`` for a request that names one (every RPC whose request has a namespace field)."""
    if "namespace" not in request.DESCRIPTOR.fields_by_name:
        return ()
    namespace: str = request.namespace
    return ((NAMESPACE_KEY, namespace),) if _header_value(namespace) else ()


class Attempts:
    """Deadline and retry bookkeeping for one logical call. One deadline covers every attempt and backoff,
    so retries never stretch a call past what the caller allowed."""

    def __init__(
        self,
        call: Call,
        settings: ClientSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._call = call
        self._retry = settings.retry
        self._clock = clock
        self._rand = rand
        timeout = call.timeout if call.timeout is not None else settings.timeout
        self.timeout = timeout if timeout is not None else call.rpc.default_timeout
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout!r}")
        self._deadline = clock() + self.timeout
        self.attempt = 0
        self.metadata = settings.metadata + namespace_metadata(call.request)

    def next_timeout(self) -> float:
        """Start an attempt: the seconds it may take."""
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            raise errors.DeadlineExceededError(
                f"{self._call.rpc.path}: deadline of {self.timeout:g} s passed after {self.attempt} attempt(s)",
                code=grpc.StatusCode.DEADLINE_EXCEEDED,
            )
        self.attempt += 1
        return remaining

    def backoff(self, error: grpc.RpcError) -> float:
        """Seconds to sleep before retrying after ``error``; raises the mapped exception when it is final."""
        mapped = errors.from_rpc_error(error)
        if (
            not self._call.retryable
            or mapped.code not in self._retry.retryable_codes
            or self.attempt >= self._retry.max_attempts
        ):
            raise mapped from error
        delay = self._retry.backoff(self.attempt, self._rand)
        if self._clock() + delay >= self._deadline:
            raise mapped from error  # a retry could not finish in time anyway
        return delay


# --- plans: one per public client method ---------------------------------------------------------------------


def _single(call: Call, parse: Callable[[Any], T]) -> Plan[T]:
    response = yield call
    return parse(response)


def write(
    namespace: str,
    episodes: Iterable[EpisodeLike] | EpisodeLike,
    *,
    wait_for_graph: bool,
    timeout: float | None,
    max_batch: int,
) -> Plan[WriteResult]:
    inputs = conv.coerce_episodes(episodes)
    responses = []
    # Chunks keep each request under the server's message limit; atomicity then holds per chunk, and
    # re-sending the whole write after a failure is safe because writes are idempotent.
    for start in range(0, len(inputs), max_batch):
        request = conv.write_request(namespace, inputs[start : start + max_batch], wait_for_graph)
        responses.append((yield Call(RPCS["WriteEpisodes"], request, timeout)))
    return conv.write_result_from_proto(responses)


def query(
    namespace: str,
    text: str,
    *,
    top_k: int,
    mode: str | None,
    filter: QueryFilter | None,
    token_budget: int,
    graph: GraphOptions | None,
    summary_session_id: str,
    timeout: float | None,
    speaker: str = "",
    now: datetime | str | None = None,
) -> Plan[QueryResult]:
    request = conv.query_request(
        namespace,
        text,
        top_k=top_k,
        mode=mode,
        filter=filter,
        token_budget=token_budget,
        graph=graph,
        summary_session_id=summary_session_id,
        speaker=speaker,
        now=now,
    )
    return _single(Call(RPCS["Query"], request, timeout), conv.query_result_from_proto)


def get(namespace: str, id: str, *, timeout: float | None) -> Plan[Episode]:
    request = pb.GetEpisodeRequest(namespace=namespace, id=id)
    return _single(Call(RPCS["GetEpisode"], request, timeout), lambda r: conv.episode_from_proto(r.episode))


def list_episodes(
    namespace: str, *, page_size: int, page_token: str, session_id: str, timeout: float | None
) -> Plan[EpisodePage]:
    request = pb.ListEpisodesRequest(
        namespace=namespace, page_size=page_size, page_token=page_token, session_id=session_id
    )
    return _single(Call(RPCS["ListEpisodes"], request, timeout), conv.episode_page_from_proto)


def delete(namespace: str, ids: Iterable[str] | str, *, timeout: float | None) -> Plan[DeleteResult]:
    id_list = [ids] if isinstance(ids, str) else list(ids)  # a lone id, not its characters
    request = pb.DeleteEpisodesRequest(namespace=namespace, ids=id_list)
    return _single(Call(RPCS["DeleteEpisodes"], request, timeout), conv.delete_result_from_proto)


def stats(namespace: str, *, timeout: float | None) -> Plan[Stats]:
    request = pb.GetStatsRequest(namespace=namespace)
    return _single(Call(RPCS["GetStats"], request, timeout), conv.stats_from_proto)


def list_namespaces(*, page_size: int, page_token: str, timeout: float | None) -> Plan[NamespacePage]:
    request = pb.ListNamespacesRequest(page_size=page_size, page_token=page_token)
    return _single(Call(RPCS["ListNamespaces"], request, timeout), conv.namespace_page_from_proto)


def delete_namespace(namespace: str, *, timeout: float | None) -> Plan[int]:
    request = pb.DeleteNamespaceRequest(namespace=namespace)
    return _single(Call(RPCS["DeleteNamespace"], request, timeout), lambda r: r.deleted_episode_count)


def export_graph(namespace: str, *, format: str, directed: bool = False,
                 timeout: float | None) -> Plan[GraphExport]:
    request = pb.ExportGraphRequest(namespace=namespace, format=conv.parse_format(format), directed=directed)
    return _single(Call(RPCS["ExportGraph"], request, timeout), conv.graph_export_from_proto)


def summary(namespace: str, *, session_id: str, timeout: float | None) -> Plan[Summary]:
    request = pb.GetSummaryRequest(namespace=namespace, session_id=session_id)
    return _single(Call(RPCS["GetSummary"], request, timeout), conv.summary_from_proto)


def prune(
    namespace: str,
    *,
    dry_run: bool,
    max_episodes: int,
    max_bytes: int,
    min_score: float | None,
    timeout: float | None,
) -> Plan[PruneResult]:
    request = conv.prune_request(
        namespace, dry_run=dry_run, max_episodes=max_episodes, max_bytes=max_bytes, min_score=min_score
    )
    call = Call(RPCS["Prune"], request, timeout, idempotent=True if dry_run else None)
    return _single(call, conv.prune_result_from_proto)


def backup(directory: str, *, timeout: float | None) -> Plan[BackupInfo]:
    request = pb.BackupDatabaseRequest(directory=directory)
    return _single(Call(RPCS["BackupDatabase"], request, timeout), conv.backup_from_proto)


def export_namespace(
    namespace: str, *, page_size: int, page_token: str, timeout: float | None
) -> Plan[NamespaceExportPage]:
    request = pb.ExportNamespaceRequest(namespace=namespace, page_size=page_size, page_token=page_token)
    return _single(Call(RPCS["ExportNamespace"], request, timeout), conv.export_page_from_proto)


def import_namespace(
    namespace: str,
    episodes: Iterable[ExportedEpisode],
    *,
    embedding_model: str,
    timeout: float | None,
    max_batch: int,
) -> Plan[WriteResult]:
    items = list(episodes)
    responses = []
    for start in range(0, len(items), max_batch):
        request = pb.ImportNamespaceRequest(
            namespace=namespace,
            episodes=[conv.exported_to_proto(x) for x in items[start : start + max_batch]],
            embedding_model=embedding_model,
        )
        responses.append((yield Call(RPCS["ImportNamespace"], request, timeout)))
    return conv.write_result_from_proto(responses)


def health(service: str, *, timeout: float | None) -> Plan[str]:
    request = health_pb2.HealthCheckRequest(service=service)
    return _single(
        Call(HEALTH_CHECK, request, timeout),
        lambda r: health_pb2.HealthCheckResponse.ServingStatus.Name(r.status),
    )


def not_ready_error(target: str, timeout: float) -> errors.UnavailableError:
    return errors.UnavailableError(
        f"server at {target} did not become ready within {timeout:g} s", code=grpc.StatusCode.UNAVAILABLE
    )
