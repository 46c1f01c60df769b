/**
 * The client against a scripted grpc-js server (see support/scripted.ts): error mapping, retries, deadlines,
 * metadata, chunking and argument checks. The same cases as clients/python/tests/test_client_transport.py.
 */

import assert from "node:assert/strict";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";

import {
  AlreadyExistsError,
  DeadlineExceededError,
  EpisodeNotFoundError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  MemoryClient,
  MemserveError,
  NAMESPACE_KEY,
  NamespaceNotFoundError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  RPC_NAMES,
  UnauthenticatedError,
  UnavailableError,
  VERSION,
  type ClientOptions,
  type RpcName,
  type StatusName,
} from "../src/index.js";
import { RetryPolicy } from "../src/core.js";
import * as pb from "../src/gen/memserve/v1/memory.js";
import { Gate, ScriptedServer, steps } from "./support/scripted.js";
import { PACKAGE_ROOT } from "./support/server.js";

const server = new ScriptedServer();
let target = "";

before(async () => {
  target = await server.start();
});
after(() => server.stop());
afterEach(() => server.reset());

async function withClient<T>(options: ClientOptions, run: (client: MemoryClient) => Promise<T>): Promise<T> {
  const client = new MemoryClient(target, options);
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

/** One call of every public method that names a namespace, and the RPC it makes. */
const NAMESPACED: [RpcName, (c: MemoryClient, ns: string) => Promise<unknown>][] = [
  ["WriteEpisodes", (c, ns) => c.write(ns, ["hello"])],
  ["Query", (c, ns) => c.query(ns, "hello")],
  ["GetEpisode", (c, ns) => c.get(ns, "id-1")],
  ["ListEpisodes", (c, ns) => c.list(ns)],
  ["DeleteEpisodes", (c, ns) => c.delete(ns, ["id-1"])],
  ["GetStats", (c, ns) => c.stats(ns)],
  ["DeleteNamespace", (c, ns) => c.deleteNamespace(ns)],
  ["ExportGraph", (c, ns) => c.exportGraph(ns)],
  ["GetSummary", (c, ns) => c.summary(ns)],
  ["Prune", (c, ns) => c.prune(ns, { dryRun: true })],
  ["ExportNamespace", (c, ns) => c.exportNamespace(ns)],
  ["ImportNamespace", (c, ns) => c.importNamespace(ns, [], "hash-64|64")],
];

describe("error mapping", () => {
  const cases: [StatusName, string | undefined, new (...args: never[]) => MemserveError][] = [
    ["INVALID_ARGUMENT", undefined, InvalidArgumentError],
    ["NOT_FOUND", "NAMESPACE_NOT_FOUND", NamespaceNotFoundError],
    ["NOT_FOUND", "EPISODE_NOT_FOUND", EpisodeNotFoundError],
    ["NOT_FOUND", undefined, NotFoundError],
    ["ALREADY_EXISTS", undefined, AlreadyExistsError],
    ["FAILED_PRECONDITION", undefined, FailedPreconditionError],
    ["RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", ResourceExhaustedError],
    ["UNAUTHENTICATED", undefined, UnauthenticatedError],
    ["PERMISSION_DENIED", undefined, PermissionDeniedError],
    ["DEADLINE_EXCEEDED", undefined, DeadlineExceededError],
    ["INTERNAL", undefined, InternalError],
    ["UNAVAILABLE", "LLM_FAILED", UnavailableError],
    ["ABORTED", undefined, MemserveError],
  ];
  for (const [code, reason, Expected] of cases) {
    test(`${code}${reason ? `/${reason}` : ""} → ${Expected.name}`, async () => {
      server.script("GetEpisode", steps.abort(code, "it went wrong", { reason, field: "id" }));
      const error = await withClient({ maxRetries: 0 }, (c) => c.get("ns", "x")).catch((e: unknown) => e);
      assert.ok(error instanceof Expected, `got ${String(error)}`);
      assert.equal(error.constructor, Expected);
      assert.ok(error instanceof MemserveError && error instanceof Error);
      assert.equal(error.code, code);
      assert.equal(error.reason, reason ?? code);
      assert.equal(error.field, "id");
      assert.equal(error.requestId, "req-42");
      assert.equal(error.details, "it went wrong");
      assert.match(error.message, /it went wrong/);
      assert.match(error.message, /request id req-42/);
    });
  }

  test("without a reason the status name stands in, and absent fields are undefined", async () => {
    server.script("Query", steps.abort("INVALID_ARGUMENT", "bad", { reason: "", requestId: null }));
    const error = await withClient({}, (c) => c.query("ns", "q")).catch((e: unknown) => e);
    assert.ok(error instanceof InvalidArgumentError);
    assert.equal(error.reason, "INVALID_ARGUMENT");
    assert.equal(error.field, undefined);
    assert.equal(error.requestId, undefined);
    assert.equal(error.message, "INVALID_ARGUMENT: bad");
  });
});

/** A google.rpc.Status with ErrorInfo, BadRequest and RequestInfo details, encoded by hand. */
function rpcStatus(reason: string, field: string, requestId: string): Buffer {
  const any = (type: string, value: Uint8Array): Uint8Array =>
    new BinaryWriter().uint32(10).string(`type.googleapis.com/google.rpc.${type}`).uint32(18).bytes(value).finish();
  const errorInfo = new BinaryWriter().uint32(10).string(reason).uint32(18).string("memserve").finish();
  const violation = new BinaryWriter().uint32(10).string(field).uint32(18).string("bad").finish();
  const badRequest = new BinaryWriter().uint32(10).bytes(violation).finish();
  const requestInfo = new BinaryWriter().uint32(10).string(requestId).finish();
  const status = new BinaryWriter().uint32(8).int32(7).uint32(18).string("refused");
  for (const detail of [any("ErrorInfo", errorInfo), any("BadRequest", badRequest), any("RequestInfo", requestInfo)]) {
    status.uint32(26).bytes(detail);
  }
  return Buffer.from(status.finish());
}

describe("google.rpc.Status details", () => {
  test("win over the plain trailers", async () => {
    server.script("GetEpisode", steps.abort("PERMISSION_DENIED", "refused", {
      reason: "OLD", field: "old_field", requestId: "old-id",
      statusDetails: rpcStatus("NAMESPACE_DENIED", "namespace", "rid-1"),
    }));
    const error = await withClient({}, (c) => c.get("ns", "x")).catch((e: unknown) => e);
    assert.ok(error instanceof PermissionDeniedError, String(error));
    assert.deepEqual([error.reason, error.field, error.requestId], ["NAMESPACE_DENIED", "namespace", "rid-1"]);
  });

  test("select the class by reason too, and unreadable details fall back to the trailers", async () => {
    server.script("GetEpisode", steps.abort("NOT_FOUND", "gone", { statusDetails: rpcStatus("EPISODE_NOT_FOUND", "id", "rid-2") }));
    await assert.rejects(withClient({}, (c) => c.get("ns", "x")), EpisodeNotFoundError);
    server.script("Query", steps.abort("UNAUTHENTICATED", "who?", {
      reason: "UNAUTHENTICATED", requestId: "rid-3", statusDetails: Buffer.from("\xff\xff not a status", "latin1"),
    }));
    const error = await withClient({}, (c) => c.query("ns", "q")).catch((e: unknown) => e);
    assert.ok(error instanceof UnauthenticatedError, String(error));
    assert.deepEqual([error.reason, error.requestId], ["UNAUTHENTICATED", "rid-3"]);
  });
});

describe("retries", () => {
  test("an idempotent call is retried on UNAVAILABLE and then succeeds", async () => {
    server.script("Query", steps.abort("UNAVAILABLE", "down"), steps.abort("UNAVAILABLE", "down"),
      steps.respond({ hits: [], context: "ok", contextTokens: 1, timingsMs: {}, mode: 1 }));
    const result = await withClient({}, (c) => c.query("ns", "q"));
    assert.equal(result.context, "ok");
    assert.equal(result.mode, "dense");
    assert.equal(server.received("Query").length, 3);
  });

  test("retries stop after maxRetries and the last error is thrown", async () => {
    server.script("GetStats", steps.abort("UNAVAILABLE", "still down"));
    const error = await withClient({ maxRetries: 2 }, (c) => c.stats()).catch((e: unknown) => e);
    assert.ok(error instanceof UnavailableError);
    assert.equal(error.details, "still down");
    assert.equal(server.received("GetStats").length, 3);
  });

  test("maxRetries 0 makes one attempt", async () => {
    server.script("GetStats", steps.abort("UNAVAILABLE", "down"));
    await assert.rejects(withClient({ maxRetries: 0 }, (c) => c.stats()), UnavailableError);
    assert.equal(server.received("GetStats").length, 1);
  });

  test("other codes are never retried", async () => {
    server.script("Query", steps.abort("INTERNAL", "bug"));
    await assert.rejects(withClient({}, (c) => c.query("ns", "q")), InternalError);
    server.script("ListEpisodes", steps.abort("RESOURCE_EXHAUSTED", "busy", { reason: "OVERLOADED" }));
    await assert.rejects(withClient({}, (c) => c.list("ns")), ResourceExhaustedError);
    assert.equal(server.received("Query").length, 1);
    assert.equal(server.received("ListEpisodes").length, 1);
  });

  test("DeleteNamespace and a real Prune are not retried, a dry-run Prune is", async () => {
    server.script("DeleteNamespace", steps.abort("UNAVAILABLE", "down"));
    server.script("Prune", steps.abort("UNAVAILABLE", "down"));
    await assert.rejects(withClient({}, (c) => c.deleteNamespace("ns")), UnavailableError);
    await assert.rejects(withClient({}, (c) => c.prune("ns", { maxEpisodes: 1 })), UnavailableError);
    assert.equal(server.received("DeleteNamespace").length, 1);
    assert.equal(server.received("Prune").length, 1);
    await assert.rejects(withClient({ maxRetries: 2 }, (c) => c.prune("ns", { dryRun: true })), UnavailableError);
    assert.equal(server.received("Prune").length, 1 + 3);
  });

  test("a server that is not there is UNAVAILABLE, after the retries", async () => {
    const probe = new ScriptedServer();
    const gone = await probe.start();
    await probe.stop(); // nothing listens on that port any more
    const client = new MemoryClient(gone, { maxRetries: 1 });
    try {
      await assert.rejects(client.stats(), UnavailableError);
    } finally {
      client.close();
    }
  });

  test("backoff grows exponentially with full jitter, capped", () => {
    const policy = new RetryPolicy(4, 100, 1_000, 2);
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => policy.backoffMs(n, () => 1)), [100, 200, 400, 800, 1_000]);
    assert.equal(policy.backoffMs(3, () => 0.5), 200);
  });
});

