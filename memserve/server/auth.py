"""Who may call what: authentication from call metadata, before any request byte is read; namespace checks
once the request is decoded.

Two stages, because they need different things:
1. ``AuthInterceptor`` (outermost interceptor) sees only the method name and the metadata. It looks the bearer
   token up in the ``KeyRing`` and checks the method's scope (``RPC_SCOPES``). A call that fails gets a handler
   that aborts at once without reading the request stream, so an unauthenticated 60 MB message is refused
   UNAUTHENTICATED after one HTTP/2 window, not received, parsed and held first (and never RESOURCE_EXHAUSTED
   for being too large: its size is never learnt). A call that passes runs with its ``Principal`` in a
   context variable.
2. ``authorize`` (called by the call wrapper in interceptors.py, after decoding) checks the request's
   ``namespace`` against the principal's patterns. ListNamespaces and GetStats over all namespaces are not
   refused but filtered, by the servicer, through ``current_principal().may_see``.

Health checks are always open (load balancers and orchestrators send no keys). Reflection needs a valid key
when keys are configured, unless ``reflection_without_key``.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Mapping

import grpc
from google.protobuf.message import Message

from ..errors import MemserveError, PermissionDenied, Unauthenticated
from .keys import OPEN, KeyRing, Principal, Scope
from .observability import REQUEST_ID
from .status import status_code
from .status_details import error_trailers

log = logging.getLogger("memserve.auth")

SERVICE_PREFIX = "/memserve.v1.MemoryService/"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")

# The one table of what each RPC needs. A method missing here (a new RPC, another service) needs ADMIN.
RPC_SCOPES: Mapping[str, Scope] = {
    "Query": Scope.READ,
    "GetEpisode": Scope.READ,
    "ListEpisodes": Scope.READ,
    "GetStats": Scope.READ,
    "ListNamespaces": Scope.READ,
    "GetSummary": Scope.READ,
    "ExportGraph": Scope.READ,
    "WriteEpisodes": Scope.WRITE,
    "DeleteEpisodes": Scope.WRITE,
    "DeleteNamespace": Scope.ADMIN,
    "Prune": Scope.ADMIN,
    # A copy of the whole database on the server's disk; every embedding of a namespace; writes as-is.
    "BackupDatabase": Scope.ADMIN,
    "ExportNamespace": Scope.ADMIN,
    "ImportNamespace": Scope.ADMIN,
}
# RPCs whose answer spans namespaces: filtered to what the key may see instead of refused.
FILTERED = frozenset({"ListNamespaces", "GetStats"})

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("memserve_principal", default=None)


def scope_for(method: str) -> Scope:
    """``method``: the full path (/pkg.Service/Method)."""
    if method.startswith(SERVICE_PREFIX):
        return RPC_SCOPES.get(method[len(SERVICE_PREFIX):], Scope.ADMIN)
    return Scope.ADMIN


def current_principal() -> Principal | None:
    return _principal.get()


def new_request_id() -> str:
    """The current call's id (set by the observability interceptor, so the access log and the error trailers
    agree), or a fresh one."""
    return REQUEST_ID.get() or uuid.uuid4().hex[:16]


def bearer_token(metadata) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value[:7].lower() == "bearer ":
            return value[7:].strip()
    return ""


def authorize(method: str, request: Message) -> Principal:
    """Check the decoded request against the caller's namespace patterns; ``method`` is the bare name."""
    principal = _principal.get()
    if principal is None:  # the call bypassed AuthInterceptor: refuse rather than run unchecked
        raise Unauthenticated("no credentials were checked for this call")
    if method in FILTERED and not getattr(request, "namespace", ""):
        return principal
    if "namespace" in request.DESCRIPTOR.fields_by_name and request.namespace:
        namespace = request.namespace
        if not principal.may_see(namespace):
            raise PermissionDenied(f"key {principal.name!r} may not use namespace {namespace[:80]!r}",
                                   field="namespace", reason="NAMESPACE_DENIED")
    elif not principal.all_namespaces:
        # No namespace named: the call spans the server, so only a key for every namespace may make it.
        raise PermissionDenied(f"key {principal.name!r} is limited to some namespaces; {method} without a "
                               "namespace needs a key for '*'", field="namespace", reason="NAMESPACE_DENIED")
    return principal


