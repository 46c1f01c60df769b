"""MemoryService: protobuf in, engine call on a worker thread, protobuf out. No logic lives here."""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from .._proto import memory_pb2 as pb
from .._proto import memory_pb2_grpc
from ..engine import stats as engine_stats
from ..engine.background import Settled
from ..engine.memory import MemoryEngine
from . import convert
from .auth import current_principal


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self, engine: MemoryEngine, executor: ThreadPoolExecutor) -> None:
        self._engine = engine
        self._executor = executor

    async def _run(self, fn, *args, **kwargs):
        # DuckDB, FAISS and the encoder block; keep them off the event loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def WriteEpisodes(self, request: pb.WriteEpisodesRequest, context: grpc.aio.ServicerContext):
        episodes = [convert.episode_in(e, i) for i, e in enumerate(request.episodes)]
        deadline = _deadline(context)
        result, seqs = await self._run(self._engine.store, request.namespace, episodes, deadline=deadline)
        if request.wait_for_graph:
            # Half a second of the deadline is kept to answer "not yet" before the client gives up.
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic() - 0.5)
            status = await self._wait_graph(request.namespace, timeout)
            await self._run(self._engine.check_graph, request.namespace, seqs, status)
        return pb.WriteEpisodesResponse(ids=result.ids, created=result.created)

    async def _wait_graph(self, namespace: str, timeout: float | None) -> Settled:
        """Wait for the graph on the event loop: a waiting client holds no RPC thread."""
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[Settled] = loop.create_future()

        def resolve(status: Settled) -> None:  # runs on a worker thread
            def set_result() -> None:
                if not settled.done():
                    settled.set_result(status)
            try:
                loop.call_soon_threadsafe(set_result)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

        graph = self._engine.graph
        now = graph.when_settled(namespace, resolve)
        if now is not None:
            return now
        try:
            return await asyncio.wait_for(settled, timeout)
        except asyncio.TimeoutError:
            return Settled.TIMEOUT
        finally:
            graph.forget_waiter(namespace, resolve)

    async def Query(self, request: pb.QueryRequest, context: grpc.aio.ServicerContext):
        q = convert.query_in(request)
        return convert.query_out(await self._run(self._engine.query, q, deadline=_deadline(context)))

    async def GetEpisode(self, request: pb.GetEpisodeRequest, context: grpc.aio.ServicerContext):
        episode = await self._run(self._engine.get, request.namespace, request.id)
        return pb.GetEpisodeResponse(episode=convert.episode_out(episode))

    async def ListEpisodes(self, request: pb.ListEpisodesRequest, context: grpc.aio.ServicerContext):
        episodes, token = await self._run(self._engine.list, request.namespace, page_size=request.page_size,
                                          page_token=request.page_token, session_id=request.session_id)
        return pb.ListEpisodesResponse(episodes=[convert.episode_out(e) for e in episodes], next_page_token=token)

    async def DeleteEpisodes(self, request: pb.DeleteEpisodesRequest, context: grpc.aio.ServicerContext):
        deleted, missing = await self._run(self._engine.delete, request.namespace, list(request.ids))
        return pb.DeleteEpisodesResponse(deleted_count=deleted, not_found_ids=missing)

    async def GetStats(self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext):
        return await self._run(self._stats, request.namespace, _visible())

    def _stats(self, namespace: str, visible) -> pb.GetStatsResponse:
        stats = engine_stats.collect(self._engine, namespace, visible=visible)
        out = pb.GetStatsResponse(
            episode_count=stats.episode_count, db_bytes=stats.db_bytes, disk_bytes=stats.disk_bytes,
            embedding_model=stats.embedding_model, embedding_dim=stats.embedding_dim, extractor=stats.extractor,
            gpu=stats.gpu, dropped_triples=stats.dropped_triples)
        if stats.llm_usage:
            known = pb.LlmUsage.DESCRIPTOR.fields_by_name  # usage() has counters GetStats does not carry
            out.llm.CopyFrom(pb.LlmUsage(**{k: v for k, v in stats.llm_usage.items() if k in known}))
        for s in stats.namespaces:
            out.namespaces.append(pb.NamespaceStats(
                namespace=s.namespace, episode_count=s.episode_count, vector_count=s.vector_count,
                index_type=s.index_type, index_bytes=s.index_bytes, session_count=s.session_count,
                create_time=convert.ts_out(s.create_time), lexical_count=s.lexical_count, **s.graph))
        return out

    async def ListNamespaces(self, request: pb.ListNamespacesRequest, context: grpc.aio.ServicerContext):
        rows, token = await self._run(self._engine.list_namespaces, page_size=request.page_size,
                                      page_token=request.page_token, visible=_visible())
        return pb.ListNamespacesResponse(
            namespaces=[pb.NamespaceInfo(name=n, episode_count=c, create_time=convert.ts_out(t)) for n, c, t in rows],
            next_page_token=token)

    async def DeleteNamespace(self, request: pb.DeleteNamespaceRequest, context: grpc.aio.ServicerContext):
        count = await self._run(self._engine.delete_namespace, request.namespace)
        return pb.DeleteNamespaceResponse(deleted_episode_count=count)

    async def GetSummary(self, request: pb.GetSummaryRequest, context: grpc.aio.ServicerContext):
        view = await self._run(self._engine.summary, request.namespace, request.session_id)
        return pb.GetSummaryResponse(
            summary=view.summary, update_time=convert.ts_out(view.update_time), episode_count=view.episode_count,
            segments_summary=view.segments_summary, backlog=view.backlog,
            segments=[pb.SegmentSummary(index=s.idx, first_seq=s.first_seq, last_seq=s.last_seq, text=s.text,
                                        update_time=convert.ts_out(s.update_time)) for s in view.segments])

    async def Prune(self, request: pb.PruneRequest, context: grpc.aio.ServicerContext):
        min_score = request.min_score if request.HasField("min_score") else None
        decisions, remaining, texts = await self._run(
            self._engine.prune, request.namespace, dry_run=request.dry_run, max_episodes=request.max_episodes,
            max_bytes=request.max_bytes, min_score=min_score)
        return pb.PruneResponse(
            pruned=[pb.PrunedEpisode(id=d.id, score=d.score if d.score != float("inf") else 3.4e38,
                                     reason=d.reason, text=texts.get(d.seq, "")) for d in decisions],
            remaining_count=remaining, dry_run=request.dry_run)

    async def ExportGraph(self, request: pb.ExportGraphRequest, context: grpc.aio.ServicerContext):
        fmt = "node-link" if request.format == pb.GRAPH_FORMAT_NODE_LINK_JSON else "graphml"
        data, nodes, edges = await self._run(self._engine.export_graph, request.namespace, fmt,
                                             directed=request.directed)
        return pb.ExportGraphResponse(data=data, node_count=nodes, edge_count=edges)

    # -- administration (admin scope) ------------------------------------------------------------------------
    async def BackupDatabase(self, request: pb.BackupDatabaseRequest, context: grpc.aio.ServicerContext):
        info = await self._run(self._engine.backup, request.directory)
        return pb.BackupDatabaseResponse(directory=str(info.directory), size_bytes=info.size_bytes,
                                         last_seq=info.last_seq, backup_time=convert.ts_out(info.backup_time),
                                         schema_version=info.schema_version)

    async def ExportNamespace(self, request: pb.ExportNamespaceRequest, context: grpc.aio.ServicerContext):
        page, token = await self._run(self._engine.export_namespace, request.namespace,
                                      page_size=request.page_size, page_token=request.page_token)
        return pb.ExportNamespaceResponse(episodes=[convert.exported_out(x) for x in page], next_page_token=token,
                                          embedding_model=self._engine.embedder_key,
                                          embedding_dim=self._engine.embedder.dim)

    async def ImportNamespace(self, request: pb.ImportNamespaceRequest, context: grpc.aio.ServicerContext):
        items = [convert.exported_in(x, i) for i, x in enumerate(request.episodes)]
        result = await self._run(self._engine.import_namespace, request.namespace, [e for e, _, _ in items],
                                 [b for _, b, _ in items], [t for _, _, t in items], request.embedding_model)
        return pb.ImportNamespaceResponse(ids=result.ids, created=result.created)


def _visible():
    """The caller's namespace filter for calls that span namespaces (None: every namespace)."""
    principal = current_principal()
    return None if principal is None or principal.all_namespaces else principal.may_see


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The client's deadline on this process's monotonic clock (None: the client set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
