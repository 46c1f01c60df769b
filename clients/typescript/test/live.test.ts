/**
 * The SDK against a real `memserve serve` (hash embedder, offline extractor) on 127.0.0.1 port 0: every RPC,
 * typed results, server-side validation surfacing as typed errors, and the memserve-namespace header as the
 * server sees it (its per-call DEBUG log line).
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import {
  EpisodeConflictError,
  EpisodeNotFoundError,
  InvalidArgumentError,
  MemoryClient,
  NamespaceNotFoundError,
  UnauthenticatedError,
  UnavailableError,
  type EpisodeInput,
} from "../src/index.js";
import { LONG_MS, ServerProcess } from "./support/server.js";

const FACTS = [
  "Alice moved to Paris in 2019 and works as a baker.",
  "Bob keeps three cats and a parrot named Kiwi.",
  "The quarterly budget review is scheduled for Friday afternoon.",
  "Carol climbed Mount Kilimanjaro with her brother last summer.",
];

const FILM: EpisodeInput[] = [
  { id: "film", text: "Polish-Russian War (film)\nPolish-Russian War is a 2009 Polish film directed by Xawery Żuławski." },
  { id: "director", text: "Xawery Żuławski\nXawery Żuławski is a Polish film director. He is the son of actress "
      + "Małgorzata Braunek and director Andrzej Żuławski." },
  { id: "lake", text: "Lake Baikal\nLake Baikal is a rift lake in Siberia, Russia." },
  { id: "kiwi", text: "Kiwi Fruit\nThe kiwifruit is an edible berry grown in New Zealand." },
];

/** Unrelated turns of a two-person conversation (the Python SDK's conversation tests use the same). */
const CHATTER: readonly [string, string][] = [
  ["Alice", "I want to try the new bakery on Main Street."],
  ["Bob", "Work has me diving into spreadsheets all week."],
  ["Alice", "The course of the river changed after the flood."],
  ["Bob", "My cat knocked a glass off the table again."],
  ["Alice", "We painted the fence green on Sunday."],
];

const ns = (): string => `ts-${randomUUID().slice(0, 10)}`;