def _reject(method: str, code: grpc.StatusCode, message: str, reason: str) -> grpc.RpcMethodHandler:
    """A handler that never reads the request stream: it answers with the status at once."""
    request_id = new_request_id()
    trailers = error_trailers(code, message, reason, request_id)

    async def abort(request_iterator, context: grpc.aio.ServicerContext) -> None:
        log.warning("%s refused %s: %s (peer %s, request id %s)", method, code.name, message, context.peer(),
                    request_id)
        await context.abort(code, message, trailing_metadata=tuple(trailers))

    return grpc.stream_stream_rpc_method_handler(abort)


def _with_principal(method: str, handler: grpc.RpcMethodHandler, principal: Principal) -> grpc.RpcMethodHandler:
    """Run the handler with ``principal`` in the context. Unary calls are checked against their namespace by
    the call wrapper in interceptors.py; streaming RPCs of MemoryService (none yet; a backup stream may come)
    are checked here: a unary-request stream by its request's namespace, a client stream (whose requests
    arrive later) only for keys that cover every namespace."""
    ours = method.startswith(SERVICE_PREFIX)
    name = method[len(SERVICE_PREFIX):]

    if handler.unary_unary is not None:
        inner = handler.unary_unary

        async def unary(request, context):
            token = _principal.set(principal)
            try:
                return await inner(request, context)
            finally:
                _principal.reset(token)

        return grpc.unary_unary_rpc_method_handler(unary, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)
    if not ours:
        return handler
    async def check(request, context) -> None:
        try:
            if request is None:  # a client stream: its requests come later
                if not principal.all_namespaces:
                    raise PermissionDenied(f"key {principal.name!r} is limited to some namespaces; {name} "
                                           "needs a key for '*'", field="namespace", reason="NAMESPACE_DENIED")
            else:
                authorize(name, request)
        except MemserveError as exc:
            request_id = new_request_id()
            code = status_code(exc)
            log.warning("%s refused %s: %s (peer %s, request id %s)", method, code.name, exc.message,
                        context.peer(), request_id)
            await context.abort(code, exc.message, trailing_metadata=tuple(
                error_trailers(code, exc.message, exc.reason, request_id, exc.field)))

    async def relay(result):
        if hasattr(result, "__aiter__"):
            async for item in result:
                yield item
        else:  # a coroutine that writes with context.write
            await result

    def streaming_response(inner, request_streams: bool):
        async def behavior(request, context):
            token = _principal.set(principal)
            try:
                await check(None if request_streams else request, context)
                async for item in relay(inner(request, context)):
                    yield item
            finally:
                _principal.reset(token)
        return behavior

    opts = {"request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer}
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming_response(handler.unary_stream, False), **opts)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(streaming_response(handler.stream_stream, True), **opts)
    client_stream = handler.stream_unary

    async def stream_unary(request_iterator, context):
        token = _principal.set(principal)
        try:
            await check(None, context)
            return await client_stream(request_iterator, context)
        finally:
            _principal.reset(token)

    return grpc.stream_unary_rpc_method_handler(stream_unary, **opts)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: KeyRing, *, reflection_without_key: bool = False) -> None:
        self.keys = keys
        self._reflection_open = reflection_without_key

    async def intercept_service(self, continuation, handler_call_details):
        method: str = handler_call_details.method
        if method.startswith(HEALTH_PREFIX):
            return await continuation(handler_call_details)
        if not self.keys.enabled:
            principal = OPEN
        elif self._reflection_open and method.startswith(REFLECTION_PREFIXES):
            return await continuation(handler_call_details)
        else:
            token = bearer_token(handler_call_details.invocation_metadata)
            found = self.keys.lookup(token)
            if found is None:
                why = "missing API key" if not token else "unknown API key"
                return _reject(method, grpc.StatusCode.UNAUTHENTICATED,
                               f"{why}: send metadata 'authorization: Bearer <key>'", "UNAUTHENTICATED")
            principal = found
            if not method.startswith(REFLECTION_PREFIXES):  # reflection: any valid key
                scope = scope_for(method)
                if not principal.has(scope):
                    return _reject(method, grpc.StatusCode.PERMISSION_DENIED,
                                   f"key {principal.name!r} lacks the {scope.value!r} scope this call needs",
                                   "SCOPE_DENIED")
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return _with_principal(method, handler, principal)
