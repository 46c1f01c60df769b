/**
 * The client. Every method builds its request (./convert.ts), then {@link MemoryClient.invoke} drives the call
 * with the policy of ./core.ts: one deadline over every attempt, retries only on UNAVAILABLE and only for
 * calls that are safe to repeat, errors mapped to the tree of ./errors.ts.
 */

import { setTimeout as sleep } from "node:timers/promises";

import { Client, credentials as grpcCredentials, type ChannelCredentials, type ChannelOptions } from "@grpc/grpc-js";

import * as conv from "./convert.js";
import {
  Attempts,
  callMetadata,
  DEFAULT_MAX_RECEIVE_BYTES,
  DEFAULT_TARGET,
  makeSettings,
  RPCS,
  type Call,
  type ClientSettings,
} from "./core.js";
import { isServiceError, UnavailableError } from "./errors.js";
import * as pb from "./gen/memserve/v1/memory.js";
import { HEALTH_CHECK } from "./health.js";
import type {
  DeleteResult,
  Episode,
  EpisodeLike,
  EpisodePage,
  GraphExport,
  GraphFormat,
  GraphOptions,
  HealthStatus,
  NamespacePage,
  PruneResult,
  QueryFilter,
  QueryMode,
  QueryResult,
  Stats,
  Summary,
  WriteResult,
} from "./types.js";
import { VERSION } from "./version.js";

type Pem = string | Buffer | Uint8Array;

export interface ClientOptions {
  /** Replaces every method's default deadline (30 s for reads, 120 s for writes, exports and prunes). */
  timeoutMs?: number;
  /** Retries of an idempotent call on UNAVAILABLE, with jittered exponential backoff, within its deadline. */
  maxRetries?: number;
  /** Sent as `authorization: Bearer <key>`. */
  apiKey?: string;
  /** Use TLS (system roots unless `rootCerts` is given). Implied by `rootCerts`, `clientCert`, `clientKey`. */
  tls?: boolean;
  /** PEM contents (not a path) of the CAs that sign the server's certificate. */
  rootCerts?: Pem;
  /** PEM contents of a client certificate and its key, for servers that require mutual TLS. */
  clientCert?: Pem;
  clientKey?: Pem;
  /** Full control over the channel's credentials; replaces the TLS options above. */
  credentials?: ChannelCredentials;
  /** Extra grpc-js channel options; they win over the SDK's own. */
  channelOptions?: ChannelOptions;
  /** Writes of more than this many episodes are split into several calls (each chunk is atomic). */
  maxBatch?: number;
}

export interface CallOptions {
  /** This call's deadline; wins over the client's `timeoutMs` and the method's default. */
  timeoutMs?: number;
}

export interface ExportGraphOptions extends CallOptions {
  /** Keep each fact's direction (subject → object) in a directed graph; passage nodes carry id and text. */
  directed?: boolean;
}

export interface WriteOptions extends CallOptions {
  /** Return only once extraction and the graph update for these episodes are done. */
  waitForGraph?: boolean;
}

export interface QueryOptions extends CallOptions {
  topK?: number;
  /** Undefined lets the server choose (hybrid when a graph exists, else dense). */
  mode?: QueryMode;
  filter?: QueryFilter;
  /** Token budget of the packed `context`; 0: the server default. */
  tokenBudget?: number;
  graph?: GraphOptions;
  /** Limit `context` to this session's compact summary (default: the namespace summary). */
  summarySessionId?: string;
  /**
   * Prefer this speaker's turns (hybrid mode; any case). Unset: a query naming exactly one known speaker of the
   * namespace prefers that speaker's turns.
   */
  speaker?: string;
  /**
   * The reference time of relative expressions in the text ("last week", "yesterday"); a `Date` or an ISO 8601
   * string (no offset: UTC). Unset: the server's clock.
   */
  now?: Date | string;
}

export interface ListOptions extends CallOptions {
  pageSize?: number;
  pageToken?: string;
  /** Only episodes of this session. */
  sessionId?: string;
}

