"""One exception tree for the whole server.

Every error has a stable machine-readable ``reason``. The tree knows nothing of the transport:
``memserve.server.status`` maps each class to its gRPC status code, the server's error interceptor turns them
into statuses (with the reason and field in trailing metadata), and the SDK maps them back to its own exception
tree. Anything that is not a ``MemserveError`` is a bug and becomes INTERNAL.
"""

from __future__ import annotations


class MemserveError(Exception):
    """Base class. ``reason`` is stable across releases; ``message`` is for people."""

    reason: str = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if reason is not None:
            self.reason = reason


class InvalidArgument(MemserveError):
    reason = "INVALID_ARGUMENT"


class NotFound(MemserveError):
    reason = "NOT_FOUND"


class NamespaceNotFound(NotFound):
    reason = "NAMESPACE_NOT_FOUND"


class EpisodeNotFound(NotFound):
    reason = "EPISODE_NOT_FOUND"


class FailedPrecondition(MemserveError):
    reason = "FAILED_PRECONDITION"


class ExtractionFailed(FailedPrecondition):
    """wait_for_graph: the episodes are stored, but their graph update failed for good."""

    reason = "EXTRACTION_FAILED"


class ResourceExhausted(MemserveError):
    reason = "RESOURCE_EXHAUSTED"


class DiskFull(ResourceExhausted):
    """A write failed for lack of disk space. Nothing it carried was acknowledged; re-send it (it is
    idempotent) once space is freed."""

    reason = "DISK_FULL"


class Unauthenticated(MemserveError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(MemserveError):
    """The key is valid but may not do this (its scopes or namespace patterns do not cover the call)."""

    reason = "PERMISSION_DENIED"


class Unavailable(MemserveError):
    reason = "UNAVAILABLE"


class StorageFailed(Unavailable):
    """DuckDB invalidated the database after a fatal error (a failed checkpoint, an I/O error): nothing can
    be read or written until the process restarts, which it does by exiting (docs/DURABILITY.md)."""

    reason = "STORAGE_FAILED"


class DeadlineExceeded(MemserveError):
    reason = "DEADLINE_EXCEEDED"


class ConfigError(MemserveError):
    """Invalid settings at start-up. Never crosses the wire."""

    reason = "CONFIG_INVALID"


class StorageCorrupt(ConfigError):
    """The data directory cannot be opened as it is (a damaged WAL or database file). Never crosses the
    wire: the server refuses to start with one line naming the file and what to do."""

    reason = "STORAGE_CORRUPT"


class LLMError(MemserveError):
    """An LLM call failed after its retries (network, rate limit, bad response)."""

    reason = "LLM_FAILED"


class Internal(MemserveError):
    reason = "INTERNAL"
