/**
 * The `google.rpc.Status` the server sends in `grpc-status-details-bin`: ErrorInfo (the reason), BadRequest (the
 * field) and RequestInfo (the request id). Read as the Python SDK reads it: details first, the plain
 * `memserve-*` trailers as the fallback (errors.ts). Only these three one- or two-field messages are needed, so
 * they are decoded here instead of generating googleapis' protos.
 */

import { BinaryReader } from "@bufbuild/protobuf/wire";

export const DETAILS_KEY = "grpc-status-details-bin";

export interface StatusDetails {
  reason?: string;
  field?: string;
  requestId?: string;
}

const TYPE_PREFIX = "type.googleapis.com/";

/** Every length-delimited field `number` of a message, as bytes (other fields skipped). */
function bytesFields(bytes: Uint8Array, number: number): Uint8Array[] {
  const reader = new BinaryReader(bytes);
  const out: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === number && wireType === 2) out.push(reader.bytes());
    else reader.skip(wireType);
  }
  return out;
}

function firstString(bytes: Uint8Array, number: number): string | undefined {
  const [value] = bytesFields(bytes, number);
  return value === undefined ? undefined : new TextDecoder().decode(value);
}

/** reason / field / requestId from the details (empty when absent or unreadable). */
export function statusDetails(raw: Uint8Array | undefined): StatusDetails {
  if (raw === undefined) return {};
  const out: StatusDetails = {};
  try {
    for (const any of bytesFields(raw, 3)) { // Status.details: repeated google.protobuf.Any
      const typeUrl = firstString(any, 1) ?? "";
      const [value = new Uint8Array()] = bytesFields(any, 2);
      const type = typeUrl.startsWith(TYPE_PREFIX) ? typeUrl.slice(TYPE_PREFIX.length) : typeUrl;
      if (type === "google.rpc.ErrorInfo") out.reason ??= firstString(value, 1) || undefined;
      else if (type === "google.rpc.RequestInfo") out.requestId ??= firstString(value, 1) || undefined;
      else if (type === "google.rpc.BadRequest") {
        const [violation] = bytesFields(value, 1); // field_violations[0].field
        out.field ??= (violation && firstString(violation, 1)) || undefined;
      }
    }
  } catch {
    return {}; // unreadable details: the plain trailers still say what happened
  }
  return out;
}
