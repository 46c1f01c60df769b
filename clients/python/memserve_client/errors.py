"""One exception tree for everything the SDK raises about a call.

The server sends a gRPC status code plus a ``google.rpc.Status`` in ``grpc-status-details-bin`` (ErrorInfo with
the reason, BadRequest with the field, RequestInfo with the request id) and the same three facts as plain
trailing metadata (``memserve-reason``, ``memserve-field``, ``memserve-request-id``). :func:`from_rpc_error`
prefers the details and falls back to the plain keys, and turns them back into a typed exception, the same way for the
sync (``grpc.RpcError``) and the asyncio (``grpc.aio.AioRpcError``) transports. Arguments that are wrong before
any call is made (an unknown query mode, a naive type mix-up) raise ``ValueError`` / ``TypeError`` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"
REASON_KEY = "memserve-reason"
FIELD_KEY = "memserve-field"
REQUEST_ID_KEY = "memserve-request-id"


class MemserveError(Exception):
    """Base class. ``reason`` is stable and machine readable; ``message`` is for people."""

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        field: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        # Without a reason from the server the status name is the most stable thing we have.
        self.reason = reason or (code.name if code is not None else "UNKNOWN")
        self.field = field
        self.request_id = request_id

    def __str__(self) -> str:
        head = f"{self.code.name}: {self.message}" if self.code is not None else self.message
        notes = []
        if self.code is None or self.reason != self.code.name:
            notes.append(f"reason {self.reason}")
        if self.field:
            notes.append(f"field {self.field}")
        if self.request_id:
            # Quoting the request id lets the operator find the server log line.
            notes.append(f"request id {self.request_id}")
        return f"{head} ({', '.join(notes)})" if notes else head

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code}, reason={self.reason!r}, "
            f"field={self.field!r}, request_id={self.request_id!r})"
        )


class InvalidArgumentError(MemserveError):
    """The request is malformed; ``field`` names the offending field (e.g. ``episodes[3].text``)."""


class NotFoundError(MemserveError):
    pass


class NamespaceNotFoundError(NotFoundError):
    pass


class EpisodeNotFoundError(NotFoundError):
    pass


class AlreadyExistsError(MemserveError):
    pass


class FailedPreconditionError(MemserveError):
    pass


class ResourceExhaustedError(MemserveError):
    pass


class UnauthenticatedError(MemserveError):
    pass


class PermissionDeniedError(MemserveError):
    pass


class UnavailableError(MemserveError):
    """The server could not be reached or is overloaded; idempotent calls were already retried."""


class DeadlineExceededError(MemserveError):
    pass


class InternalError(MemserveError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[MemserveError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.DATA_LOSS: InternalError,
}

# Reasons refine the class chosen by the code; only where the status code alone is ambiguous.
_BY_REASON: dict[str, type[MemserveError]] = {
    "NAMESPACE_NOT_FOUND": NamespaceNotFoundError,
    "EPISODE_NOT_FOUND": EpisodeNotFoundError,
}


def _metadata_dict(metadata: Any) -> dict[str, str]:
    # Sync calls give a tuple of (key, value) pairs, aio calls a grpc.aio.Metadata; both iterate as pairs.
    out: dict[str, str] = {}
    for key, value in metadata or ():
        if key.endswith("-bin"):
            continue
        out.setdefault(key, value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return out


def _status_details(metadata: Any) -> dict[str, str]:
    """reason / field / request_id from a google.rpc.Status in the trailers (empty if none or unreadable)."""
    raw = next((v for k, v in metadata or () if k == DETAILS_KEY), None)
    if not isinstance(raw, bytes):
        return {}
    try:
        status = status_pb2.Status.FromString(raw)
    except DecodeError:
        return {}
    out: dict[str, str] = {}
    pick: Callable[[Any], str]  # the type of the lambdas below
    for detail in status.details:
        for key, cls, pick in (
            ("reason", error_details_pb2.ErrorInfo, lambda m: m.reason),
            ("field", error_details_pb2.BadRequest,
             lambda m: m.field_violations[0].field if m.field_violations else ""),
            ("request_id", error_details_pb2.RequestInfo, lambda m: m.request_id),
        ):
            if detail.Is(cls.DESCRIPTOR):
                message = cls()
                detail.Unpack(message)
                if pick(message):
                    out.setdefault(key, pick(message))
    return out


def from_rpc_error(error: grpc.RpcError) -> MemserveError:
    """Map a failed call (sync or aio) to the matching exception; the caller raises it ``from error``."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    trailers = error.trailing_metadata()
    details = _status_details(trailers)
    metadata = _metadata_dict(trailers)
    reason = details.get("reason") or metadata.get(REASON_KEY) or None
    cls = _BY_REASON.get(reason or "") or _BY_CODE.get(code, MemserveError)
    return cls(
        message,
        code=code,
        reason=reason,
        field=details.get("field") or metadata.get(FIELD_KEY) or None,
        request_id=details.get("request_id") or metadata.get(REQUEST_ID_KEY) or None,
    )
