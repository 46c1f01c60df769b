/**
 * A real grpc-js server on 127.0.0.1:0 whose MemoryService follows a script, for testing the SDK's transport
 * side (error mapping, retries, deadlines, metadata): the twin of clients/python/tests/conftest.py.
 *
 * Each RPC follows a list of steps (respond / abort / hold); the last step repeats. Every request is recorded
 * with its metadata and the deadline the server saw.
 */

import { Metadata, Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from "@grpc/grpc-js";

import { RPCS, type RpcName } from "../../src/core.js";
import type { StatusName } from "../../src/errors.js";
import * as pb from "../../src/gen/memserve/v1/memory.js";

export interface Received {
  request: any;
  metadata: Record<string, string>;
  /** Milliseconds left until the deadline the client sent, when it sent one. */
  timeRemainingMs: number | undefined;
}

type Step = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => void | Promise<void>;

/** Resolves when a test opens it; a held call waits for it (an event, never a sleep). */
export class Gate {
  private release!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.release = resolve));
  open(): void {
    this.release();
  }
}

export const steps = {
  respond(message: object): Step {
    return (_call, callback) => callback(null, message);
  },
  abort(code: StatusName, details: string,
    extra: { reason?: string; field?: string; requestId?: string | null; statusDetails?: Buffer } = {}): Step {
    return (_call, callback) => {
      const metadata = new Metadata();
      if (extra.statusDetails) metadata.set("grpc-status-details-bin", extra.statusDetails);
      metadata.set("memserve-reason", extra.reason ?? code);
      if (extra.field) metadata.set("memserve-field", extra.field);
      if (extra.requestId !== null) metadata.set("memserve-request-id", extra.requestId ?? "req-42");
      callback({ code: status[code], details, metadata });
    };
  },
  /** Answer only once `gate` opens (the client's deadline passes first). */
  hold(gate: Gate): Step {
    return async (call, callback) => {
      await gate.opened;
      if (!call.cancelled) callback({ code: status.ABORTED, details: "held call released" });
    };
  },
};

function camel(name: RpcName): string {
  return name[0]!.toLowerCase() + name.slice(1);
}

export class ScriptedServer {
  readonly calls = new Map<RpcName, Received[]>();
  private readonly scripts = new Map<RpcName, Step[]>();
  private readonly server = new Server();
  target = "";

  script(name: RpcName, ...script: Step[]): void {
    this.scripts.set(name, script);
  }

  received(name: RpcName): Received[] {
    return this.calls.get(name) ?? [];
  }

  reset(): void {
    this.scripts.clear();
    this.calls.clear();
  }

  private handler(name: RpcName) {
    return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>): void => {
      const deadline = call.getDeadline();
      const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
      const metadata: Record<string, string> = {};
      for (const [key, value] of Object.entries(call.metadata.getMap())) metadata[key] = String(value);
      const list = this.calls.get(name) ?? [];
      list.push({
        request: call.request,
        metadata,
        timeRemainingMs: Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : undefined,
      });
      this.calls.set(name, list);
      const script = this.scripts.get(name);
      const step = script && (script.length > 1 ? script.shift() : script[0]);
      if (step) void step(call, callback);
      else callback(null, (pb as Record<string, any>)[`${name}Response`].create());
    };
  }

  /** Listen on 127.0.0.1:0 (plaintext unless `credentials` say otherwise); resolves with the target. */
  async start(credentials: ServerCredentials = ServerCredentials.createInsecure()): Promise<string> {
    const implementation: UntypedServiceImplementation = {};
    for (const name of Object.keys(RPCS) as RpcName[]) implementation[camel(name)] = this.handler(name);
    this.server.addService(pb.MemoryServiceService, implementation);
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync("127.0.0.1:0", credentials, (error, bound) =>
        (error ? reject(error) : resolve(bound))));
    this.target = `127.0.0.1:${port}`;
    return this.target;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }
}
