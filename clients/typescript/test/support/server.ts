/**
 * A real `memserve serve` subprocess on 127.0.0.1 port 0, for the node tests: the TypeScript twin of the
 * Python suite's memserve.testing.ServerProcess.
 *
 * The interpreter is $TEST_PYTHON (the Makefile sets it to the project's virtualenv), else `python3` (not a
 * MEMSERVE_* name: the server reads every MEMSERVE_* variable as a setting and refuses unknown ones); the
 * server runs from the repository root so `-m memserve` is this checkout's code. The port comes from the
 * server's "memserve listening on HOST:PORT" line (logged once it serves), and the server counts as up once
 * grpc.health.v1 answers SERVING through the SDK itself.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { MemoryClient, type ClientOptions } from "../../src/index.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
/** clients/typescript, whether this runs compiled (dist/test/support) or not (test/support). */
export const PACKAGE_ROOT = resolve(HERE, basename(resolve(HERE, "../..")) === "dist" ? "../../.." : "../..");
export const REPO_ROOT = resolve(PACKAGE_ROOT, "../..");
export const PYTHON = process.env.TEST_PYTHON || "python3";
/** Only reached when the code under test is broken: a wait then fails instead of hanging. */
export const LONG_MS = 90_000;

const LISTENING = /memserve listening on \S+:(\d+)/;

export class ServerStartError extends Error {
  constructor(message: string, readonly output: string, readonly exitCode: number | null) {
    super(`${message}:\n${output.split("\n").slice(-40).join("\n")}`);
    this.name = "ServerStartError";
  }
}

export interface ServerOptions {
  /** `--set NAME=VALUE` settings, on top of the test defaults (hash:64 embedder, offline extractor). */
  settings?: Record<string, string>;
  env?: Record<string, string>;
  /** How the health check reaches the server (TLS options for a TLS server). */
  clientOptions?: ClientOptions;
}

export class ServerProcess {
  port = 0;
  private output = "";
  private readonly waiters = new Set<() => void>();
  private exited: Promise<number | null>;

  private constructor(
    readonly dir: string,
    private readonly proc: ChildProcess,
    private readonly logFile: WriteStream,
  ) {
    for (const stream of [proc.stdout, proc.stderr]) {
      stream?.setEncoding("utf8");
      stream?.on("data", (chunk: string) => {
        this.output += chunk;
        logFile.write(chunk);
        for (const wake of [...this.waiters]) wake();
      });
    }
    this.exited = new Promise((done) => proc.on("exit", (code, signal) => {
      for (const wake of [...this.waiters]) wake();
      done(code ?? (signal ? -1 : null));
    }));
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  get dataDir(): string {
    return join(this.dir, "data");
  }

  /** Everything the server printed so far (its log: stdout and stderr). */
  log(): string {
    return this.output;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  static async start(options: ServerOptions = {}): Promise<ServerProcess> {
    const dir = mkdtempSync(join(tmpdir(), "memserve-ts-"));
    const settings = { embedding_model: "hash:64", extractor: "offline", snapshot_interval_s: "0", ...options.settings };
    const args = ["-m", "memserve", "serve", "--data-dir", join(dir, "data"), "--port", "0"];
    for (const [name, value] of Object.entries(settings)) args.push("--set", `${name}=${value}`);
    const proc = spawn(PYTHON, args, {
      cwd: REPO_ROOT,
      // Offline by default: the model boundary is the hash embedder, and litellm must not fetch its price list.
      env: { HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1", LITELLM_LOCAL_MODEL_COST_MAP: "True",
             ...process.env, PYTHONUNBUFFERED: "1", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const server = new ServerProcess(dir, proc, createWriteStream(join(dir, "server.log")));
    try {
      const match = await server.waitForOutput(LISTENING, LONG_MS);
      server.port = Number(match[1]);
      const client = new MemoryClient(server.target, options.clientOptions);
      try {
        const status = await client.health("", { timeoutMs: 30_000 });
        if (status !== "SERVING") throw new ServerStartError(`memserve is up but reports ${status}`, server.output, null);
      } finally {
        client.close();
      }
      return server;
    } catch (error) {
      await server.kill();
      server.cleanup();
      throw error;
    }
  }

  /**
   * Resolve with the first match of `pattern` in the server's output, as soon as it is printed (an event,
   * not a sleep); reject if the server exits first, or after `timeoutMs`.
   */
  waitForOutput(pattern: RegExp, timeoutMs = LONG_MS): Promise<RegExpMatchArray> {
    return new Promise((resolveMatch, reject) => {
      const check = (): void => {
        const match = this.output.match(pattern);
        if (match) {
          finish();
          resolveMatch(match);
        } else if (!this.running) {
          finish();
          reject(new ServerStartError(`memserve exited (${this.proc.exitCode ?? this.proc.signalCode}) before printing ${pattern}`,
            this.output, this.proc.exitCode));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new ServerStartError(`memserve did not print ${pattern} within ${timeoutMs} ms`, this.output, null));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Graceful: SIGTERM (drain, snapshot, checkpoint); resolves with the exit code (SIGKILL after 30 s). */
  async stop(): Promise<number | null> {
    if (this.running) {
      this.proc.kill("SIGTERM");
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 30_000);
      try {
        await this.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    const code = await this.exited;
    await this.closeLog();
    return code;
  }

  private async closeLog(): Promise<void> {
    if (!this.logFile.writableEnded) await new Promise((done) => this.logFile.end(done));
  }

  /** Crash: SIGKILL, no chance to flush anything. */
  async kill(): Promise<void> {
    if (this.running) this.proc.kill("SIGKILL");
    await this.exited;
    await this.closeLog();
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
