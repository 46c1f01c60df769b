/**
 * Friendly inputs → request messages, response messages → the plain types of ./types.ts. Pure functions, no
 * I/O; the only module that touches the generated message fields.
 *
 * Range checks (top_k ≤ 1000, a valid namespace, ...) are the server's: it answers INVALID_ARGUMENT naming the
 * field, and one rule in one place beats two that drift. Only what cannot even be encoded (a fractional
 * `topK`, an unknown mode) is refused here, before any call.
 */

import * as pb from "./gen/memserve/v1/memory.js";
import type {
  DeleteResult,
  Episode,
  EpisodeInput,
  EpisodeLike,
  EpisodePage,
  Extraction,
  GraphExport,
  GraphFormat,
  GraphOptions,
  Hit,
  NamespacePage,
  NamespaceStats,
  PruneResult,
  QueryFilter,
  QueryMode,
  QueryResult,
  Stats,
  Summary,
  WriteResult,
} from "./types.js";

const MODES: Record<QueryMode, pb.QueryMode> = {
  dense: pb.QueryMode.QUERY_MODE_DENSE,
  graph: pb.QueryMode.QUERY_MODE_GRAPH,
  hybrid: pb.QueryMode.QUERY_MODE_HYBRID,
  lexical: pb.QueryMode.QUERY_MODE_LEXICAL,
};
const MODE_NAMES = new Map<pb.QueryMode, QueryMode>(
  Object.entries(MODES).map(([name, value]) => [value, name as QueryMode]),
);
const FORMATS: Record<GraphFormat, pb.GraphFormat> = {
  graphml: pb.GraphFormat.GRAPH_FORMAT_GRAPHML,
  "node-link": pb.GraphFormat.GRAPH_FORMAT_NODE_LINK_JSON,
};
const EPISODE_KEYS = new Set([
  "text", "id", "sessionId", "speaker", "eventTime", "metadata", "importance", "pinned", "extraction",
]);

// --- scalars -------------------------------------------------------------------------------------------------

// YYYY-MM-DD, optionally with a time and an offset ("Z", "+02:00", "+0200"); a space may stand for the "T".
const ISO_8601 = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?)?$/i;

/** A Date, or an ISO 8601 string; without an offset it means UTC, never the machine's local time. */
export function toDate(value: Date | string | null | undefined, where: string): Date | undefined {
  if (value === null || value === undefined) return undefined;
  if (!(value instanceof Date) && typeof value !== "string") {
    throw new TypeError(`${where}: expected a Date or an ISO 8601 string, got ${typeof value}`);
  }
  let date = value as Date;
  if (typeof value === "string") {
    const match = ISO_8601.exec(value.trim());
    if (!match) throw new RangeError(`${where}: not an ISO 8601 time: ${JSON.stringify(value)}`);
    const [, day, time, offset] = match;
    const zone = offset === undefined ? "Z" : offset.replace(/^([+-]\d{2})(\d{2})$/, "$1:$2");
    date = new Date(time === undefined ? `${day}T00:00:00Z` : `${day}T${time}${zone}`);
  }
  if (Number.isNaN(date.getTime())) throw new RangeError(`${where}: invalid time ${JSON.stringify(value)}`);
  return date;
}

function nullable(value: Date | undefined): Date | null {
  // An unset Timestamp would otherwise read as 1970-01-01; null says "not known" honestly.
  return value ?? null;
}

