"""The asyncio client: the same methods as :class:`~memserve_client.MemoryClient`, as coroutines.

Only the driving of plans differs (``await`` and ``asyncio.sleep``); the parity test keeps the signatures equal
and the docstrings are taken from the sync client so they cannot drift either.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc

from . import _core, _tls
from ._version import __version__
from .client import AdminClient, MemoryClient
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


class AsyncMemoryClient:
    """Asyncio memserve client; create it inside the event loop that uses it (grpc.aio binds to it)."""

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
            grpc.aio.secure_channel(target, credentials, channel_options)
            if credentials is not None
            else grpc.aio.insecure_channel(target, channel_options)
        )
        self._methods: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}

    # --- driving plans ---------------------------------------------------------------------------------------

    def _method(self, rpc: _core.Rpc) -> grpc.aio.UnaryUnaryMultiCallable:
        method = self._methods.get(rpc.path)
        if method is None:
            method = self._methods[rpc.path] = self._channel.unary_unary(
                rpc.path,
                request_serializer=rpc.request_type.SerializeToString,
                response_deserializer=rpc.response_type.FromString,
            )
        return method

    async def _invoke(self, call: _core.Call) -> Any:
        attempts = _core.Attempts(call, self._settings)
        method = self._method(call.rpc)
        while True:
            try:
                return await method(call.request, timeout=attempts.next_timeout(), metadata=attempts.metadata)
            except grpc.RpcError as error:
                await asyncio.sleep(attempts.backoff(error))

    async def _run(self, plan: _core.Plan[T]) -> T:
        response = None
        while True:
            try:
                call = plan.send(response)
            except StopIteration as done:
                value: T = done.value
                return value
            response = await self._invoke(call)

    # --- API -------------------------------------------------------------------------------------------------

    async def write(
        self,
        namespace: str,
        episodes: Iterable[EpisodeLike] | EpisodeLike,
        *,
        wait_for_graph: bool = False,
        timeout: float | None = None,
    ) -> WriteResult:
        return await self._run(
            _core.write(
                namespace, episodes, wait_for_graph=wait_for_graph, timeout=timeout,
                max_batch=self._settings.max_batch,
            )
        )

    async def query(
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
        return await self._run(
            _core.query(
                namespace, text, top_k=top_k, mode=mode, filter=filter, token_budget=token_budget, graph=graph,
                summary_session_id=summary_session_id, speaker=speaker, now=now, timeout=timeout,
            )
        )

    async def get(self, namespace: str, id: str, *, timeout: float | None = None) -> Episode:
        return await self._run(_core.get(namespace, id, timeout=timeout))

    async def list(
        self,
        namespace: str,
        *,
        page_size: int = 100,
        page_token: str = "",
        session_id: str = "",
        timeout: float | None = None,
    ) -> EpisodePage:
        return await self._run(
            _core.list_episodes(
                namespace, page_size=page_size, page_token=page_token, session_id=session_id, timeout=timeout
            )
        )

    async def iter_episodes(
        self, namespace: str, *, page_size: int = 100, session_id: str = "", timeout: float | None = None
    ) -> AsyncIterator[Episode]:
        token = ""
        while True:
            page = await self.list(namespace, page_size=page_size, page_token=token, session_id=session_id,
                                   timeout=timeout)
            for episode in page.items:
                yield episode
            token = page.next_page_token
            if not token:
                return

    async def delete(
        self, namespace: str, ids: Iterable[str] | str, *, timeout: float | None = None
    ) -> DeleteResult:
        return await self._run(_core.delete(namespace, ids, timeout=timeout))

    async def stats(self, namespace: str = "", *, timeout: float | None = None) -> Stats:
        return await self._run(_core.stats(namespace, timeout=timeout))

    async def list_namespaces(
        self, *, page_size: int = 100, page_token: str = "", timeout: float | None = None
    ) -> NamespacePage:
        return await self._run(_core.list_namespaces(page_size=page_size, page_token=page_token, timeout=timeout))

    async def delete_namespace(self, namespace: str, *, timeout: float | None = None) -> int:
        return await self._run(_core.delete_namespace(namespace, timeout=timeout))

    async def export_graph(
        self, namespace: str, format: GraphFormat = "graphml", *, directed: bool = False,
        timeout: float | None = None
    ) -> GraphExport:
        return await self._run(_core.export_graph(namespace, format=format, directed=directed, timeout=timeout))

    async def summary(self, namespace: str, session_id: str = "", *, timeout: float | None = None) -> Summary:
        return await self._run(_core.summary(namespace, session_id=session_id, timeout=timeout))

    async def prune(
        self,
        namespace: str,
        *,
        dry_run: bool = False,
        max_episodes: int = 0,
        max_bytes: int = 0,
        min_score: float | None = None,
        timeout: float | None = None,
    ) -> PruneResult:
        return await self._run(
            _core.prune(
                namespace, dry_run=dry_run, max_episodes=max_episodes, max_bytes=max_bytes, min_score=min_score,
                timeout=timeout,
            )
        )

    @property
    def admin(self) -> AsyncAdminClient:
        """Administration calls (backup, namespace export and import): they need an admin-scope key."""
        return AsyncAdminClient(self)

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        return await self._run(_core.health(service, timeout=timeout))

    async def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            raise _core.not_ready_error(self.target, timeout) from None

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncMemoryClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


# One source for the docs of both clients.
AsyncMemoryClient.__doc__ = f"{AsyncMemoryClient.__doc__}\n\n{MemoryClient.__doc__}"
for _name, _member in vars(MemoryClient).items():
    if not _name.startswith("_") and callable(_member) and getattr(AsyncMemoryClient, _name).__doc__ is None:
        getattr(AsyncMemoryClient, _name).__doc__ = _member.__doc__
del _name, _member


class AsyncAdminClient:
    """``AsyncMemoryClient.admin``: calls that copy or move whole databases and namespaces (admin scope)."""

    def __init__(self, client: AsyncMemoryClient) -> None:
        self._client = client

    async def backup(self, directory: str, *, timeout: float | None = None) -> BackupInfo:
        return await self._client._run(_core.backup(directory, timeout=timeout))

    async def export_namespace(
        self, namespace: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> NamespaceExportPage:
        return await self._client._run(
            _core.export_namespace(namespace, page_size=page_size, page_token=page_token, timeout=timeout)
        )

    async def iter_export(
        self, namespace: str, *, page_size: int = 500, timeout: float | None = None
    ) -> AsyncIterator[tuple[str, ExportedEpisode]]:
        token = ""
        while True:
            page = await self.export_namespace(namespace, page_size=page_size, page_token=token, timeout=timeout)
            for item in page.items:
                yield page.embedding_model, item
            token = page.next_page_token
            if not token:
                return

    async def import_namespace(
        self,
        namespace: str,
        episodes: Iterable[ExportedEpisode],
        *,
        embedding_model: str,
        timeout: float | None = None,
    ) -> WriteResult:
        return await self._client._run(
            _core.import_namespace(
                namespace, episodes, embedding_model=embedding_model, timeout=timeout, max_batch=self._client._settings.max_batch
            )
        )


for _name, _member in vars(AdminClient).items():
    if not _name.startswith("_") and callable(_member) and getattr(AsyncAdminClient, _name).__doc__ is None:
        getattr(AsyncAdminClient, _name).__doc__ = _member.__doc__
del _name, _member
