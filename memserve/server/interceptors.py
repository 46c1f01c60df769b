"""Cross-cutting call handling: request decoding, authorisation, error mapping and logging.

Every unary handler of MemoryService is wrapped here, so the servicer only converts and delegates:
- a request that failed to decode (``Malformed``) gets INVALID_ARGUMENT naming the field;
- the caller's key was checked from metadata by ``auth.AuthInterceptor`` before the request was read; here,
  once decoded, ``auth.authorize`` checks the request's namespace against the key's patterns;
- past ``max_concurrent_rpcs`` calls in flight, a new call gets RESOURCE_EXHAUSTED at once (before its
  request is even decoded into work), so overload is refused early instead of queued without bound;
- a ``MemserveError`` becomes its status code, with trailing metadata ``memserve-reason``, ``memserve-field``
  and ``memserve-request-id``, and a ``google.rpc.Status`` in ``grpc-status-details-bin`` (status_details.py);
- a storage failure that surfaced as a DuckDB or OS error (a full disk, an invalidated database) is mapped
  by ``storage_errors`` (``Database.note_failure``) to ``DiskFull`` / ``StorageFailed``;
- anything else is a bug: logged with a request id and returned as INTERNAL carrying that id.

Each call ends with one DEBUG line: method, request id, duration, status and the ``memserve-namespace`` header
the SDKs send (the tenant an L7 proxy routes by; ``-`` when absent).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from ..errors import InvalidArgument, MemserveError, ResourceExhausted
from .auth import authorize, new_request_id
from .status import status_code
from .status_details import error_trailers
from .wire import Malformed, safe_deserializer

log = logging.getLogger("memserve.rpc")

SERVICE_PREFIX = "/memserve.v1.MemoryService/"
NAMESPACE_KEY = "memserve-namespace"


class Admission:
    """Counts calls in flight. Only the event loop touches it (handlers are coroutines), so no lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.refused = 0

    def enter(self) -> None:
        if self.active >= self.limit:
            self.refused += 1
            raise ResourceExhausted(f"server busy: {self.active} calls in flight (max_concurrent_rpcs="
                                    f"{self.limit}); retry with back-off", reason="OVERLOADED")
        self.active += 1

    def leave(self) -> None:
        self.active -= 1


StorageErrors = Callable[[BaseException], MemserveError | None]


def _no_storage_errors(exc: BaseException) -> MemserveError | None:
    return None


def wrap_unary(method: str, behavior: Callable[..., Awaitable], admission: Admission | None = None,
               storage_errors: StorageErrors = _no_storage_errors):
    async def handler(request, context: grpc.aio.ServicerContext):
        request_id = new_request_id()
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        admitted = False
        try:
            if admission is not None:
                admission.enter()
                admitted = True
            if isinstance(request, Malformed):
                raise InvalidArgument(request.message, field=request.field, reason="MALFORMED_REQUEST")
            authorize(method, request)
            return await behavior(request, context)
        except MemserveError as exc:
            code = status_code(exc)
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                log.warning("%s refused %s: %s (peer %s, request id %s)", method, code.name, exc.message,
                            context.peer(), request_id)
            context.set_trailing_metadata(error_trailers(code, exc.message, exc.reason, request_id, exc.field))
            await context.abort(code, exc.message)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            mapped = storage_errors(exc)
            if mapped is not None:
                code = status_code(mapped)
                log.warning("%s (request id %s): %s", method, request_id, mapped.message)
                context.set_trailing_metadata(error_trailers(code, mapped.message, mapped.reason, request_id,
                                                             mapped.field))
                await context.abort(code, mapped.message)
                return None
            code = grpc.StatusCode.INTERNAL
            log.exception("internal error in %s (request id %s)", method, request_id)
            message = f"internal error (request id {request_id}); the server log has the details"
            context.set_trailing_metadata(error_trailers(grpc.StatusCode.INTERNAL, message, "INTERNAL", request_id))
            await context.abort(grpc.StatusCode.INTERNAL, message)
        finally:
            if admitted:
                admission.leave()  # type: ignore[union-attr]
            if log.isEnabledFor(logging.DEBUG):
                header = dict(context.invocation_metadata() or ()).get(NAMESPACE_KEY) or "-"
                log.debug("%s %s %.1fms %s %s=%s", method, request_id, (time.perf_counter() - started) * 1000,
                          code.name, NAMESPACE_KEY, header)

    return handler


class MemserveInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, request_types: dict[str, type], admission: Admission | None = None,
                 storage_errors: StorageErrors = _no_storage_errors) -> None:
        self._request_types = request_types
        self._admission = admission
        self._storage_errors = storage_errors

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX) or handler.unary_unary is None:
            return handler
        name = method[len(SERVICE_PREFIX):]
        return grpc.unary_unary_rpc_method_handler(
            wrap_unary(name, handler.unary_unary, self._admission, self._storage_errors),
            request_deserializer=safe_deserializer(self._request_types[name]),
            response_serializer=handler.response_serializer,
        )