describe("deadlines", () => {
  test("each method sends its default deadline, and the client's timeoutMs replaces it", async () => {
    await withClient({}, async (c) => {
      await c.query("ns", "q");
      await c.write("ns", ["w"]);
    });
    const query = server.received("Query")[0]!.timeRemainingMs!;
    const write = server.received("WriteEpisodes")[0]!.timeRemainingMs!;
    assert.ok(query > 20_000 && query <= 30_000, `query deadline ${query}`);
    assert.ok(write > 110_000 && write <= 120_000, `write deadline ${write}`);
    await withClient({ timeoutMs: 5_000 }, (c) => c.write("ns", ["w"]));
    const overridden = server.received("WriteEpisodes")[1]!.timeRemainingMs!;
    assert.ok(overridden > 0 && overridden <= 5_000, `client timeout ${overridden}`);
    await withClient({ timeoutMs: 5_000 }, (c) => c.query("ns", "q", { timeoutMs: 60_000 }));
    const perCall = server.received("Query")[1]!.timeRemainingMs!;
    assert.ok(perCall > 50_000 && perCall <= 60_000, `per-call timeout ${perCall}`);
  });

  test("a call that outlives its deadline throws DeadlineExceededError", async () => {
    const gate = new Gate();
    server.script("Query", steps.hold(gate));
    try {
      const error = await withClient({}, (c) => c.query("ns", "q", { timeoutMs: 200 })).catch((e: unknown) => e);
      assert.ok(error instanceof DeadlineExceededError, `got ${String(error)}`);
      assert.equal(error.code, "DEADLINE_EXCEEDED");
    } finally {
      gate.open();
    }
  });

  test("non-positive timeouts are refused before any call", () => {
    assert.throws(() => new MemoryClient(target, { timeoutMs: 0 }), RangeError);
    assert.throws(() => new MemoryClient(target, { maxRetries: -1 }), RangeError);
    assert.throws(() => new MemoryClient(target, { maxBatch: 0 }), RangeError);
  });
});