export interface PruneOptions extends CallOptions {
  /** Nothing is removed; the result says what would go and why. Only dry runs are retried. */
  dryRun?: boolean;
  /** Overrides of the namespace limits for this call (0 / undefined: the server's settings). */
  maxEpisodes?: number;
  maxBytes?: number;
  minScore?: number;
}

function toBuffer(pem: Pem | undefined): Buffer | null {
  return pem === undefined ? null : Buffer.from(pem);
}

function channelCredentials(options: ClientOptions): ChannelCredentials {
  if (options.credentials) return options.credentials;
  const { tls, rootCerts, clientCert, clientKey } = options;
  if ((clientCert === undefined) !== (clientKey === undefined)) {
    throw new TypeError("clientCert and clientKey go together: give both or neither");
  }
  if (tls || rootCerts !== undefined || clientCert !== undefined) {
    return grpcCredentials.createSsl(toBuffer(rootCerts), toBuffer(clientKey), toBuffer(clientCert));
  }
  return grpcCredentials.createInsecure();
}

/** memserve client; one instance can serve many concurrent calls. Close it when done. */
export class MemoryClient {
  readonly target: string;
  private readonly settings: ClientSettings;
  private readonly channel: Client;

  constructor(target: string = DEFAULT_TARGET, options: ClientOptions = {}) {
    this.settings = makeSettings(options);
    this.target = target;
    this.channel = new Client(target, channelCredentials(options), {
      "grpc.primary_user_agent": `memserve-client-ts/${VERSION}`,
      "grpc.max_receive_message_length": DEFAULT_MAX_RECEIVE_BYTES,
      ...options.channelOptions, // the caller's options win
    });
  }

  // --- driving calls -------------------------------------------------------------------------------------------

