/**
 * Plain, read-only types for everything the API takes and returns: no protobuf message leaks out of the SDK.
 *
 * Timestamps are `Date` objects (UTC instants); a time the server does not know is `null`, never 1970.
 * Inputs may give times as `Date` or ISO 8601 strings; a string without an offset is taken as UTC (not local
 * time), the same rule as the Python SDK's naive datetimes.
 */

/**
 * "dense": by meaning; "graph": through the knowledge graph; "lexical": by words (BM25 over each turn and the
 * turn before it); "hybrid": dense + BM25 fused, plus the speaker and time lifts, and the graph when weighted.
 */
export type QueryMode = "dense" | "graph" | "hybrid" | "lexical";
export type GraphFormat = "graphml" | "node-link";

export interface Triple {
  readonly subject: string;
  readonly predicate: string;
  readonly object: string;
}

/** A precomputed OpenIE result (e.g. from HippoRAG); the server then skips its own extractor. */
export interface Extraction {
  readonly entities?: readonly string[];
  /** Triples as objects or `[subject, predicate, object]` tuples. */
  readonly triples?: readonly (Triple | readonly [string, string, string])[];
}

/** One episode to write. Without `id` the server derives one from the content, so re-sends are no-ops. */
export interface EpisodeInput {
  readonly text: string;
  readonly id?: string;
  readonly sessionId?: string;
  /** Who said or produced it: "user", "assistant", a tool name, a person. */
  readonly speaker?: string;
  readonly eventTime?: Date | string | null;
  readonly metadata?: Readonly<Record<string, string>>;
  /** 0..1; unset: the server default (0.5). */
  readonly importance?: number | null;
  /** Pinned episodes are never pruned. */
  readonly pinned?: boolean;
  readonly extraction?: Extraction | null;
}

/** What `write()` accepts for one episode: an {@link EpisodeInput} or just its text. */
export type EpisodeLike = EpisodeInput | string;

export interface Episode {
  readonly id: string;
  readonly namespace: string;
  readonly sessionId: string;
  readonly speaker: string;
  readonly text: string;
  readonly eventTime: Date | null;
  readonly metadata: Readonly<Record<string, string>>;
  readonly importance: number;
  readonly pinned: boolean;
  readonly createTime: Date | null;
}

/** One id per input episode, in input order; `created[i]` is false when episode i already existed. */
export interface WriteResult {
  readonly ids: readonly string[];
  readonly created: readonly boolean[];
  readonly createdCount: number;
}

export interface DeleteResult {
  readonly deletedCount: number;
  /** Deleting an id that does not exist is not an error, so retries are safe. */
  readonly notFoundIds: readonly string[];
}

export interface Fact {
  readonly subject: string;
  readonly predicate: string;
  readonly object: string;
  readonly score: number;
}

export interface Hit {
  readonly episode: Episode;
  readonly score: number;
  /** 1-based. */
  readonly rank: number;
  /** Why the hit was returned (graph and hybrid modes). */
  readonly facts: readonly Fact[];
  readonly phrases: readonly string[];
  readonly denseScore: number;
  readonly graphScore: number;
  /** BM25 score of the lexical channel (hybrid and lexical modes; 0 when it did not match or did not run). */
  readonly lexicalScore: number;
}

export interface QueryResult {
  readonly hits: readonly Hit[];
  /** Per-stage timings in milliseconds (embed, dense, facts, ppr, fuse, filter, fetch, context, total). */
  readonly timingsMs: Readonly<Record<string, number>>;
  /** The mode that actually ran (graph falls back to dense without seeds); "" if the server did not say. */
  readonly mode: QueryMode | "";
  /** Ready to paste into a prompt, under the token budget. */
  readonly context: string;
  readonly contextTokens: number;
}

/** Restricts a query. `eventTimeStart` is inclusive, `eventTimeEnd` exclusive; unset is unbounded. */
export interface QueryFilter {
  /** Any of these sessions (empty: all sessions). */
  readonly sessionIds?: readonly string[];
  readonly eventTimeStart?: Date | string | null;
  readonly eventTimeEnd?: Date | string | null;
  /** Every key must be present with exactly this value. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Per-query overrides of the server's graph retrieval settings; unset keeps the server's value. */
export interface GraphOptions {
  readonly damping?: number;
  readonly factTopK?: number;
  readonly passageWeight?: number;
  readonly synonymThreshold?: number;
}

export interface Page<T> {
  readonly items: readonly T[];
  /** Empty on the last page. */
  readonly nextPageToken: string;
}

export type EpisodePage = Page<Episode>;

export interface NamespaceInfo {
  readonly name: string;
  readonly episodeCount: number;
  readonly createTime: Date | null;
}

export type NamespacePage = Page<NamespaceInfo>;

export interface NamespaceStats {
  readonly namespace: string;
  readonly episodeCount: number;
  readonly vectorCount: number;
  readonly indexType: string;
  readonly indexBytes: number;
  readonly phraseCount: number;
  readonly factCount: number;
  readonly graphEdgeCount: number;
  readonly extractionBacklog: number;
  readonly sessionCount: number;
  readonly createTime: Date | null;
  readonly extractionFailed: number;
  /** Episodes in the lexical (BM25) index; equals `episodeCount` (rebuilt from the database at start-up). */
  readonly lexicalCount: number;
}

export interface LlmUsage {
  readonly calls: number;
  readonly cachedCalls: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly costUsd: number;
  readonly failedCalls: number;
}

export interface Stats {
  readonly namespaces: readonly NamespaceStats[];
  readonly episodeCount: number;
  readonly dbBytes: number;
  readonly diskBytes: number;
  readonly llm: LlmUsage;
  readonly embeddingModel: string;
  readonly embeddingDim: number;
  readonly extractor: string;
  readonly gpu: boolean;
  readonly droppedTriples: number;
}

export interface SegmentSummary {
  readonly index: number;
  /** Inclusive range of episode sequence numbers the segment covers. */
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly text: string;
  readonly updateTime: Date | null;
}

/** The rolling compact memory (HEMA) of a namespace or session. */
export interface Summary {
  readonly summary: string;
  readonly updateTime: Date | null;
  readonly episodeCount: number;
  readonly segments: readonly SegmentSummary[];
  /** The summary of the segment summaries (second level). */
  readonly segmentsSummary: string;
  /** Episodes written but not yet folded into the summary. */
  readonly backlog: number;
}

export interface PrunedEpisode {
  readonly id: string;
  readonly score: number;
  /** "over_max_episodes", "over_max_bytes" or "below_min_score". */
  readonly reason: string;
  readonly text: string;
}

export interface PruneResult {
  readonly pruned: readonly PrunedEpisode[];
  readonly remainingCount: number;
  readonly dryRun: boolean;
}

export interface GraphExport {
  readonly data: Uint8Array;
  readonly nodeCount: number;
  readonly edgeCount: number;
}

/** grpc.health.v1 status names. */
export type HealthStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";
