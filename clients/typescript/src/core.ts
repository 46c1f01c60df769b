/**
 * Call policy, free of I/O: which RPCs exist and how long each may take, whether re-sending it is safe, the
 * retry backoff, one deadline over every attempt, and the request metadata. The same rules as the Python SDK's
 * `_core.py`; client.ts only drives calls with them.
 */

import { Metadata } from "@grpc/grpc-js";

import { DeadlineExceededError, fromServiceError, statusName, type MemserveError, type StatusName } from "./errors.js";
import { MemoryServiceService } from "./gen/memserve/v1/memory.js";

export const DEFAULT_TARGET = "127.0.0.1:50051";
export const DEFAULT_MAX_BATCH = 256;
export const DEFAULT_MAX_RETRIES = 3; // 4 attempts in all
// GraphML exports of large namespaces pass gRPC's 4 MiB default easily.
export const DEFAULT_MAX_RECEIVE_BYTES = 256 * 1024 * 1024;

export const AUTHORIZATION_KEY = "authorization";
/** Sent on every call whose request names a namespace, so an L7 proxy can route by tenant. */
export const NAMESPACE_KEY = "memserve-namespace";

// --- per-method policy ---------------------------------------------------------------------------------------

type Service = typeof MemoryServiceService;
type Key = keyof Service;
export type RequestOf<K extends Key> = Parameters<Service[K]["requestSerialize"]>[0];
export type ResponseOf<K extends Key> = ReturnType<Service[K]["responseDeserialize"]>;

/** One RPC and its policy: how long it may take by default, and whether re-sending it is safe. */
export interface Rpc<Req, Res> {
  /** The proto name, e.g. "WriteEpisodes". */
  readonly name: string;
  readonly path: string;
  readonly defaultTimeoutMs: number;
  readonly idempotent: boolean;
  readonly serialize: (request: Req) => Buffer;
  readonly deserialize: (bytes: Buffer) => Res;
}

function rpc<K extends Key>(key: K, defaultTimeoutMs: number, policy: { idempotent: boolean }): Rpc<RequestOf<K>, ResponseOf<K>> {
  const definition = MemoryServiceService[key];
  return {
    name: definition.path.slice(definition.path.lastIndexOf("/") + 1),
    path: definition.path,
    defaultTimeoutMs,
    idempotent: policy.idempotent,
    serialize: definition.requestSerialize as (request: RequestOf<K>) => Buffer,
    deserialize: definition.responseDeserialize as (bytes: Buffer) => ResponseOf<K>,
  };
}

/**
 * Every MemoryService RPC, keyed by its proto name. The type below makes `tsc` fail when the generated service
 * gains a method this table lacks; tests/unit/test_sdk_parity.py reads this table too.
 */
export const RPCS = {
  // Idempotent: ids are client-supplied or content hashes, so a re-sent episode is a no-op.
  WriteEpisodes: rpc("writeEpisodes", 120_000, { idempotent: true }),
  Query: rpc("query", 30_000, { idempotent: true }),
  GetEpisode: rpc("getEpisode", 30_000, { idempotent: true }),
  ListEpisodes: rpc("listEpisodes", 30_000, { idempotent: true }),
  // Deleting what is already gone reports it in notFoundIds instead of failing.
  DeleteEpisodes: rpc("deleteEpisodes", 30_000, { idempotent: true }),
  GetStats: rpc("getStats", 30_000, { idempotent: true }),
  ListNamespaces: rpc("listNamespaces", 30_000, { idempotent: true }),
  // A retry after a lost response would fail with NOT_FOUND and hide the success.
  DeleteNamespace: rpc("deleteNamespace", 60_000, { idempotent: false }),
  ExportGraph: rpc("exportGraph", 120_000, { idempotent: true }),
  GetSummary: rpc("getSummary", 30_000, { idempotent: true }),
  // Each prune removes more; only a dry run (see MemoryClient.prune) is safe to repeat.
  Prune: rpc("prune", 120_000, { idempotent: false }),
} as const satisfies { readonly [K in Key as Capitalize<K>]: Rpc<RequestOf<K>, ResponseOf<K>> };

export type RpcName = keyof typeof RPCS;

/** The proto names of every RPC this SDK calls (for parity checks and tooling). */
export const RPC_NAMES: readonly RpcName[] = Object.keys(RPCS) as RpcName[];

/** One logical call (the driver may make several attempts). */
export interface Call<Req, Res> {
  readonly rpc: Rpc<Req, Res>;
  readonly request: Req;
  /** Per-call override of the deadline. */
  readonly timeoutMs?: number | undefined;
  /** Per-request override of the method's idempotency (a dry-run Prune is safe to repeat). */
  readonly idempotent?: boolean | undefined;
}