  private unary<Req, Res>(call: Call<Req, Res>, timeoutMs: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.channel.makeUnaryRequest(
        call.rpc.path,
        call.rpc.serialize,
        call.rpc.deserialize,
        call.request,
        callMetadata(this.settings, call.request),
        { deadline: Date.now() + timeoutMs },
        (error, response) => (error ? reject(error) : resolve(response as Res)),
      );
    });
  }

  private async invoke<Req, Res>(call: Call<Req, Res>): Promise<Res> {
    const attempts = new Attempts(call as Call<unknown, unknown>, this.settings);
    for (;;) {
      const timeoutMs = attempts.nextTimeoutMs();
      try {
        return await this.unary(call, timeoutMs);
      } catch (error) {
        if (!isServiceError(error)) throw error;
        await sleep(attempts.backoffMs(error));
      }
    }
  }

  // --- API -----------------------------------------------------------------------------------------------------

  /**
   * Store episodes (objects or plain strings); returns one id per episode, in order. `timeoutMs` applies to
   * each chunk of `maxBatch` episodes; re-sending the whole write after a failure is safe (writes are
   * idempotent), but atomicity holds per chunk.
   */
  async write(namespace: string, episodes: EpisodeLike | Iterable<EpisodeLike>, options: WriteOptions = {}): Promise<WriteResult> {
    const inputs = conv.coerceEpisodes(episodes);
    const responses: pb.WriteEpisodesResponse[] = [];
    // Chunks keep each request under the server's message limit; no episodes, no call (as in the Python SDK).
    for (let start = 0; start < inputs.length; start += this.settings.maxBatch) {
      const request = pb.WriteEpisodesRequest.fromPartial({
        namespace,
        episodes: inputs.slice(start, start + this.settings.maxBatch),
        waitForGraph: Boolean(options.waitForGraph),
      });
      responses.push(await this.invoke({ rpc: RPCS.WriteEpisodes, request, timeoutMs: options.timeoutMs }));
    }
    return conv.writeResult(responses);
  }

  /**
   * Retrieve episodes by meaning ("dense"), through the knowledge graph ("graph"), by words ("lexical", BM25),
   * or fused ("hybrid": dense + BM25, the speaker and time lifts, and the graph when weighted). An unknown mode
   * or an unreadable `now` throws RangeError, a `speaker` or `now` of the wrong type TypeError, before any call.
   */
  async query(namespace: string, text: string, options: QueryOptions = {}): Promise<QueryResult> {
    const request = conv.queryRequest(namespace, text, {
      topK: options.topK ?? 10,
      mode: options.mode,
      filter: options.filter,
      tokenBudget: options.tokenBudget ?? 0,
      graph: options.graph,
      summarySessionId: options.summarySessionId ?? "",
      speaker: options.speaker ?? "",
      now: options.now,
    });
    return conv.queryResult(await this.invoke({ rpc: RPCS.Query, request, timeoutMs: options.timeoutMs }));
  }

  /** One episode; throws EpisodeNotFoundError / NamespaceNotFoundError. */
  async get(namespace: string, id: string, options: CallOptions = {}): Promise<Episode> {
    const request = pb.GetEpisodeRequest.fromPartial({ namespace, id });
    const response = await this.invoke({ rpc: RPCS.GetEpisode, request, timeoutMs: options.timeoutMs });
    return conv.episode(response.episode);
  }

  /** One page of episodes; pass `nextPageToken` back for the next (empty on the last page). */
  async list(namespace: string, options: ListOptions = {}): Promise<EpisodePage> {
    const request = pb.ListEpisodesRequest.fromPartial({
      namespace,
      pageSize: conv.integer(options.pageSize ?? 100, "pageSize"),
      pageToken: options.pageToken ?? "",
      sessionId: options.sessionId ?? "",
    });
    return conv.episodePage(await this.invoke({ rpc: RPCS.ListEpisodes, request, timeoutMs: options.timeoutMs }));
  }

  /** Every episode of the namespace (or session), fetching pages lazily; `timeoutMs` is per page. */
  async *iterEpisodes(namespace: string, options: Omit<ListOptions, "pageToken"> = {}): AsyncGenerator<Episode, void, undefined> {
    let pageToken = "";
    do {
      const page = await this.list(namespace, { ...options, pageToken });
      yield* page.items;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Delete episodes by id; ids that do not exist are reported, not thrown (so retries are safe). */
  async delete(namespace: string, ids: string | Iterable<string>, options: CallOptions = {}): Promise<DeleteResult> {
    const request = pb.DeleteEpisodesRequest.fromPartial({ namespace, ids: typeof ids === "string" ? [ids] : [...ids] });
    return conv.deleteResult(await this.invoke({ rpc: RPCS.DeleteEpisodes, request, timeoutMs: options.timeoutMs }));
  }

  /** Counts, index sizes and LLM usage; `namespace = ""` gives totals over every namespace. */
  async stats(namespace = "", options: CallOptions = {}): Promise<Stats> {
    const request = pb.GetStatsRequest.fromPartial({ namespace });
    return conv.stats(await this.invoke({ rpc: RPCS.GetStats, request, timeoutMs: options.timeoutMs }));
  }

  /** One page of namespaces with their episode counts. */
  async listNamespaces(options: Omit<ListOptions, "sessionId"> = {}): Promise<NamespacePage> {
    const request = pb.ListNamespacesRequest.fromPartial({
      pageSize: conv.integer(options.pageSize ?? 100, "pageSize"),
      pageToken: options.pageToken ?? "",
    });
    return conv.namespacePage(await this.invoke({ rpc: RPCS.ListNamespaces, request, timeoutMs: options.timeoutMs }));
  }

  /** Delete a namespace and everything in it; returns the number of episodes deleted. Never retried. */
  async deleteNamespace(namespace: string, options: CallOptions = {}): Promise<number> {
    const request = pb.DeleteNamespaceRequest.fromPartial({ namespace });
    const response = await this.invoke({ rpc: RPCS.DeleteNamespace, request, timeoutMs: options.timeoutMs });
    return response.deletedEpisodeCount;
  }

  /** The namespace's knowledge graph as GraphML or networkx node-link JSON bytes. */
  async exportGraph(namespace: string, format: GraphFormat = "graphml", options: ExportGraphOptions = {}): Promise<GraphExport> {
    if (options.directed !== undefined && typeof options.directed !== "boolean") {
      throw new TypeError(`directed must be a boolean, got ${typeof options.directed}`);
    }
    const request = pb.ExportGraphRequest.fromPartial({
      namespace, format: conv.parseFormat(format), directed: options.directed ?? false,
    });
    return conv.graphExport(await this.invoke({ rpc: RPCS.ExportGraph, request, timeoutMs: options.timeoutMs }));
  }

  /** The rolling compact memory of the namespace, or of one session. */
  async summary(namespace: string, sessionId = "", options: CallOptions = {}): Promise<Summary> {
    const request = pb.GetSummaryRequest.fromPartial({ namespace, sessionId });
    return conv.summary(await this.invoke({ rpc: RPCS.GetSummary, request, timeoutMs: options.timeoutMs }));
  }

  /** Age-weighted forgetting (0 / undefined: the server's limits). Only dry runs are retried. */
  async prune(namespace: string, options: PruneOptions = {}): Promise<PruneResult> {
    const dryRun = Boolean(options.dryRun);
    const request = pb.PruneRequest.fromPartial({
      namespace,
      dryRun,
      maxEpisodes: conv.integer(options.maxEpisodes ?? 0, "maxEpisodes"),
      maxBytes: conv.integer(options.maxBytes ?? 0, "maxBytes"),
      minScore: options.minScore,
    });
    const call = { rpc: RPCS.Prune, request, timeoutMs: options.timeoutMs, idempotent: dryRun ? true : undefined };
    return conv.pruneResult(await this.invoke(call));
  }

  /**
   * Administration (admin scope; docs/DURABILITY.md). A consistent copy of the server's database in `directory`,
   * an absolute path on the server's machine, taken while it keeps serving. Never retried.
   */
  async backup(directory: string, options: CallOptions = {}): Promise<pb.BackupDatabaseResponse> {
    const request = pb.BackupDatabaseRequest.fromPartial({ directory });
    return this.invoke({ rpc: RPCS.BackupDatabase, request, timeoutMs: options.timeoutMs });
  }

  /** One page of a namespace's episodes with their embeddings and extractions (admin scope). */
  async exportNamespace(namespace: string, options: Omit<ListOptions, "sessionId"> = {}):
    Promise<pb.ExportNamespaceResponse> {
    const request = pb.ExportNamespaceRequest.fromPartial({
      namespace,
      pageSize: conv.integer(options.pageSize ?? 0, "pageSize"),
      pageToken: options.pageToken ?? "",
    });
    return this.invoke({ rpc: RPCS.ExportNamespace, request, timeoutMs: options.timeoutMs });
  }

  /** Store exported episodes as they were (ids, embeddings, extractions); idempotent (admin scope). */
  async importNamespace(namespace: string, episodes: pb.ExportedEpisode[], embeddingModel: string,
    options: CallOptions = {}): Promise<pb.ImportNamespaceResponse> {
    const request = pb.ImportNamespaceRequest.fromPartial({ namespace, episodes, embeddingModel });
    return this.invoke({ rpc: RPCS.ImportNamespace, request, timeoutMs: options.timeoutMs });
  }

  /** grpc.health.v1 status: "SERVING", "NOT_SERVING", "UNKNOWN" or "SERVICE_UNKNOWN". */
  async health(service = "", options: CallOptions = {}): Promise<HealthStatus> {
    return this.invoke({ rpc: HEALTH_CHECK, request: { service }, timeoutMs: options.timeoutMs });
  }

  /** Resolve once the channel is connected; throws UnavailableError after `timeoutMs`. */
  async waitReady(timeoutMs = 10_000): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.channel.waitForReady(Date.now() + timeoutMs, (error) => {
        if (!error) resolve();
        else {
          reject(new UnavailableError(`server at ${this.target} did not become ready within ${timeoutMs} ms`, {
            code: "UNAVAILABLE", cause: error,
          }));
        }
      });
    });
  }

  /** Close the channel; calls in flight are cancelled. */
  close(): void {
    this.channel.close();
  }
}
