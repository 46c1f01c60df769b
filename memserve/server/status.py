"""The gRPC status code of each ``memserve.errors`` class: where the domain's error tree meets the transport.

``memserve.errors`` names what went wrong and stays free of grpc; this table says how it crosses the wire. A
subclass without its own row takes its nearest ancestor's (``EpisodeNotFound`` is NOT_FOUND like ``NotFound``),
so a new error class needs a row here only when its code differs from its parent's.
"""

from __future__ import annotations

import grpc

from .. import errors

STATUS_CODES: dict[type[errors.MemserveError], grpc.StatusCode] = {
    errors.MemserveError: grpc.StatusCode.INTERNAL,
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.LLMError: grpc.StatusCode.UNAVAILABLE,
    errors.Internal: grpc.StatusCode.INTERNAL,
}


def status_code(exc: errors.MemserveError) -> grpc.StatusCode:
    """The code ``exc`` is sent with: its class's row, else its nearest ancestor's."""
    for cls in type(exc).__mro__:
        code = STATUS_CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL  # not reached: MemserveError has a row