/** Poll a condition the server makes true (state, not time, decides when we go on). */
async function waitUntil<T>(probe: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + LONG_MS;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

let server: ServerProcess;
let client: MemoryClient;

before(async () => {
  server = await ServerProcess.start({ settings: { log_level: "DEBUG" } });
  client = new MemoryClient(server.target, { timeoutMs: 60_000 });
});

after(async () => {
  client?.close();
  if (server) {
    const code = await server.stop();
    server.cleanup();
    // A clean shutdown is part of the contract: drain, snapshot, checkpoint, exit 0.
    assert.equal(code, 0, server.log().split("\n").slice(-40).join("\n"));
  }
});

describe("a real server", () => {
  test("write then query finds the matching episode, with typed hits", async () => {
    const name = ns();
    const written = await client.write(name, FACTS.map((text, i) => ({
      text, sessionId: "s1", speaker: "user", metadata: { n: String(i) },
    })));
    assert.equal(written.ids.length, 4);
    assert.deepEqual(written.created, [true, true, true, true]);
    const answer = await client.query(name, "Bob parrot named Kiwi cats", { topK: 2, mode: "dense" });
    assert.equal(answer.mode, "dense");
    assert.equal(answer.hits.length, 2);
    const [top, second] = answer.hits;
    assert.equal(top!.episode.text, FACTS[1]);
    assert.equal(top!.rank, 1);
    assert.equal(second!.rank, 2);
    assert.ok(top!.score >= second!.score);
    assert.deepEqual(top!.episode.metadata, { n: "1" });
    assert.equal(top!.episode.namespace, name);
    assert.equal(top!.episode.sessionId, "s1");
    assert.ok(top!.episode.createTime instanceof Date);
    assert.equal(top!.episode.eventTime, null);
    for (const stage of ["embed", "dense", "total"]) assert.ok(stage in answer.timingsMs, stage);
    assert.ok(answer.context.includes(FACTS[1]!));
    assert.ok(answer.contextTokens > 0);
  });

  test("re-sending a write is a no-op", async () => {
    const name = ns();
    const episodes = [{ text: "hello", id: "client-1" }, "plain text"];
    const first = await client.write(name, episodes);
    const again = await client.write(name, episodes);
    assert.deepEqual(again.ids, first.ids);
    assert.deepEqual(first.created, [true, true]);
    assert.deepEqual(again.created, [false, false]);
    assert.equal(again.createdCount, 0);
    assert.equal(first.ids[0], "client-1");
    // The same id with other metadata is refused, naming the field, and the stored episode is kept.
    const error = await client.write(name, [{ text: "hello", id: "client-1", metadata: { tag: "new" } }])
      .catch((e: unknown) => e);
    assert.ok(error instanceof EpisodeConflictError, String(error));
    assert.equal(error.reason, "EPISODE_CONFLICT");
    assert.ok(error.field?.includes("metadata"), String(error.field));
    assert.deepEqual((await client.get(name, "client-1")).metadata, {});
  });

  test("graph and hybrid queries run on the extracted graph and explain their hits; no mode lets the server choose", async () => {
    const name = ns();
    await client.write(name, FILM, { waitForGraph: true });
    const stats = (await client.stats(name)).namespaces[0]!;
    assert.ok(stats.phraseCount > 5 && stats.factCount > 3 && stats.graphEdgeCount > 5, JSON.stringify(stats));
    assert.equal(stats.extractionBacklog, 0);
    const question = "Who is the mother of the director of Polish-Russian War?";
    const graph = await client.query(name, question, { topK: 3, mode: "graph" });
    assert.equal(graph.mode, "graph");
    const ids = new Set(graph.hits.map((h) => h.episode.id));
    assert.ok(ids.has("film") && ids.has("director"), [...ids].join());
    const explained = graph.hits.filter((h) => h.facts.length);
    assert.ok(explained.length && explained.every((h) => h.phrases.length));
    assert.equal(typeof explained[0]!.facts[0]!.subject, "string");
    const hybrid = await client.query(name, question, { topK: 3, mode: "hybrid" });
    assert.equal(hybrid.mode, "hybrid");
    assert.ok(hybrid.hits.some((h) => h.graphScore > 0) && hybrid.hits.some((h) => h.denseScore > 0));
    const chosen = await client.query(name, question, { topK: 3 });
    assert.equal(chosen.mode, "hybrid"); // the server default once a graph exists
  });

  test("lexical mode matches by words and reports BM25 scores; stats count the lexical index", async () => {
    const name = ns();
    await client.write(name, [{ text: "The zeppelin landed near the quarry.", id: "z", sessionId: "s" },
      { text: "Nothing happened today.", id: "n", sessionId: "t" }]);
    const result = await client.query(name, "zeppelin", { topK: 5, mode: "lexical" });
    assert.equal(result.mode, "lexical");
    assert.deepEqual(result.hits.map((h) => h.episode.id), ["z"]);
    assert.ok(result.hits[0]!.lexicalScore > 0, String(result.hits[0]!.lexicalScore));
    assert.ok(Math.abs(result.hits[0]!.lexicalScore - result.hits[0]!.score) < 1e-5);
    assert.ok("lexical" in result.timingsMs && !("embed" in result.timingsMs));
    const hybrid = await client.query(name, "zeppelin", { topK: 2, mode: "hybrid" });
    assert.deepEqual(hybrid.hits.map((h) => [h.episode.id, h.lexicalScore > 0]), [["z", true], ["n", false]]);
    const [stats] = (await client.stats(name)).namespaces;
    assert.equal(stats!.lexicalCount, 2);
    assert.equal(stats!.lexicalCount, stats!.episodeCount);
  });

  test("a speaker hint prefers that speaker's turns (any case)", async () => {
    // The same question, only the hint differs: without the hint on the wire both would get the same turn.
    const name = ns();
    await client.write(name, [
      ...CHATTER.map(([speaker, text], i) => ({ text, speaker, id: `f${i}`, sessionId: `s${i}` })),
      { text: "I love hiking in the Andes every summer.", id: "alice", sessionId: "a", speaker: "Alice" },
      { text: "I love hiking in the Alps every summer.", id: "bob", sessionId: "b", speaker: "Bob" },
    ]);
    const question = "Where does someone love hiking every summer?";
    const top = async (speaker: string): Promise<string[]> =>
      (await client.query(name, question, { topK: 1, mode: "hybrid", speaker })).hits.map((h) => h.episode.id);
    assert.deepEqual(await top("alice"), ["alice"]);
    assert.deepEqual(await top("BOB"), ["bob"]);
  });

  test("`now` is the reference time of a relative expression in the query", async () => {
    const name = ns();
    const at = (day: string): string => `${day}T12:00:00Z`;
    await client.write(name, [
      { text: "We went to a concert downtown.", id: "may", sessionId: "s1", eventTime: at("2023-05-20") },
      { text: "We went to a concert by the lake.", id: "july", sessionId: "s2", eventTime: at("2023-07-08") },
      { text: "We went to a concert at the stadium.", id: "oct", sessionId: "s3", eventTime: at("2023-10-12") },
      ...CHATTER.map(([, text], i) => ({ text, id: `f${i}`, sessionId: `f${i}`, eventTime: at("2023-03-01") })),
    ]);
    const top = async (question: string, now: Date | string): Promise<string[]> =>
      (await client.query(name, question, { topK: 1, mode: "hybrid", now })).hits.map((h) => h.episode.id);
    // The same words, only `now` differs: "yesterday" names a different day, so a different turn wins.
    assert.deepEqual(await top("Which concert did we go to yesterday?", new Date("2023-10-13T09:00:00Z")), ["oct"]);
    assert.deepEqual(await top("Which concert did we go to yesterday?", "2023-05-21T09:00:00"), ["may"]);
    // "in July" is the most recent July before `now` (a naive string is UTC).
    assert.deepEqual(await top("Which concert did we go to in July?", "2023-10-18"), ["july"]);
  });

  test("filters: sessions, metadata and an event-time range", async () => {
    const name = ns();
    await client.write(name, [
      { text: "standup notes about the release", sessionId: "a", metadata: { kind: "notes" }, eventTime: "2024-01-10T09:00:00Z" },
      { text: "release checklist for the launch", sessionId: "b", metadata: { kind: "todo" }, eventTime: new Date("2024-02-10T09:00:00Z") },
      { text: "release retrospective and lessons", sessionId: "b", metadata: { kind: "notes" }, eventTime: "2024-03-10 09:00" },
    ]);
    const texts = async (filter: object): Promise<string[]> =>
      (await client.query(name, "release", { mode: "dense", filter })).hits.map((h) => h.episode.text).sort();
    assert.deepEqual(await texts({ sessionIds: ["b"] }),
      ["release checklist for the launch", "release retrospective and lessons"]);
    assert.deepEqual(await texts({ metadata: { kind: "notes" } }),
      ["release retrospective and lessons", "standup notes about the release"]);
    assert.deepEqual(await texts({ eventTimeStart: "2024-02-01", eventTimeEnd: new Date("2024-03-10T09:00:00Z") }),
      ["release checklist for the launch"]);
    assert.deepEqual(await texts({ sessionIds: ["b"], metadata: { kind: "notes" }, eventTimeStart: "2024-03-01T00:00:00+01:00" }),
      ["release retrospective and lessons"]);
    const [episode] = (await client.query(name, "retrospective", { filter: { sessionIds: ["b"] }, topK: 1 })).hits;
    assert.equal(episode!.episode.eventTime?.toISOString(), "2024-03-10T09:00:00.000Z"); // naive means UTC
  });

  test("paging through episodes, whole and per session", async () => {
    const name = ns();
    const written = await client.write(name, Array.from({ length: 7 }, (_, i) => ({
      text: `episode number ${i}`, sessionId: i % 2 ? "odd" : "even",
    })));
    const first = await client.list(name, { pageSize: 3 });
    assert.equal(first.items.length, 3);
    assert.ok(first.nextPageToken);
    const seen: string[] = [];
    for await (const episode of client.iterEpisodes(name, { pageSize: 3 })) seen.push(episode.id);
    assert.deepEqual(seen.sort(), [...written.ids].sort());
    const odd: string[] = [];
    for await (const episode of client.iterEpisodes(name, { pageSize: 2, sessionId: "odd" })) odd.push(episode.text);
    assert.deepEqual(odd.sort(), ["episode number 1", "episode number 3", "episode number 5"]);
    let token = "";
    let pages = 0;
    do {
      const page = await client.list(name, { pageSize: 3, pageToken: token });
      token = page.nextPageToken;
      pages += 1;
    } while (token);
    assert.equal(pages, 3);
  });

  test("get and delete; missing ids are reported, not thrown", async () => {
    const name = ns();
    const { ids } = await client.write(name, FACTS);
    const episode = await client.get(name, ids[0]!);
    assert.equal(episode.text, FACTS[0]);
    const deleted = await client.delete(name, [ids[1]!, "never-existed"]);
    assert.equal(deleted.deletedCount, 1);
    assert.deepEqual(deleted.notFoundIds, ["never-existed"]);
    const error = await client.get(name, ids[1]!).catch((e: unknown) => e);
    assert.ok(error instanceof EpisodeNotFoundError, String(error));
    assert.equal(error.reason, "EPISODE_NOT_FOUND");
    assert.ok(error.requestId);
    const hits = await client.query(name, FACTS[1]!, { mode: "dense" });
    assert.ok(!hits.hits.some((h) => h.episode.id === ids[1]));
    assert.equal((await client.delete(name, ids[2]!)).deletedCount, 1); // a lone id, not its characters
  });

  test("stats per namespace and in total", async () => {
    const name = ns();
    await client.write(name, FACTS.map((text, i) => ({ text, sessionId: `s${i % 2}` })));
    const stats = await client.stats(name);
    assert.equal(stats.namespaces.length, 1);
    const mine = stats.namespaces[0]!;
    assert.equal(mine.namespace, name);
    assert.equal(mine.episodeCount, 4);
    assert.equal(mine.vectorCount, 4);
    assert.equal(mine.sessionCount, 2);
    assert.ok(mine.createTime instanceof Date);
    assert.equal(stats.embeddingDim, 64);
    assert.match(stats.embeddingModel, /hash/);
    assert.equal(typeof stats.llm.calls, "number");
    const total = await client.stats();
    assert.ok(total.episodeCount >= 4 && total.namespaces.some((n) => n.namespace === name));
  });

  test("namespaces: list, export the graph, delete", async () => {
    const name = ns();
    await client.write(name, FILM, { waitForGraph: true });
    const names: string[] = [];
    let token = "";
    do {
      const page = await client.listNamespaces({ pageSize: 2, pageToken: token });
      names.push(...page.items.map((n) => n.name));
      token = page.nextPageToken;
    } while (token);
    assert.ok(names.includes(name));
    const exported = await client.exportGraph(name, "node-link");
    const graph = JSON.parse(Buffer.from(exported.data).toString("utf8")) as { nodes: unknown[] };
    assert.equal(graph.nodes.length, exported.nodeCount);
    assert.ok(exported.edgeCount > 0);
    const directed = await client.exportGraph(name, "node-link", { directed: true });
    const dgraph = JSON.parse(Buffer.from(directed.data).toString("utf8")) as {
      directed: boolean; nodes: { kind: string; text?: string }[];
    };
    assert.equal(dgraph.directed, true);
    assert.equal((JSON.parse(Buffer.from(exported.data).toString("utf8")) as { directed: boolean }).directed, false);
    assert.ok(dgraph.nodes.some((n) => n.kind === "passage" && FILM.some((e) => e.text === n.text)));
    const graphml = await client.exportGraph(name);
    assert.match(Buffer.from(graphml.data).toString("utf8"), /<graphml/);
    assert.equal(await client.deleteNamespace(name), FILM.length);
    await assert.rejects(client.stats(name), NamespaceNotFoundError);
    await assert.rejects(client.deleteNamespace(name), NamespaceNotFoundError);
  });

  test("summary of the namespace and of a session", async () => {
    const name = ns();
    await client.write(name, FACTS.map((text, i) => ({ text, sessionId: i < 2 ? "early" : "late" })));
    const whole = await waitUntil(() => client.summary(name), (s) => s.backlog === 0 && s.episodeCount === 4,
      "the summary to fold every episode");
    assert.ok(whole.summary.length > 0);
    assert.ok(whole.updateTime instanceof Date);
    const session = await waitUntil(() => client.summary(name, "late"), (s) => s.backlog === 0 && s.episodeCount === 2,
      "the session summary");
    assert.ok(session.summary.length > 0);
  });

  test("a dry-run prune says what would go and removes nothing", async () => {
    const name = ns();
    const { ids } = await client.write(name, Array.from({ length: 6 }, (_, i) => ({
      text: `memory ${i} about topic ${i}`, pinned: i === 0,
    })));
    const dry = await client.prune(name, { dryRun: true, maxEpisodes: 2 });
    assert.equal(dry.dryRun, true);
    assert.equal(dry.pruned.length, 4);
    assert.equal(dry.remainingCount, 6); // a dry run removed nothing
    assert.ok(!dry.pruned.some((p) => p.id === ids[0]), "a pinned episode is never pruned");
    assert.ok(dry.pruned.every((p) => p.reason === "over_max_episodes" && p.text));
    assert.equal((await client.stats(name)).namespaces[0]!.episodeCount, 6);
  });

  test("bad input comes back as InvalidArgumentError naming the field", async () => {
    const cases: [() => Promise<unknown>, string][] = [
      [() => client.write("bad namespace!", ["x"]), "namespace"],
      [() => client.query(ns(), "q", { topK: 5000 }), "top_k"],
      [() => client.query(ns(), "q", { tokenBudget: -1 }), "token_budget"],
      [() => client.write(ns(), [{ text: "x", importance: 7 }]), "episodes[0].importance"],
      [() => client.list(ns(), { pageSize: -1 }), "page_size"],
      [() => client.query(ns(), "q", { speaker: "x".repeat(300) }), "speaker"],
    ];
    for (const [call, field] of cases) {
      const error = await call().catch((e: unknown) => e);
      assert.ok(error instanceof InvalidArgumentError, `${field}: ${String(error)}`);
      assert.equal(error.code, "INVALID_ARGUMENT");
      assert.equal(error.field, field);
      assert.ok(error.requestId, "the request id lets an operator find the log line");
    }
    // A namespace that cannot travel as a header still reaches the server, which names the field.
    const error = await client.query("naïve namespace", "q").catch((e: unknown) => e);
    assert.ok(error instanceof InvalidArgumentError, String(error));
    assert.equal(error.field, "namespace");
  });

  test("health, and readiness", async () => {
    await client.waitReady(10_000);
    assert.equal(await client.health(), "SERVING");
    assert.equal(await client.health("memserve.v1.MemoryService"), "SERVING");
  });

  test("the server sees memserve-namespace on every namespaced call", async () => {
    const name = ns();
    const calls: [string, () => Promise<unknown>][] = [
      ["WriteEpisodes", () => client.write(name, FILM, { waitForGraph: true })],
      ["Query", () => client.query(name, "film")],
      ["GetEpisode", () => client.get(name, "film")],
      ["ListEpisodes", () => client.list(name)],
      ["DeleteEpisodes", () => client.delete(name, ["lake"])],
      ["GetStats", () => client.stats(name)],
      ["ExportGraph", () => client.exportGraph(name)],
      ["GetSummary", () => client.summary(name)],
      ["Prune", () => client.prune(name, { dryRun: true })],
      ["DeleteNamespace", () => client.deleteNamespace(name)],
    ];
    for (const [rpc, call] of calls) {
      await call();
      // The line is logged before the answer is sent; it reaches us through a pipe, so wait for it (an event).
      await server.waitForOutput(new RegExp(`memserve\\.rpc: ${rpc} \\w+ [\\d.]+ms OK memserve-namespace=${name}\\b`));
    }
    await client.listNamespaces();
    await server.waitForOutput(/memserve\.rpc: ListNamespaces \w+ [\d.]+ms OK memserve-namespace=-/);
  });
});

describe("a server with an API key", () => {
  test("calls without the key are UNAUTHENTICATED, with it they pass", async () => {
    const secured = await ServerProcess.start({ settings: { api_key: "s3cret" }, clientOptions: { apiKey: "s3cret" } });
    try {
      const anonymous = new MemoryClient(secured.target);
      const wrong = new MemoryClient(secured.target, { apiKey: "guess" });
      const right = new MemoryClient(secured.target, { apiKey: "s3cret" });
      try {
        await assert.rejects(anonymous.stats(), UnauthenticatedError);
        await assert.rejects(wrong.stats(), UnauthenticatedError);
        assert.equal((await right.write(ns(), ["authorised"])).ids.length, 1);
      } finally {
        for (const c of [anonymous, wrong, right]) c.close();
      }
    } finally {
      assert.equal(await secured.stop(), 0);
      secured.cleanup();
    }
  });

  test("a server that went away is UNAVAILABLE, after the retries", async () => {
    const gone = await ServerProcess.start();
    const target = gone.target;
    assert.equal(await gone.stop(), 0);
    gone.cleanup();
    const orphan = new MemoryClient(target, { maxRetries: 2 });
    try {
      const error = await orphan.stats().catch((e: unknown) => e);
      assert.ok(error instanceof UnavailableError, String(error));
      assert.equal(error.code, "UNAVAILABLE");
    } finally {
      orphan.close();
    }
  });
});
