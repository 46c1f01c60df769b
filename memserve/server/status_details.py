"""Error trailers every gRPC client can read: ``memserve-*`` keys plus a ``google.rpc.Status``.

The rich status goes in ``grpc-status-details-bin`` (the standard place grpc-status / grpc-js / grpc-go read):
``ErrorInfo`` (stable ``reason``, ``domain`` "memserve"), ``BadRequest`` naming the field when there is one,
and ``RequestInfo`` with the request id that the server log quotes. The plain ``memserve-reason``,
``memserve-field`` and ``memserve-request-id`` keys stay for clients that read only metadata.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from .wire import header_value

DOMAIN = "memserve"
DETAILS_KEY = "grpc-status-details-bin"


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def error_trailers(code: grpc.StatusCode, message: str, reason: str, request_id: str,
                   field: str | None = None) -> list[tuple[str, str | bytes]]:
    details = [_pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN))]
    if field:
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=message)])))
    details.append(_pack(error_details_pb2.RequestInfo(request_id=request_id)))
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    md: list[tuple[str, str | bytes]] = [("memserve-reason", reason), ("memserve-request-id", request_id)]
    if field:
        md.append(("memserve-field", header_value(field)))  # a metadata value must be printable ASCII
    md.append((DETAILS_KEY, status.SerializeToString()))
    return md
