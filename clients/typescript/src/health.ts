/**
 * grpc.health.v1.Health/Check, which memserve serves beside MemoryService. Its two messages have one field
 * each, so they are encoded here rather than generated from a vendored copy of grpc's health.proto.
 */

import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";

import type { Rpc } from "./core.js";
import type { HealthStatus } from "./types.js";

export interface HealthCheckRequest {
  service: string;
}

const STATUS_NAMES: readonly HealthStatus[] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

export const HEALTH_CHECK: Rpc<HealthCheckRequest, HealthStatus> = {
  name: "Check",
  path: "/grpc.health.v1.Health/Check",
  defaultTimeoutMs: 10_000,
  idempotent: true,
  serialize(request) {
    const writer = new BinaryWriter();
    if (request.service) writer.uint32(10).string(request.service); // field 1, length-delimited
    return Buffer.from(writer.finish());
  },
  deserialize(bytes) {
    const reader = new BinaryReader(bytes);
    let status = 0;
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === 0) status = reader.int32();
      else reader.skip(wireType);
    }
    return STATUS_NAMES[status] ?? "UNKNOWN";
  },
};
