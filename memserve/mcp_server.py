"""`memserve mcp`: a Model Context Protocol server in front of a running memserve.

It speaks MCP (stdio for desktop agents, streamable HTTP for remote ones) and talks to memserve over gRPC through
the Python SDK, so it runs anywhere the SDK does and holds no data itself. Tools: ``remember``, ``recall``,
``forget``, ``summary``, ``stats``; resources: ``memserve://summary`` (the default namespace's compact memory)
and ``memserve://summary/{namespace}``. Every tool takes an optional ``namespace``; empty means the default one
given on the command line.

Built on the official ``mcp`` SDK (2.x, ``MCPServer``), an optional extra: ``pip install 'memserve[mcp]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal, TypeVar

from memserve_client import EpisodeInput, MemoryClient, MemserveError, QueryFilter
from pydantic import BaseModel, Field

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError
except ImportError as exc:  # pragma: no cover - exercised by the CLI's message
    raise ImportError("memserve mcp needs the MCP SDK: pip install 'memserve[mcp]'") from exc

T = TypeVar("T")
Namespace = Annotated[str, Field(description="Memory namespace (tenant); empty: the default one.")]

INSTRUCTIONS = (
    "Long-term memory. Call `recall` before answering anything that may depend on earlier conversations or "
    "documents, and use its `context` in your answer. Call `remember` to store facts, decisions and user "
    "preferences worth keeping (one episode per self-contained statement). `forget` deletes by id."
)


class Episode(BaseModel):
    """One memory to store."""

    text: str = Field(description="The memory itself: a self-contained statement, turn or note.")
    id: str = Field("", description="Stable id; empty lets the server derive one from the content (re-sends "
                                    "are then no-ops).")
    session_id: str = Field("", description="Conversation or task the memory belongs to.")
    speaker: str = Field("", description="Who said it (user, assistant, a tool name).")
    time: datetime | None = Field(None, description="When it happened (ISO 8601); default: now.")
    metadata: dict[str, str] = Field(default_factory=dict, description="String key/values, usable as filters.")


class Remembered(BaseModel):
    ids: list[str] = Field(description="One id per episode, in order.")
    created: list[bool] = Field(description="False where the episode was already stored.")


class Fact(BaseModel):
    subject: str
    predicate: str
    object: str


class RecalledHit(BaseModel):
    id: str
    text: str
    session_id: str
    rank: int = Field(description="1-based.")
    score: float = Field(description="Ranking score (hybrid: fused 1/rank; dense: cosine; graph: PPR mass).")
    dense_score: float = Field(description="Cosine similarity to the query (every mode).")
    graph_score: float = Field(description="Personalized PageRank mass (0 in dense mode).")
    facts: list[Fact] = Field(description="Knowledge-graph facts that led to this hit.")


class Recalled(BaseModel):
    hits: list[RecalledHit]
    context: str = Field(description="Ready to paste into a prompt: summary, top hits and facts, under budget.")
    context_tokens: int
    mode: str = Field(description="The retrieval mode that ran.")


class Forgotten(BaseModel):
    deleted_count: int
    not_found_ids: list[str]


class MemorySummary(BaseModel):
    namespace: str
    session_id: str
    summary: str = Field(description="The rolling compact memory.")
    segments_summary: str = Field(description="Summary of the segment summaries.")
    episode_count: int
    backlog: int = Field(description="Episodes not yet folded into the summary.")


class NamespaceCounts(BaseModel):
    namespace: str
    episode_count: int
    session_count: int
    phrase_count: int
    fact_count: int
    extraction_backlog: int


class MemoryStats(BaseModel):
    episode_count: int
    namespaces: list[NamespaceCounts]
    embedding_model: str
    extractor: str
    llm_calls: int
    llm_cost_usd: float


def build_server(client: MemoryClient, namespace: str) -> MCPServer:
    """The MCP server over ``client``; ``namespace`` is used by every call that names none."""

    def ns(value: str) -> str:
        return value or namespace

    def call(fn: Callable[[], T]) -> T:
        try:
            return fn()
        except MemserveError as exc:  # the model reads the message and can correct itself
            raise ToolError(str(exc)) from exc

    mcp = MCPServer("memserve", instructions=INSTRUCTIONS)

    @mcp.tool(description="Store one or more memories (episodes) for later recall. Idempotent per id.")
    def remember(episodes: list[Episode], namespace: Namespace = "", wait_for_graph: bool = False) -> Remembered:
        """``wait_for_graph``: return only once the memories are in the knowledge graph too."""
        inputs = [EpisodeInput(e.text, id=e.id, session_id=e.session_id, speaker=e.speaker, event_time=e.time,
                               metadata=e.metadata) for e in episodes]
        result = call(lambda: client.write(ns(namespace), inputs, wait_for_graph=wait_for_graph))
        return Remembered(ids=list(result.ids), created=list(result.created))

    @mcp.tool(description="Search memory for what is relevant to a question. Returns ranked hits with their "
                          "ids (for `forget`) and a token-budgeted `context` to use in your answer.")
    def recall(query: Annotated[str, Field(description="The question or topic to look up.")],
               top_k: Annotated[int, Field(ge=1, le=100, description="Hits to return.")] = 5,
               namespace: Namespace = "",
               mode: Annotated[Literal["dense", "graph", "hybrid"] | None,
                               Field(description="Retrieval mode; default: the server's (hybrid).")] = None,
               session_ids: Annotated[list[str] | None, Field(description="Only these sessions.")] = None,
               token_budget: Annotated[int, Field(ge=0, description="Context token budget; 0: the server "
                                                                      "default.")] = 0) -> Recalled:
        flt = QueryFilter(session_ids=tuple(session_ids)) if session_ids else None
        result = call(lambda: client.query(ns(namespace), query, top_k=top_k, mode=mode, filter=flt,
                                           token_budget=token_budget))
        hits = [RecalledHit(id=h.episode.id, text=h.episode.text, session_id=h.episode.session_id, rank=h.rank,
                            score=h.score, dense_score=h.dense_score, graph_score=h.graph_score,
                            facts=[Fact(subject=f.subject, predicate=f.predicate, object=f.object) for f in h.facts])
                for h in result.hits]
        return Recalled(hits=hits, context=result.context, context_tokens=result.context_tokens, mode=result.mode)

    @mcp.tool(description="Delete memories by id (ids come from `recall` or `remember`). Unknown ids are "
                          "reported, not an error.")
    def forget(ids: Annotated[list[str], Field(description="Episode ids to delete.")], namespace: Namespace = "") -> Forgotten:
        result = call(lambda: client.delete(ns(namespace), ids))
        return Forgotten(deleted_count=result.deleted_count, not_found_ids=list(result.not_found_ids))

    def _summary(namespace_: str, session_id: str) -> MemorySummary:
        s = client.summary(namespace_, session_id=session_id)
        return MemorySummary(namespace=namespace_, session_id=session_id, summary=s.summary,
                             segments_summary=s.segments_summary, episode_count=s.episode_count, backlog=s.backlog)

    @mcp.tool(description="The rolling compact summary of a namespace's memory, or of one session in it.")
    def summary(namespace: Namespace = "", session_id: str = "") -> MemorySummary:
        return call(lambda: _summary(ns(namespace), session_id))

    @mcp.tool(description="Memory statistics: episode counts per namespace, graph size, extraction backlog, "
                          "LLM usage. Empty namespace: every namespace.")
    def stats(namespace: Namespace = "") -> MemoryStats:
        s = call(lambda: client.stats(namespace))
        return MemoryStats(
            episode_count=s.episode_count, embedding_model=s.embedding_model, extractor=s.extractor,
            llm_calls=s.llm.calls, llm_cost_usd=s.llm.cost_usd,
            namespaces=[NamespaceCounts(namespace=n.namespace, episode_count=n.episode_count,
                                        session_count=n.session_count, phrase_count=n.phrase_count,
                                        fact_count=n.fact_count, extraction_backlog=n.extraction_backlog)
                        for n in s.namespaces])

    def summary_text(namespace_: str) -> str:
        try:
            s = _summary(namespace_, "")
        except MemserveError as exc:
            raise ResourceError(str(exc)) from exc
        return s.summary or "(no memories yet)"

    @mcp.resource("memserve://summary", name="summary", mime_type="text/plain",
                  description=f"Compact memory of the default namespace ({namespace}).")
    def default_summary() -> str:
        return summary_text(namespace)

    @mcp.resource("memserve://summary/{name}", name="namespace-summary", mime_type="text/plain",
                  description="Compact memory of a namespace.")
    def namespace_summary(name: str) -> str:
        return summary_text(name)

    return mcp


def run(client: MemoryClient, namespace: str, *, transport: str = "stdio", host: str = "127.0.0.1",
        port: int = 8765) -> None:
    """Serve until the MCP client goes away (stdio) or the process is stopped (streamable HTTP); closes
    ``client`` (built by the CLI with its --server, --api-key and --tls options) at the end."""
    with client:
        server = build_server(client, namespace)
        if transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=host, port=port)

