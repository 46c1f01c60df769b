/**
 * TLS and mutual TLS, with a throwaway CA made by `openssl` for this run: the client's TLS options against a
 * grpc-js server that requires client certificates, and the same against a real memserve.
 *
 * memserve's settings tls_cert_file / tls_key_file / tls_client_ca_file may not exist yet in the server this
 * runs against: only when the server refuses them as unknown settings is the test skipped, saying so; any
 * other failure to start fails it.
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { ServerCredentials } from "@grpc/grpc-js";

import { MemoryClient, UnavailableError, type ClientOptions } from "../src/index.js";
import { ScriptedServer } from "./support/scripted.js";
import { ServerProcess, ServerStartError } from "./support/server.js";

interface Pki {
  dir: string;
  ca: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  serverCertFile: string;
  serverKeyFile: string;
  caFile: string;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed by the CA. */
function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "memserve-tls-"));
  openssl(dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
    "-days", "2", "-subj", "/CN=memserve test CA");
  writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, cn] of [["server", "127.0.0.1"], ["client", "memserve test client"]] as const) {
    openssl(dir, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
    openssl(dir, "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`);
  }
  const read = (name: string): Buffer => readFileSync(join(dir, name));
  return {
    dir,
    ca: read("ca.pem"),
    clientCert: read("client.pem"),
    clientKey: read("client.key"),
    serverCert: read("server.pem"),
    serverKey: read("server.key"),
    serverCertFile: join(dir, "server.pem"),
    serverKeyFile: join(dir, "server.key"),
    caFile: join(dir, "ca.pem"),
  };
}

let pki: Pki;
let server: ServerProcess | undefined;
let unsupported = "";

before(async () => {
  pki = makePki();
  const clientOptions: ClientOptions = { rootCerts: pki.ca, clientCert: pki.clientCert, clientKey: pki.clientKey };
  try {
    server = await ServerProcess.start({
      settings: { tls_cert_file: pki.serverCertFile, tls_key_file: pki.serverKeyFile, tls_client_ca_file: pki.caFile },
      clientOptions,
    });
  } catch (error) {
    const unknown = error instanceof ServerStartError ? /unknown setting '(tls_\w+)'/.exec(error.output) : null;
    if (!unknown) throw error;
    unsupported = `this memserve has no TLS settings yet (it refused ${unknown[1]} as an unknown setting)`;
  }
});

after(async () => {
  if (server) {
    assert.equal(await server.stop(), 0);
    server.cleanup();
  }
  rmSync(pki.dir, { recursive: true, force: true });
});

async function attempt(options: ClientOptions, run: (client: MemoryClient) => Promise<unknown>,
  target = server!.target): Promise<unknown> {
  const client = new MemoryClient(target, { maxRetries: 0, ...options });
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

test("the client's TLS options against a grpc-js server that requires client certificates", async () => {
  const scripted = new ScriptedServer();
  const target = await scripted.start(ServerCredentials.createSsl(pki.ca,
    [{ cert_chain: pki.serverCert, private_key: pki.serverKey }], true));
  try {
    const trusted = { rootCerts: pki.ca, clientCert: pki.clientCert, clientKey: pki.clientKey };
    await attempt({ ...trusted, apiKey: "k" }, (c) => c.stats("tls-ns"), target);
    const [received] = scripted.received("GetStats");
    assert.equal(received?.metadata.authorization, "Bearer k");
    assert.equal(received?.metadata["memserve-namespace"], "tls-ns");
    await assert.rejects(attempt({}, (c) => c.stats(), target), UnavailableError);
    await assert.rejects(attempt({ tls: true, clientCert: pki.clientCert, clientKey: pki.clientKey }, (c) => c.stats(),
      target), UnavailableError); // the system roots do not include the throwaway CA
    await assert.rejects(attempt({ rootCerts: pki.ca }, (c) => c.stats(), target), UnavailableError);
    assert.equal(scripted.received("GetStats").length, 1);
  } finally {
    await scripted.stop();
  }
});

test("mutual TLS: a client with the CA and its certificate writes and queries", async (t) => {
  if (unsupported) return t.skip(unsupported);
  const options = { rootCerts: pki.ca, clientCert: pki.clientCert, clientKey: pki.clientKey };
  await attempt(options, async (client) => {
    assert.equal((await client.write("tls-ns", ["over TLS"])).ids.length, 1);
    assert.equal((await client.query("tls-ns", "over TLS", { mode: "dense" })).hits[0]?.episode.text, "over TLS");
  });
});

test("a TLS server refuses a plaintext client, one that does not trust its CA, and one without a certificate", async (t) => {
  if (unsupported) return t.skip(unsupported);
  await assert.rejects(attempt({}, (c) => c.stats()), UnavailableError);
  await assert.rejects(attempt({ tls: true, clientCert: pki.clientCert, clientKey: pki.clientKey }, (c) => c.stats()),
    UnavailableError); // the system roots do not include the throwaway CA
  await assert.rejects(attempt({ rootCerts: pki.ca }, (c) => c.stats()), UnavailableError);
});
