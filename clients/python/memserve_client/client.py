"""The blocking client. Every method builds a plan in :mod:`._core` and drives it; see that module for policy."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc

from . import _core, _tls
from ._version import __version__
from .types import (
    BackupInfo,
    DeleteResult,
    Episode,
    EpisodeLike,
    EpisodePage,
    ExportedEpisode,
    GraphExport,
    GraphFormat,
    GraphOptions,
    NamespaceExportPage,
    NamespacePage,
    PruneResult,
    QueryFilter,
    QueryMode,
    QueryResult,
    Stats,
    Summary,
    WriteResult,
)

T = TypeVar("T")


class MemoryClient:
    """Synchronous memserve client; safe to share between threads.

    ``timeout`` replaces every method's default deadline (30 s for reads, 120 s for writes, exports and
    prunes); a method's own ``timeout=`` wins over both. Calls that are safe to repeat are retried on
    UNAVAILABLE up to ``max_retries`` times with jittered exponential backoff, within the same deadline.
    ``api_key`` is sent as ``authorization: Bearer <key>``. ``options`` are extra gRPC channel options.
    ``tls=True`` makes the channel TLS (system roots); ``root_certificates`` trusts a private CA instead, and
    ``client_cert``/``client_key`` present a client certificate (mTLS); each is PEM bytes or a file path.
    ``credentials`` (ready-made ``grpc.ChannelCredentials``) is the alternative to those. Writes of more than
    ``max_batch`` episodes are split into several calls (each chunk is atomic, not the whole write).
    """

    def __init__(
        self,
        target: str = _core.DEFAULT_TARGET,
        *,
        timeout: float | None = None,
        max_retries: int = _core.DEFAULT_MAX_RETRIES,
        api_key: str | None = None,
        options: Sequence[tuple[str, Any]] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        max_batch: int = _core.DEFAULT_MAX_BATCH,
        tls: bool = False,
        root_certificates: _tls.Pem = None,
        client_cert: _tls.Pem = None,
        client_key: _tls.Pem = None,
    ) -> None:
        self._settings = _core.make_settings(
            timeout=timeout, max_retries=max_retries, api_key=api_key, max_batch=max_batch
        )
        self.target = target
        channel_options = _core.channel_options(options, __version__)
        credentials = _tls.channel_credentials(
            tls=tls, root_certificates=root_certificates, client_cert=client_cert, client_key=client_key,
            credentials=credentials,
        )
        self._channel = (
            grpc.secure_channel(target, credentials, channel_options)
            if credentials is not None
            else grpc.insecure_channel(target, channel_options)
        )
        self._methods: dict[str, grpc.UnaryUnaryMultiCallable] = {}

    # --- driving plans ---------------------------------------------------------------------------------------

    def _method(self, rpc: _core.Rpc) -> grpc.UnaryUnaryMultiCallable:
        method = self._methods.get(rpc.path)
        if method is None:
            method = self._methods[rpc.path] = self._channel.unary_unary(
                rpc.path,
                request_serializer=rpc.request_type.SerializeToString,
                response_deserializer=rpc.response_type.FromString,
            )
        return method

    def _invoke(self, call: _core.Call) -> Any:
        attempts = _core.Attempts(call, self._settings)
        method = self._method(call.rpc)
        while True:
            try:
                return method(call.request, timeout=attempts.next_timeout(), metadata=attempts.metadata)
            except grpc.RpcError as error:
                time.sleep(attempts.backoff(error))

    def _run(self, plan: _core.Plan[T]) -> T:
        response = None
        while True:
            try:
                call = plan.send(response)
            except StopIteration as done:
                value: T = done.value
                return value
            response = self._invoke(call)

    # --- API -------------------------------------------------------------------------------------------------

    def write(
        self,
        namespace: str,
        episodes: Iterable[EpisodeLike] | EpisodeLike,
        *,
        wait_for_graph: bool = False,
        timeout: float | None = None,
    ) -> WriteResult:
        """Store episodes (EpisodeInput, dicts, or plain strings); returns one id per episode in order.

        With ``wait_for_graph`` the call returns only once extraction and the graph update are done.
        ``timeout`` applies to each chunk of ``max_batch`` episodes.
        """
        return self._run(
            _core.write(
                namespace, episodes, wait_for_graph=wait_for_graph, timeout=timeout,
                max_batch=self._settings.max_batch,
            )
        )

    def query(
        self,
        namespace: str,
        text: str,
        *,
        top_k: int = 10,
        mode: QueryMode | None = None,
        filter: QueryFilter | None = None,
        token_budget: int = 0,
        graph: GraphOptions | None = None,
        summary_session_id: str = "",
        speaker: str = "",
        now: datetime | str | None = None,
        timeout: float | None = None,
    ) -> QueryResult:
        """Retrieve episodes by meaning ("dense"), through the knowledge graph ("graph"), by words ("lexical",
        BM25), or fused ("hybrid": dense + BM25, the speaker lift, and the graph when weighted).

        ``speaker`` prefers that speaker's turns in hybrid mode (empty: a query naming one known speaker of the
        namespace does). ``now`` (datetime or ISO 8601) is what "last week" in the text means relative to
        (default: the server clock); turns dated inside the window a time expression names are preferred.
        ``mode=None`` lets the server choose; an unknown mode raises ValueError before any call.
        ``token_budget=0`` uses the server default for the packed ``context``.
        """
        return self._run(
            _core.query(
                namespace, text, top_k=top_k, mode=mode, filter=filter, token_budget=token_budget, graph=graph,
                summary_session_id=summary_session_id, speaker=speaker, now=now, timeout=timeout,
            )
        )

    def get(self, namespace: str, id: str, *, timeout: float | None = None) -> Episode:
        """One episode; raises EpisodeNotFoundError / NamespaceNotFoundError."""
        return self._run(_core.get(namespace, id, timeout=timeout))

    def list(
        self,
        namespace: str,
        *,
        page_size: int = 100,
        page_token: str = "",
        session_id: str = "",
        timeout: float | None = None,
    ) -> EpisodePage:
        """One page of episodes; pass ``next_page_token`` back for the next (empty on the last page)."""
        return self._run(
            _core.list_episodes(
                namespace, page_size=page_size, page_token=page_token, session_id=session_id, timeout=timeout
            )
        )

    def iter_episodes(
        self, namespace: str, *, page_size: int = 100, session_id: str = "", timeout: float | None = None
    ) -> Iterator[Episode]:
        """Every episode of the namespace (or session), fetching pages lazily; ``timeout`` is per page."""
        token = ""
        while True:
            page = self.list(namespace, page_size=page_size, page_token=token, session_id=session_id,
                             timeout=timeout)
            yield from page.items
            token = page.next_page_token
            if not token:
                return

    def delete(self, namespace: str, ids: Iterable[str] | str, *, timeout: float | None = None) -> DeleteResult:
        """Delete episodes by id; ids that do not exist are reported, not raised (so retries are safe)."""
        return self._run(_core.delete(namespace, ids, timeout=timeout))

    def stats(self, namespace: str = "", *, timeout: float | None = None) -> Stats:
        """Counts, index sizes and LLM usage; ``namespace=""`` gives totals over every namespace."""
        return self._run(_core.stats(namespace, timeout=timeout))

    def list_namespaces(
        self, *, page_size: int = 100, page_token: str = "", timeout: float | None = None
    ) -> NamespacePage:
        """One page of namespaces with their episode counts."""
        return self._run(_core.list_namespaces(page_size=page_size, page_token=page_token, timeout=timeout))

    def delete_namespace(self, namespace: str, *, timeout: float | None = None) -> int:
        """Delete a namespace and everything in it; returns the number of episodes deleted. Never retried."""
        return self._run(_core.delete_namespace(namespace, timeout=timeout))

    def export_graph(
        self, namespace: str, format: GraphFormat = "graphml", *, directed: bool = False,
        timeout: float | None = None
    ) -> GraphExport:
        """The namespace's knowledge graph as GraphML or networkx node-link JSON bytes. Passage nodes carry the
        episode's ``id`` and ``text``; ``directed=True`` keeps each fact's direction (subject → object)."""
        return self._run(_core.export_graph(namespace, format=format, directed=directed, timeout=timeout))

    def summary(self, namespace: str, session_id: str = "", *, timeout: float | None = None) -> Summary:
        """The rolling compact memory of the namespace, or of one session."""
        return self._run(_core.summary(namespace, session_id=session_id, timeout=timeout))

    def prune(
        self,
        namespace: str,
        *,
        dry_run: bool = False,
        max_episodes: int = 0,
        max_bytes: int = 0,
        min_score: float | None = None,
        timeout: float | None = None,
    ) -> PruneResult:
        """Age-weighted forgetting (0 / None: the server's limits). Only dry runs are retried."""
        return self._run(
            _core.prune(
                namespace, dry_run=dry_run, max_episodes=max_episodes, max_bytes=max_bytes, min_score=min_score,
                timeout=timeout,
            )
        )

    @property
    def admin(self) -> AdminClient:
        """Administration calls (backup, namespace export and import): they need an admin-scope key."""
        return AdminClient(self)

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """grpc.health.v1 status name: "SERVING", "NOT_SERVING", "UNKNOWN" or "SERVICE_UNKNOWN"."""
        return self._run(_core.health(service, timeout=timeout))

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the channel is connected; raises UnavailableError after ``timeout`` seconds."""
        future = grpc.channel_ready_future(self._channel)
        try:
            future.result(timeout=timeout)
        except grpc.FutureTimeoutError:
            future.cancel()
            raise _core.not_ready_error(self.target, timeout) from None

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AdminClient:
    """``MemoryClient.admin``: calls that copy or move whole databases and namespaces (admin scope)."""

    def __init__(self, client: MemoryClient) -> None:
        self._client = client

    def backup(self, directory: str, *, timeout: float | None = None) -> BackupInfo:
        """A consistent copy of the server's database in ``directory`` (an absolute path on the server's
        machine), taken while it keeps serving; restore it with ``memserve restore``."""
        return self._client._run(_core.backup(directory, timeout=timeout))

    def export_namespace(
        self, namespace: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> NamespaceExportPage:
        """One page of the namespace's episodes with their embeddings and extractions, in write order."""
        return self._client._run(
            _core.export_namespace(namespace, page_size=page_size, page_token=page_token, timeout=timeout)
        )

    def iter_export(
        self, namespace: str, *, page_size: int = 500, timeout: float | None = None
    ) -> Iterator[tuple[str, ExportedEpisode]]:
        """(embedding_model, episode) for every episode of the namespace, fetching pages lazily."""
        token = ""
        while True:
            page = self.export_namespace(namespace, page_size=page_size, page_token=token, timeout=timeout)
            for item in page.items:
                yield page.embedding_model, item
            token = page.next_page_token
            if not token:
                return

    def import_namespace(
        self,
        namespace: str,
        episodes: Iterable[ExportedEpisode],
        *,
        embedding_model: str,
        timeout: float | None = None,
    ) -> WriteResult:
        """Store exported episodes as they were (ids, fields, embeddings, extractions); idempotent."""
        return self._client._run(
            _core.import_namespace(
                namespace, episodes, embedding_model=embedding_model, timeout=timeout, max_batch=self._client._settings.max_batch
            )
        )