describe("metadata", () => {
  test("every namespaced call sends memserve-namespace", async () => {
    await withClient({}, async (c) => {
      for (const [, call] of NAMESPACED) await call(c, "tenant-7");
    });
    for (const [rpc] of NAMESPACED) {
      const [received] = server.received(rpc);
      assert.ok(received, `${rpc} was not called`);
      assert.equal(received.metadata[NAMESPACE_KEY], "tenant-7", rpc);
    }
  });

  test("the list above covers every RPC whose request has a namespace", () => {
    const covered = new Set(NAMESPACED.map(([rpc]) => rpc));
    // ListNamespaces and BackupDatabase span the server: their requests name no namespace.
    const namespaced = RPC_NAMES.filter((name) => name !== "ListNamespaces" && name !== "BackupDatabase");
    assert.deepEqual([...covered].sort(), [...namespaced].sort());
  });

  test("calls without a namespace send none", async () => {
    await withClient({}, async (c) => {
      await c.stats();
      await c.listNamespaces();
    });
    assert.equal(server.received("GetStats")[0]!.metadata[NAMESPACE_KEY], undefined);
    assert.equal(server.received("ListNamespaces")[0]!.metadata[NAMESPACE_KEY], undefined);
  });

  test("a namespace that cannot be a header value is left to the server to reject", async () => {
    await withClient({}, (c) => c.query("bad namespace ü", "q"));
    const [received] = server.received("Query");
    assert.equal(received!.request.namespace, "bad namespace ü");
    assert.equal(received!.metadata[NAMESPACE_KEY], undefined);
  });

  test("the API key goes out as a bearer token, and the user agent names the SDK", async () => {
    await withClient({ apiKey: "s3cret" }, (c) => c.stats("ns"));
    const [received] = server.received("GetStats");
    assert.equal(received!.metadata.authorization, "Bearer s3cret");
    assert.match(received!.metadata["user-agent"]!, new RegExp(`^memserve-client-ts/${VERSION.replace(/\./g, "\\.")} `));
    await withClient({}, (c) => c.stats("ns"));
    assert.equal(server.received("GetStats")[1]!.metadata.authorization, undefined);
  });

  test("VERSION matches package.json", () => {
    const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string };
    assert.equal(VERSION, manifest.version);
  });
});