// --- deadlines and retries -----------------------------------------------------------------------------------

/** Exponential backoff with full jitter, only for UNAVAILABLE on idempotent calls. */
export class RetryPolicy {
  constructor(
    readonly maxAttempts: number = DEFAULT_MAX_RETRIES + 1,
    readonly initialBackoffMs = 100,
    readonly maxBackoffMs = 5_000,
    readonly multiplier = 2,
    readonly retryableCodes: ReadonlySet<StatusName> = new Set<StatusName>(["UNAVAILABLE"]),
  ) {}

  /** Milliseconds to wait after failed attempt number `attempt` (1-based). */
  backoffMs(attempt: number, rand: () => number = Math.random): number {
    const ceiling = Math.min(this.maxBackoffMs, this.initialBackoffMs * this.multiplier ** (attempt - 1));
    // Full jitter spreads the retries of many clients that failed together.
    return ceiling * rand();
  }
}

/** What a client was constructed with; frozen, so a client can be shared by concurrent calls. */
export interface ClientSettings {
  readonly timeoutMs: number | undefined;
  readonly retry: RetryPolicy;
  readonly apiKey: string | undefined;
  readonly maxBatch: number;
}

export function makeSettings(options: {
  timeoutMs?: number | undefined;
  maxRetries?: number | undefined;
  apiKey?: string | undefined;
  maxBatch?: number | undefined;
}): ClientSettings {
  const { timeoutMs, maxRetries = DEFAULT_MAX_RETRIES, apiKey, maxBatch = DEFAULT_MAX_BATCH } = options;
  if (timeoutMs !== undefined && !(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${timeoutMs}`);
  if (!Number.isInteger(maxRetries) || maxRetries < 0) {
    throw new RangeError(`maxRetries must be an integer >= 0, got ${maxRetries}`);
  }
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be an integer >= 1, got ${maxBatch}`);
  return Object.freeze({ timeoutMs, retry: new RetryPolicy(maxRetries + 1), apiKey: apiKey || undefined, maxBatch });
}

// A header value must be printable ASCII; a namespace that is not (and so is invalid anyway) is left out of
// the metadata, so the server can reject the request naming the field instead of the call failing locally.
const HEADER_VALUE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/** The namespace a request names, when it names one that can travel as a header value. */
export function requestNamespace(request: unknown): string | undefined {
  const namespace = (request as { namespace?: unknown } | null)?.namespace;
  return typeof namespace === "string" && HEADER_VALUE.test(namespace) ? namespace : undefined;
}

export function callMetadata(settings: ClientSettings, request: unknown): Metadata {
  const metadata = new Metadata();
  if (settings.apiKey) metadata.set(AUTHORIZATION_KEY, `Bearer ${settings.apiKey}`);
  const namespace = requestNamespace(request);
  if (namespace !== undefined) metadata.set(NAMESPACE_KEY, namespace);
  return metadata;
}

/**
 * Deadline and retry bookkeeping for one logical call. One deadline covers every attempt and backoff, so
 * retries never stretch a call past what the caller allowed.
 */
export class Attempts {
  readonly timeoutMs: number;
  attempt = 0;
  private readonly deadline: number;

  constructor(
    private readonly call: Call<unknown, unknown>,
    private readonly settings: ClientSettings,
    private readonly clock: () => number = performance.now.bind(performance),
    private readonly rand: () => number = Math.random,
  ) {
    this.timeoutMs = call.timeoutMs ?? settings.timeoutMs ?? call.rpc.defaultTimeoutMs;
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${this.timeoutMs}`);
    this.deadline = clock() + this.timeoutMs;
  }

  private get retryable(): boolean {
    return this.call.idempotent ?? this.call.rpc.idempotent;
  }

  /** Start an attempt: the milliseconds it may take. */
  nextTimeoutMs(): number {
    const remaining = this.deadline - this.clock();
    if (remaining <= 0) {
      throw new DeadlineExceededError(
        `${this.call.rpc.path}: deadline of ${this.timeoutMs} ms passed after ${this.attempt} attempt(s)`,
        { code: "DEADLINE_EXCEEDED" },
      );
    }
    this.attempt += 1;
    return remaining;
  }

  /** Milliseconds to wait before retrying after `error`; throws the mapped error when it is final. */
  backoffMs(error: Parameters<typeof fromServiceError>[0]): number {
    const mapped: MemserveError = fromServiceError(error);
    if (!this.retryable || !this.settings.retry.retryableCodes.has(statusName(error.code))
        || this.attempt >= this.settings.retry.maxAttempts) {
      throw mapped;
    }
    const delay = this.settings.retry.backoffMs(this.attempt, this.rand);
    if (this.clock() + delay >= this.deadline) throw mapped; // a retry could not finish in time anyway
    return delay;
  }
}
