"""Metrics and logs: a Prometheus endpoint, one access-log line per RPC, text or JSON log lines.

``ObservabilityInterceptor`` is the outermost server interceptor: it gives each call a request id (the one the
error trailers carry, via ``REQUEST_ID``), times it, counts it by method and status code, turns a Query's
``timings_ms`` into stage histograms and a write's created episodes into a counter, and logs the access line.

``EngineCollector`` reads the engine at scrape time (never on the request path): extraction and summary backlog
and failures, index and graph sizes per namespace, LLM calls, tokens and cost. Everything lives in one
``CollectorRegistry`` per server, so two servers in one process do not share series.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from memserve_client._proto import memory_pb2 as pb
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from ..errors import ConfigError

access_log = logging.getLogger("memserve.access")
log = logging.getLogger(__name__)

SERVICE_PREFIX = "/memserve.v1.MemoryService/"

# The id of the call being handled (set by ObservabilityInterceptor, read by the error mapping).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("memserve_request_id", default="")

# Seconds: an RPC spans a sub-millisecond GetEpisode to a multi-second wait_for_graph write.
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The server's metric families (RPC side); the engine side is read by ``EngineCollector`` at scrape."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rpcs = Counter("memserve_rpc_requests", "RPCs handled, by method and gRPC status code.",
                            ["method", "code"], registry=r)
        self.rpc_seconds = Histogram("memserve_rpc_duration_seconds", "RPC latency, by method and status code.",
                                     ["method", "code"], buckets=RPC_BUCKETS, registry=r)
        self.stage_seconds = Histogram("memserve_query_stage_seconds",
                                       "Query stage latency, one series per QueryResponse.timings_ms key.",
                                       ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.episodes_written = Counter("memserve_episodes_written",
                                        "Episodes acknowledged by WriteEpisodes (re-sends included).", registry=r)
        self.episodes_created = Counter("memserve_episodes_ingested",
                                        "New episodes stored (rate() of it is ingest episodes/s).", registry=r)

    def observe_rpc(self, method: str, code: grpc.StatusCode, seconds: float, response: Any) -> None:
        self.rpcs.labels(method, code.name).inc()
        self.rpc_seconds.labels(method, code.name).observe(seconds)
        if code is not grpc.StatusCode.OK:
            return
        if isinstance(response, pb.QueryResponse):
            for stage, ms in response.timings_ms.items():
                self.stage_seconds.labels(stage).observe(ms / 1000.0)
        elif isinstance(response, pb.WriteEpisodesResponse):
            self.episodes_written.inc(len(response.ids))
            self.episodes_created.inc(sum(response.created))


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Outermost interceptor: request id, metrics and the access log for every MemoryService unary call."""

    def __init__(self, metrics: Metrics | None, access: bool = True) -> None:
        self._metrics = metrics
        self._access = access

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if not method.startswith(SERVICE_PREFIX):
            return await continuation(handler_call_details)
        # Set before the inner interceptors run: a call refused by auth carries this id in its trailers too.
        request_id = uuid.uuid4().hex[:16]
        REQUEST_ID.set(request_id)
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        name = method[len(SERVICE_PREFIX):]
        started = time.perf_counter()
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def observed(request, context: grpc.aio.ServicerContext):
                REQUEST_ID.set(request_id)  # contextvars are per task: set it in the handler's too
                finish = self._finisher(name, request, request_id, started)
                try:
                    response = await inner(request, _ObservedContext(context, finish))
                except BaseException:
                    finish(_final_code(context), None)
                    raise
                finish(grpc.StatusCode.OK, response)
                return response

            return grpc.unary_unary_rpc_method_handler(observed, request_deserializer=handler.request_deserializer,
                                                       response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:  # auth's refusal of a unary call, answered before the body is read
            refuse = handler.stream_stream

            async def observed_refusal(request_iterator, context: grpc.aio.ServicerContext):
                finish = self._finisher(name, None, request_id, started)
                try:
                    result = refuse(request_iterator, _ObservedContext(context, finish))
                    if hasattr(result, "__aiter__"):
                        async for item in result:
                            yield item
                    else:
                        await result
                except BaseException:
                    finish(_final_code(context), None)
                    raise
                finish(grpc.StatusCode.OK, None)

            return grpc.stream_stream_rpc_method_handler(observed_refusal,
                                                         request_deserializer=handler.request_deserializer,
                                                         response_serializer=handler.response_serializer)
        return handler

    def _finisher(self, method: str, request: Any, request_id: str, started: float):
        """``finish(code, response)``: count and log the call once, before its answer leaves (abort sends the
        status at once, so a client that got its answer finds its call already counted and logged)."""
        done = False

        def finish(code: grpc.StatusCode, response: Any) -> None:
            nonlocal done
            if done:
                return
            done = True
            seconds = time.perf_counter() - started
            if self._metrics is not None:
                self._metrics.observe_rpc(method, code, seconds, response)
            if self._access:
                self._log_access(method, request, code, seconds, request_id)

        return finish

    @staticmethod
    def _log_access(method: str, request: Any, code: grpc.StatusCode, seconds: float, request_id: str) -> None:
        namespace = getattr(request, "namespace", "")  # a Malformed request has none
        ms = round(seconds * 1000.0, 3)
        access_log.info("%s ns=%s code=%s %.1fms id=%s", method, namespace or "-", code.name, ms, request_id,
                        extra={"rpc": {"method": method, "namespace": namespace, "code": code.name, "ms": ms,
                                       "request_id": request_id}})


class _ObservedContext:
    """The servicer context, except that ``abort`` records the call before the status is sent."""

    def __init__(self, context: grpc.aio.ServicerContext, finish: Any) -> None:
        self._context = context
        self._finish = finish

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> Any:
        self._finish(code, None)
        return await self._context.abort(code, details, trailing_metadata)


def _final_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """The status of a call that ended in an exception other than a recorded abort."""
    code = context.code()
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code
    return grpc.StatusCode.CANCELLED


class EngineCollector(Collector):
    """Engine state at scrape time, from the same cached view GetStats uses (cheap on an idle server)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def describe(self) -> Iterable[Any]:
        return []  # collected lazily: no scrape at registration time

    def collect(self) -> Iterator[Any]:
        from ..engine import stats as engine_stats

        engine = self._engine
        try:
            stats = engine_stats.collect(engine)
            summary_backlog = {s.namespace: engine.hema.summary(s.namespace, "").backlog for s in stats.namespaces}
        except Exception:  # a scrape during shutdown or a failing store must not kill the endpoint
            log.exception("metrics: reading engine statistics failed")
            return
        ns_gauges = {
            "episodes": ("memserve_namespace_episodes", "Episodes stored."),
            "vectors": ("memserve_index_vectors", "Vectors in the namespace's index."),
            "index_bytes": ("memserve_index_bytes", "Size of the namespace's vector index."),
            "phrases": ("memserve_graph_phrases", "Phrase nodes in the knowledge graph."),
            "facts": ("memserve_graph_facts", "Facts in the knowledge graph."),
            "edges": ("memserve_graph_edges", "Edges in the knowledge graph."),
            "extraction_backlog": ("memserve_extraction_backlog", "Episodes waiting for extraction."),
            "extraction_failed": ("memserve_extraction_failed", "Extraction jobs that gave up."),
            "summary_backlog": ("memserve_summary_backlog", "Episodes not yet folded into the summary."),
        }
        families = {k: GaugeMetricFamily(n, h, labels=["namespace"]) for k, (n, h) in ns_gauges.items()}
        for s in stats.namespaces:
            values = {"episodes": s.episode_count, "vectors": s.vector_count, "index_bytes": s.index_bytes,
                      "phrases": s.graph.get("phrase_count", 0), "facts": s.graph.get("fact_count", 0),
                      "edges": s.graph.get("graph_edge_count", 0),
                      "extraction_backlog": s.graph.get("extraction_backlog", 0),
                      "extraction_failed": s.graph.get("extraction_failed", 0),
                      "summary_backlog": summary_backlog.get(s.namespace, 0)}
            for key, value in values.items():
                families[key].add_metric([s.namespace], float(value))
        yield from families.values()
        yield GaugeMetricFamily("memserve_summary_failed", "Summary jobs (namespace or session) that gave up.",
                                value=float(engine.hema.failed_count()))
        yield GaugeMetricFamily("memserve_db_bytes", "DuckDB file size.", value=float(stats.db_bytes))
        yield GaugeMetricFamily("memserve_disk_bytes", "Bytes under data_dir.", value=float(stats.disk_bytes))
        yield GaugeMetricFamily("memserve_dropped_triples", "Extracted triples dropped as malformed.",
                                value=float(stats.dropped_triples))
        usage = stats.llm_usage or {}
        for key, name, doc in (("calls", "memserve_llm_calls", "LLM completions (cached ones included)."),
                               ("cached_calls", "memserve_llm_cached_calls", "LLM completions served from cache."),
                               ("failed_calls", "memserve_llm_failed_calls", "LLM completions that failed."),
                               ("response_format_fallbacks", "memserve_llm_response_format_fallbacks",
                                "Times the provider rejected a response format and was asked again without it."),
                               ("cost_usd", "memserve_llm_cost_usd", "LLM cost in US dollars (litellm prices).")):
            yield CounterMetricFamily(name, doc, value=float(usage.get(key, 0)))
        tokens = CounterMetricFamily("memserve_llm_tokens", "LLM tokens, by kind.", labels=["kind"])
        tokens.add_metric(["prompt"], float(usage.get("prompt_tokens", 0)))
        tokens.add_metric(["completion"], float(usage.get("completion_tokens", 0)))
        yield tokens
        sources = CounterMetricFamily("memserve_graph_vectors", "Graph phrase, fact and predicate strings given a "
                                      "vector, by source: span (pooled from the episode's own encode), cache "
                                      "(the shared vector cache) or encoded.", labels=["source"])
        for source, count in engine.graph.vector_sources().items():
            sources.add_metric([source], float(count))
        yield sources
        stash = engine.graph.token_stash
        yield GaugeMetricFamily("memserve_graph_token_stash_bytes", "Token vectors of written episodes waiting for "
                                "the graph worker (graph_vectors=spans).", value=float(stash.nbytes if stash else 0))
        output = CounterMetricFamily("memserve_llm_output_repairs", "Model answers repaired or parts of them "
                                     "dropped while parsing, by kind.", labels=["kind"])
        for kind, count in sorted((stats.llm_output or {}).items()):
            output.add_metric([kind], float(count))
        yield output


class MetricsServer:
    """The /metrics HTTP endpoint on its own daemon thread; ``port`` is the bound port. Bound before the engine
    loads (a taken port fails at once); ``attach`` adds the engine's series once it is up."""

    def __init__(self, metrics: Metrics, httpd: Any, thread: threading.Thread) -> None:
        self._metrics = metrics
        self._httpd, self._thread = httpd, thread
        self.port = int(httpd.server_port)

    @classmethod
    def bind(cls, metrics: Metrics, host: str, port: int) -> MetricsServer:
        try:
            httpd, thread = start_http_server(port, addr=host, registry=metrics.registry)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port} (is the port in use?): {exc.strerror or exc}",
                              field="metrics_port") from exc
        server = cls(metrics, httpd, thread)
        log.info("metrics on http://%s:%d/metrics", host, server.port)
        return server

    def attach(self, engine: Any) -> None:
        self._metrics.registry.register(EngineCollector(engine))

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the access fields of an RPC line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        rpc = getattr(record, "rpc", None)
        if isinstance(rpc, dict):
            out.update(rpc)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, fmt: str) -> None:
    """Root logging for ``memserve serve``: ``fmt`` is "text" or "json" (times in UTC either way)."""
    handler = logging.StreamHandler()
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())