describe("requests", () => {
  test("writes larger than maxBatch are split, and the answers concatenate in order", async () => {
    server.script("WriteEpisodes", steps.respond({ ids: ["a", "b"], created: [true, false] }),
      steps.respond({ ids: ["c"], created: [true] }));
    const result = await withClient({ maxBatch: 2 }, (c) => c.write("ns", ["1", "2", "3"]));
    assert.deepEqual(result.ids, ["a", "b", "c"]);
    assert.deepEqual(result.created, [true, false, true]);
    assert.equal(result.createdCount, 2);
    assert.deepEqual(server.received("WriteEpisodes").map((r) => r.request.episodes.length), [2, 1]);
  });

  test("episode inputs are converted field by field; a naive time means UTC", async () => {
    await withClient({}, (c) => c.write("ns", {
      text: "t", id: "e1", sessionId: "s", speaker: "user", eventTime: "2024-05-01T09:00:00",
      metadata: { k: "v" }, importance: 0.25, pinned: true,
      extraction: { entities: ["A"], triples: [["A", "knows", "B"], { subject: "B", predicate: "p", object: "C" }] },
    }, { waitForGraph: true }));
    const request = server.received("WriteEpisodes")[0]!.request;
    assert.equal(request.waitForGraph, true);
    const [episode] = request.episodes;
    assert.equal(episode.eventTime.toISOString(), "2024-05-01T09:00:00.000Z");
    assert.deepEqual({ ...episode, eventTime: undefined }, {
      id: "e1", sessionId: "s", speaker: "user", text: "t", eventTime: undefined, metadata: { k: "v" },
      importance: 0.25, pinned: true,
      extraction: { entities: ["A"], triples: [
        { subject: "A", predicate: "knows", object: "B" }, { subject: "B", predicate: "p", object: "C" }] },
    });
  });

  test("query options reach the request; unset graph options stay unset", async () => {
    await withClient({}, (c) => c.query("ns", "q", {
      topK: 3, mode: "graph", tokenBudget: 99, summarySessionId: "s2", graph: { damping: 0.5 },
      filter: { sessionIds: ["s1"], eventTimeStart: new Date("2024-01-01T00:00:00Z"), metadata: { k: "v" } },
    }));
    const request = server.received("Query")[0]!.request;
    assert.equal(request.topK, 3);
    assert.equal(request.mode, 2);
    assert.equal(request.tokenBudget, 99);
    assert.equal(request.summarySessionId, "s2");
    assert.equal(request.graph.damping, 0.5);
    assert.equal(request.graph.factTopK, undefined);
    assert.deepEqual(request.filter.sessionIds, ["s1"]);
    assert.equal(request.filter.eventTime.start.toISOString(), "2024-01-01T00:00:00.000Z");
    assert.equal(request.filter.eventTime.end, undefined);
  });

  test("mode lexical, a speaker hint and the reference time reach the request; lexical scores come back", async () => {
    server.script("Query", steps.respond(pb.QueryResponse.fromPartial({
      hits: [{ episode: { id: "z" }, score: 1.5, rank: 1, lexicalScore: 1.5 }], mode: pb.QueryMode.QUERY_MODE_LEXICAL })));
    const result = await withClient({}, (c) => c.query("ns", "q", {
      mode: "lexical", speaker: "Alice", now: "2024-05-08T12:00:00" }));
    const request = server.received("Query")[0]!.request;
    assert.equal(request.mode, pb.QueryMode.QUERY_MODE_LEXICAL);
    assert.equal(request.speaker, "Alice");
    assert.equal(request.now.toISOString(), "2024-05-08T12:00:00.000Z");  // no offset: UTC
    assert.equal(result.mode, "lexical");
    assert.equal(result.hits[0]!.lexicalScore, 1.5);
    await withClient({}, (c) => c.query("ns", "q", { now: new Date("2023-10-13T00:00:00+02:00") }));
    const second = server.received("Query")[1]!.request;
    assert.equal(second.now.toISOString(), "2023-10-12T22:00:00.000Z");
    assert.equal(second.speaker, "");  // unset: the server infers a named speaker
    assert.equal(second.mode, 0);
  });

  test("unset speaker and now stay unset on the wire; stats carry the lexical count", async () => {
    server.script("GetStats", steps.respond(pb.GetStatsResponse.fromPartial({
      namespaces: [{ namespace: "ns", episodeCount: 2, lexicalCount: 2 }] })));
    const stats = await withClient({}, (c) => c.stats("ns"));
    assert.equal(stats.namespaces[0]!.lexicalCount, 2);
    await withClient({}, (c) => c.query("ns", "q"));
    const request = server.received("Query")[0]!.request;
    assert.equal(request.now, undefined);
    assert.equal(request.speaker, "");
  });

  test("exportGraph sends directed only when asked", async () => {
    server.script("ExportGraph", steps.respond(pb.ExportGraphResponse.fromPartial({ nodeCount: 1 })));
    await withClient({}, (c) => c.exportGraph("ns", "node-link", { directed: true }));
    await withClient({}, (c) => c.exportGraph("ns"));
    const [first, second] = server.received("ExportGraph").map((r) => r.request);
    assert.equal(first!.directed, true);
    assert.equal(second!.directed, false);
  });

  test("responses become plain typed results; unset times are null", async () => {
    server.script("GetEpisode", steps.respond({ episode: { id: "e", namespace: "ns", text: "t", metadata: { a: "b" },
      importance: 0.5, createTime: new Date("2024-02-03T04:05:06Z") } }));
    const episode = await withClient({}, (c) => c.get("ns", "e"));
    assert.equal(episode.eventTime, null);
    assert.equal(episode.createTime?.toISOString(), "2024-02-03T04:05:06.000Z");
    assert.deepEqual(episode.metadata, { a: "b" });
  });

  test("bad arguments throw before any call", async () => {
    await withClient({}, async (c) => {
      await assert.rejects(c.query("ns", "q", { mode: "sparse" as never }), RangeError);
      await assert.rejects(c.query("ns", "q", { topK: 2.5 }), TypeError);
      await assert.rejects(c.exportGraph("ns", "dot" as never), RangeError);
      await assert.rejects(c.exportGraph("ns", "node-link", { directed: "yes" as never }), TypeError);
      await assert.rejects(c.write("ns", [{ text: "t", sesionId: "typo" } as never]), /unknown keys sesionId/);
      await assert.rejects(c.write("ns", [{ speaker: "x" } as never]), /missing 'text'/);
      await assert.rejects(c.write("ns", [{ text: "t", eventTime: "yesterday" }]), RangeError);
      await assert.rejects(c.query("ns", "q", { filter: { sessionIds: "s1" as never } }), TypeError);
      await assert.rejects(c.query("ns", "q", { speaker: 7 as never }), /speaker: expected a string/);
      await assert.rejects(c.query("ns", "q", { now: 1700000000 as never }), /now: expected a Date/);
      await assert.rejects(c.query("ns", "q", { now: "last week" }), RangeError);
      await assert.rejects(c.query("ns", "q", { now: new Date(Number.NaN) }), /now: invalid time/);
    });
    assert.equal(server.received("Query").length + server.received("WriteEpisodes").length, 0);
    assert.throws(() => new MemoryClient(target, { clientCert: "pem" }), /clientCert and clientKey/);
  });
});
