/**
 * One error tree for everything the SDK throws about a call, the same tree as the Python SDK's.
 *
 * The server sends a gRPC status code plus a `google.rpc.Status` in `grpc-status-details-bin` (the reason, field
 * and request id) and the same three facts as plain trailers (`memserve-reason`, `memserve-field`,
 * `memserve-request-id`); {@link fromServiceError} prefers the details, falls back to the trailers, and turns
 * them back into a typed error, as the Python SDK does. Arguments that are wrong
 * before any call is made throw `TypeError` (wrong shape) or `RangeError` (wrong value) instead.
 */

import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

import { DETAILS_KEY, statusDetails } from "./rpc_status.js";

export const REASON_KEY = "memserve-reason";
export const FIELD_KEY = "memserve-field";
export const REQUEST_ID_KEY = "memserve-request-id";

/** gRPC status names, as in the Python SDK's `grpc.StatusCode` names. */
export type StatusName = keyof typeof status;

export interface MemserveErrorOptions {
  code?: StatusName;
  reason?: string;
  field?: string;
  requestId?: string;
  cause?: unknown;
}

/**
 * Base class. `reason` is stable and machine readable; `details` is the server's message for people;
 * `message` adds the reason, field and request id, so a logged stack trace carries what an operator needs.
 */
export class MemserveError extends Error {
  readonly code: StatusName | undefined;
  readonly reason: string;
  readonly field: string | undefined;
  readonly requestId: string | undefined;
  readonly details: string;

  constructor(details: string, options: MemserveErrorOptions = {}) {
    super(describe(details, options), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = details;
    this.code = options.code;
    // Without a reason from the server the status name is the most stable thing we have.
    this.reason = options.reason || options.code || "UNKNOWN";
    this.field = options.field || undefined;
    this.requestId = options.requestId || undefined;
  }
}

function describe(details: string, { code, reason, field, requestId }: MemserveErrorOptions): string {
  const head = code ? `${code}: ${details}` : details;
  const notes: string[] = [];
  if (reason && reason !== code) notes.push(`reason ${reason}`);
  if (field) notes.push(`field ${field}`);
  // Quoting the request id lets the operator find the server log line.
  if (requestId) notes.push(`request id ${requestId}`);
  return notes.length ? `${head} (${notes.join(", ")})` : head;
}

/** The request is malformed; `field` names the offending field (e.g. `episodes[3].text`). */
export class InvalidArgumentError extends MemserveError {}
export class NotFoundError extends MemserveError {}
export class NamespaceNotFoundError extends NotFoundError {}
export class EpisodeNotFoundError extends NotFoundError {}
export class AlreadyExistsError extends MemserveError {}
export class FailedPreconditionError extends MemserveError {}
/** A write names an existing episode (its id or content id) but differs from it; nothing was written. */
export class EpisodeConflictError extends FailedPreconditionError {}
export class ResourceExhaustedError extends MemserveError {}
export class UnauthenticatedError extends MemserveError {}
export class PermissionDeniedError extends MemserveError {}
/** The server could not be reached or is overloaded; idempotent calls were already retried. */
export class UnavailableError extends MemserveError {}
export class DeadlineExceededError extends MemserveError {}
export class InternalError extends MemserveError {}

type ErrorClass = new (details: string, options?: MemserveErrorOptions) => MemserveError;

const BY_CODE: Partial<Record<StatusName, ErrorClass>> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  OUT_OF_RANGE: InvalidArgumentError,
  NOT_FOUND: NotFoundError,
  ALREADY_EXISTS: AlreadyExistsError,
  FAILED_PRECONDITION: FailedPreconditionError,
  RESOURCE_EXHAUSTED: ResourceExhaustedError,
  UNAUTHENTICATED: UnauthenticatedError,
  PERMISSION_DENIED: PermissionDeniedError,
  UNAVAILABLE: UnavailableError,
  DEADLINE_EXCEEDED: DeadlineExceededError,
  INTERNAL: InternalError,
  DATA_LOSS: InternalError,
};

// Reasons refine the class chosen by the code; only where the status code alone is ambiguous.
const BY_REASON: Record<string, ErrorClass> = {
  NAMESPACE_NOT_FOUND: NamespaceNotFoundError,
  EPISODE_NOT_FOUND: EpisodeNotFoundError,
  EPISODE_CONFLICT: EpisodeConflictError,
};

export function statusName(code: number): StatusName {
  return (status[code] as StatusName | undefined) ?? "UNKNOWN";
}

/** A grpc-js call failure (what the callback's error is), as opposed to a bug or a bad argument. */
export function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === "number"
    && (error as Partial<ServiceError>).metadata instanceof Metadata;
}

function first(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  if (value === undefined) return undefined;
  return (typeof value === "string" ? value : Buffer.from(value).toString("utf8")) || undefined;
}

/** Map a failed call to the matching error; the original is kept as `cause`. */
export function fromServiceError(error: ServiceError): MemserveError {
  const code = statusName(error.code);
  const raw = error.metadata.get(DETAILS_KEY)[0];
  const details = statusDetails(typeof raw === "string" ? undefined : raw);
  const reason = details.reason ?? first(error.metadata, REASON_KEY);
  const Class = (reason && BY_REASON[reason]) || BY_CODE[code] || MemserveError;
  return new Class(error.details || code, {
    code,
    reason,
    field: details.field ?? first(error.metadata, FIELD_KEY),
    requestId: details.requestId ?? first(error.metadata, REQUEST_ID_KEY),
    cause: error,
  });
}