/** Integers only: a fractional value cannot be encoded as int32/int64 and would fail inside grpc-js. */
export function integer(value: number, where: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new TypeError(`${where}: expected an integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function string(value: unknown, where: string): string {
  if (typeof value !== "string") throw new TypeError(`${where}: expected a string, got ${typeof value}`);
  return value;
}

function stringMap(value: Readonly<Record<string, string>> | undefined, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(value ?? {})) out[key] = string(item, `${where}[${JSON.stringify(key)}]`);
  return out;
}

export function parseMode(mode: QueryMode | null | undefined): pb.QueryMode {
  if (mode === null || mode === undefined) return pb.QueryMode.QUERY_MODE_UNSPECIFIED;
  const value = Object.hasOwn(MODES, mode) ? MODES[mode] : undefined;
  if (value === undefined) {
    throw new RangeError(`mode must be one of ${Object.keys(MODES).join(", ")} or undefined, got ${JSON.stringify(mode)}`);
  }
  return value;
}

export function parseFormat(format: GraphFormat): pb.GraphFormat {
  const value = Object.hasOwn(FORMATS, format) ? FORMATS[format] : undefined;
  if (value === undefined) {
    throw new RangeError(`format must be one of ${Object.keys(FORMATS).join(", ")}, got ${JSON.stringify(format)}`);
  }
  return value;
}

// --- episode inputs ------------------------------------------------------------------------------------------

function extractionToProto(value: Extraction, where: string): pb.Extraction {
  return {
    entities: (value.entities ?? []).map((e, i) => string(e, `${where}.entities[${i}]`)),
    triples: (value.triples ?? []).map((t) => {
      const [subject, predicate, object] = Array.isArray(t) ? t : [
        (t as pb.Triple).subject, (t as pb.Triple).predicate, (t as pb.Triple).object];
      return { subject, predicate, object };
    }),
  };
}

/** Accept the friendly spellings of an episode (an object or just its text) and check its keys. */
export function episodeToProto(value: EpisodeLike, index: number): pb.EpisodeInput {
  const where = `episodes[${index}]`;
  const episode: EpisodeInput = typeof value === "string" ? { text: value } : value;
  if (episode === null || typeof episode !== "object" || Array.isArray(episode)) {
    throw new TypeError(`${where}: expected an EpisodeInput object or a string, got ${JSON.stringify(value)}`);
  }
  // A typo ("sesionId") would otherwise silently drop data.
  const unknown = Object.keys(episode).filter((key) => !EPISODE_KEYS.has(key));
  if (unknown.length) {
    throw new TypeError(`${where}: unknown keys ${unknown.join(", ")}; allowed: ${[...EPISODE_KEYS].join(", ")}`);
  }
  if (!("text" in episode)) throw new TypeError(`${where}: missing 'text'`);
  return pb.EpisodeInput.fromPartial({
    id: string(episode.id ?? "", `${where}.id`),
    sessionId: string(episode.sessionId ?? "", `${where}.sessionId`),
    speaker: string(episode.speaker ?? "", `${where}.speaker`),
    text: string(episode.text, `${where}.text`),
    eventTime: toDate(episode.eventTime, `${where}.eventTime`),
    metadata: stringMap(episode.metadata, `${where}.metadata`),
    importance: episode.importance ?? undefined,
    pinned: Boolean(episode.pinned),
    extraction: episode.extraction ? extractionToProto(episode.extraction, `${where}.extraction`) : undefined,
  });
}

/** A lone string or object is one episode, not a sequence of characters or keys. */
export function coerceEpisodes(episodes: EpisodeLike | Iterable<EpisodeLike>): pb.EpisodeInput[] {
  const list = typeof episodes === "string" || !(Symbol.iterator in Object(episodes))
    ? [episodes as EpisodeLike]
    : [...(episodes as Iterable<EpisodeLike>)];
  return list.map(episodeToProto);
}

// --- requests ------------------------------------------------------------------------------------------------

function filterToProto(filter: QueryFilter): pb.QueryFilter {
  if (typeof filter.sessionIds === "string") {
    throw new TypeError("QueryFilter.sessionIds must be an array of session ids, not a string");
  }
  const start = toDate(filter.eventTimeStart, "filter.eventTimeStart");
  const end = toDate(filter.eventTimeEnd, "filter.eventTimeEnd");
  return pb.QueryFilter.fromPartial({
    sessionIds: (filter.sessionIds ?? []).map((s, i) => string(s, `filter.sessionIds[${i}]`)),
    eventTime: start || end ? { start, end } : undefined,
    metadata: stringMap(filter.metadata, "filter.metadata"),
  });
}

function graphOptionsToProto(options: GraphOptions): pb.GraphOptions {
  // Only what was given: unset optional fields mean "use the server's setting".
  return pb.GraphOptions.fromPartial({
    damping: options.damping,
    factTopK: options.factTopK === undefined ? undefined : integer(options.factTopK, "graph.factTopK"),
    passageWeight: options.passageWeight,
    synonymThreshold: options.synonymThreshold,
  });
}

export interface QueryArgs {
  topK: number;
  mode: QueryMode | null | undefined;
  filter: QueryFilter | null | undefined;
  tokenBudget: number;
  graph: GraphOptions | null | undefined;
  summarySessionId: string;
  speaker: string;
  now: Date | string | null | undefined;
}

export function queryRequest(namespace: string, text: string, args: QueryArgs): pb.QueryRequest {
  return pb.QueryRequest.fromPartial({
    namespace,
    text: string(text, "text"),
    topK: integer(args.topK, "topK"),
    mode: parseMode(args.mode),
    filter: args.filter ? filterToProto(args.filter) : undefined,
    tokenBudget: integer(args.tokenBudget, "tokenBudget"),
    graph: args.graph ? graphOptionsToProto(args.graph) : undefined,
    summarySessionId: args.summarySessionId,
    speaker: string(args.speaker, "speaker"),
    now: toDate(args.now, "now"),
  });
}

// --- responses -----------------------------------------------------------------------------------------------

export function writeResult(responses: readonly pb.WriteEpisodesResponse[]): WriteResult {
  // A large write is sent as several chunks; their answers concatenate in input order.
  const ids = responses.flatMap((r) => r.ids);
  const created = responses.flatMap((r) => r.created);
  return { ids, created, createdCount: created.filter(Boolean).length };
}

export function episode(message: pb.Episode | undefined): Episode {
  const m = message ?? pb.Episode.create();
  return {
    id: m.id,
    namespace: m.namespace,
    sessionId: m.sessionId,
    speaker: m.speaker,
    text: m.text,
    eventTime: nullable(m.eventTime),
    metadata: { ...m.metadata },
    importance: m.importance,
    pinned: m.pinned,
    createTime: nullable(m.createTime),
  };
}

function hit(m: pb.Hit): Hit {
  return {
    episode: episode(m.episode),
    score: m.score,
    rank: m.rank,
    facts: m.facts.map((f) => ({ subject: f.subject, predicate: f.predicate, object: f.object, score: f.score })),
    phrases: [...m.phrases],
    denseScore: m.denseScore,
    graphScore: m.graphScore,
    lexicalScore: m.lexicalScore,
  };
}

export function queryResult(m: pb.QueryResponse): QueryResult {
  return {
    hits: m.hits.map(hit),
    timingsMs: { ...m.timingsMs },
    mode: MODE_NAMES.get(m.mode) ?? "",
    context: m.context,
    contextTokens: m.contextTokens,
  };
}

export function episodePage(m: pb.ListEpisodesResponse): EpisodePage {
  return { items: m.episodes.map(episode), nextPageToken: m.nextPageToken };
}

export function deleteResult(m: pb.DeleteEpisodesResponse): DeleteResult {
  return { deletedCount: m.deletedCount, notFoundIds: [...m.notFoundIds] };
}

function namespaceStats(m: pb.NamespaceStats): NamespaceStats {
  return {
    namespace: m.namespace,
    episodeCount: m.episodeCount,
    vectorCount: m.vectorCount,
    indexType: m.indexType,
    indexBytes: m.indexBytes,
    phraseCount: m.phraseCount,
    factCount: m.factCount,
    graphEdgeCount: m.graphEdgeCount,
    extractionBacklog: m.extractionBacklog,
    sessionCount: m.sessionCount,
    createTime: nullable(m.createTime),
    extractionFailed: m.extractionFailed,
    lexicalCount: m.lexicalCount,
  };
}

export function stats(m: pb.GetStatsResponse): Stats {
  const llm = m.llm ?? pb.LlmUsage.create();
  return {
    namespaces: m.namespaces.map(namespaceStats),
    episodeCount: m.episodeCount,
    dbBytes: m.dbBytes,
    diskBytes: m.diskBytes,
    llm: {
      calls: llm.calls,
      cachedCalls: llm.cachedCalls,
      promptTokens: llm.promptTokens,
      completionTokens: llm.completionTokens,
      costUsd: llm.costUsd,
      failedCalls: llm.failedCalls,
    },
    embeddingModel: m.embeddingModel,
    embeddingDim: m.embeddingDim,
    extractor: m.extractor,
    gpu: m.gpu,
    droppedTriples: m.droppedTriples,
  };
}

export function namespacePage(m: pb.ListNamespacesResponse): NamespacePage {
  return {
    items: m.namespaces.map((n) => ({ name: n.name, episodeCount: n.episodeCount, createTime: nullable(n.createTime) })),
    nextPageToken: m.nextPageToken,
  };
}

export function graphExport(m: pb.ExportGraphResponse): GraphExport {
  return { data: m.data, nodeCount: m.nodeCount, edgeCount: m.edgeCount };
}

export function summary(m: pb.GetSummaryResponse): Summary {
  return {
    summary: m.summary,
    updateTime: nullable(m.updateTime),
    episodeCount: m.episodeCount,
    segments: m.segments.map((s) => ({
      index: s.index,
      firstSeq: s.firstSeq,
      lastSeq: s.lastSeq,
      text: s.text,
      updateTime: nullable(s.updateTime),
    })),
    segmentsSummary: m.segmentsSummary,
    backlog: m.backlog,
  };
}

export function pruneResult(m: pb.PruneResponse): PruneResult {
  return {
    pruned: m.pruned.map((p) => ({ id: p.id, score: p.score, reason: p.reason, text: p.text })),
    remainingCount: m.remainingCount,
    dryRun: m.dryRun,
  };
}
