"""from_rpc_error reads google.rpc.Status details first and the memserve-* trailers as a fallback."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from memserve_client import errors


class TrailerError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, trailers: tuple) -> None:
        self._code, self._trailers = code, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "refused"

    def trailing_metadata(self) -> tuple:
        return self._trailers


def _details(reason: str, field: str | None, request_id: str) -> bytes:
    packed = []
    for msg in (error_details_pb2.ErrorInfo(reason=reason, domain="memserve"),
                error_details_pb2.BadRequest(field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=field)]) if field else None,
                error_details_pb2.RequestInfo(request_id=request_id)):
        if msg is not None:
            a = any_pb2.Any()
            a.Pack(msg)
            packed.append(a)
    return status_pb2.Status(code=7, message="refused", details=packed).SerializeToString()


def test_details_win_over_the_plain_trailers():
    err = errors.from_rpc_error(TrailerError(grpc.StatusCode.PERMISSION_DENIED, (
        ("memserve-reason", "OLD"), ("memserve-field", "old_field"), ("memserve-request-id", "old-id"),
        ("grpc-status-details-bin", _details("NAMESPACE_DENIED", "namespace", "rid-1")))))
    assert isinstance(err, errors.PermissionDeniedError)
    assert (err.reason, err.field, err.request_id) == ("NAMESPACE_DENIED", "namespace", "rid-1")


def test_plain_trailers_are_the_fallback():
    err = errors.from_rpc_error(TrailerError(grpc.StatusCode.NOT_FOUND, (
        ("memserve-reason", "EPISODE_NOT_FOUND"), ("memserve-request-id", "rid-2"))))
    assert isinstance(err, errors.EpisodeNotFoundError) and err.request_id == "rid-2" and err.field is None


def test_unreadable_details_fall_back_too():
    err = errors.from_rpc_error(TrailerError(grpc.StatusCode.UNAUTHENTICATED, (
        ("grpc-status-details-bin", b"\xff\xff not a status"), ("memserve-reason", "UNAUTHENTICATED"))))
    assert isinstance(err, errors.UnauthenticatedError) and err.reason == "UNAUTHENTICATED"
