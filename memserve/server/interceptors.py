"""Cross-cutting call handling: request decoding, authentication, error mapping and logging.

Every unary handler of MemoryService is wrapped here, so the servicer only converts and delegates:
- a request that failed to decode (``Malformed``) gets INVALID_ARGUMENT naming the field;
- with an API key configured, a call without ``authorization: Bearer <key>`` gets UNAUTHENTICATED;
- past ``max_concurrent_rpcs`` calls in flight, a new call gets RESOURCE_EXHAUSTED at once (before its
  request is even decoded into work), so overload is refused early instead of queued without bound;
- a ``MemserveError`` becomes its status code, with trailing metadata ``memserve-reason``, ``memserve-field``
  and ``memserve-request-id``;
- anything else is a bug: logged with a request id and returned as INTERNAL carrying that id.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import grpc

from ..errors import InvalidArgument, MemserveError, ResourceExhausted, Unauthenticated
from .wire import Malformed, header_value, safe_deserializer

log = logging.getLogger("memserve.rpc")

SERVICE_PREFIX = "/memserve.v1.MemoryService/"


def _check_auth(context: grpc.aio.ServicerContext, api_key: str) -> None:
    if not api_key:
        return
    md = dict(context.invocation_metadata() or ())
    header = md.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else ""
    if not token or not hmac.compare_digest(token.encode(), api_key.encode()):
        raise Unauthenticated("missing or wrong API key: send metadata 'authorization: Bearer <key>'")


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


def wrap_unary(method: str, behavior: Callable[..., Awaitable], api_key: str, admission: Admission | None = None):
    async def handler(request, context: grpc.aio.ServicerContext):
        request_id = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        admitted = False
        try:
            if admission is not None:
                admission.enter()
                admitted = True
            _check_auth(context, api_key)
            if isinstance(request, Malformed):
                raise InvalidArgument(request.message, field=request.field, reason="MALFORMED_REQUEST")
            return await behavior(request, context)
        except MemserveError as exc:
            code = exc.code
            md = [("memserve-reason", exc.reason), ("memserve-request-id", request_id)]
            if exc.field:
                md.append(("memserve-field", header_value(exc.field)))
            context.set_trailing_metadata(md)
            await context.abort(exc.code, exc.message)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("internal error in %s (request id %s)", method, request_id)
            context.set_trailing_metadata([("memserve-reason", "INTERNAL"), ("memserve-request-id", request_id)])
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {request_id}); "
                                                          "the server log has the details")
        finally:
            if admitted:
                admission.leave()  # type: ignore[union-attr]
            log.debug("%s %s %.1fms %s", method, request_id, (time.perf_counter() - started) * 1000, code.name)

    return handler


class MemserveInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, api_key: str, request_types: dict[str, type], admission: Admission | None = None) -> None:
        self._api_key = api_key
        self._request_types = request_types
        self._admission = admission

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX) or handler.unary_unary is None:
            return handler
        name = method[len(SERVICE_PREFIX):]
        return grpc.unary_unary_rpc_method_handler(
            wrap_unary(name, handler.unary_unary, self._api_key, self._admission),
            request_deserializer=safe_deserializer(self._request_types[name]),
            response_serializer=handler.response_serializer,
        )
