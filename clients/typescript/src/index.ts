/**
 * memserve-client: the TypeScript client for the memserve memory server.
 *
 *     import { MemoryClient } from "memserve-client";
 *     const client = new MemoryClient("127.0.0.1:50051");
 *     await client.write("agent-1", ["Alice moved to Paris in 2019."]);
 *     console.log((await client.query("agent-1", "Where does Alice live?")).context);
 *     client.close();
 */

export { MemoryClient } from "./client.js";
export type { CallOptions, ClientOptions, ExportGraphOptions, ListOptions, PruneOptions, QueryOptions, WriteOptions } from "./client.js";
export { NAMESPACE_KEY, RPC_NAMES, type RpcName } from "./core.js";
export {
  AlreadyExistsError,
  DeadlineExceededError,
  EpisodeConflictError,
  EpisodeNotFoundError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  MemserveError,
  NamespaceNotFoundError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  type StatusName,
} from "./errors.js";
export type * from "./types.js";
export { VERSION } from "./version.js";
