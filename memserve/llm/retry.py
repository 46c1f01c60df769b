"""Which LLM failures are worth another try, and how long to wait before it."""

from __future__ import annotations

import random

# 408 request timeout, 409 conflict (some gateways), 429 rate limit: transient by definition.
_RETRYABLE_4XX = frozenset({408, 409, 429})


def status_of(exc: BaseException) -> int | None:
    """The HTTP-ish status litellm/openai attach to their errors (litellm maps timeouts to 408, connection
    failures to 500), or None for plain transport errors."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, timeouts, 5xx and connection failures are retried; 400/401/403/404/422 are not (the same
    request would fail the same way, and retrying a bad key only burns quota)."""
    status = status_of(exc)
    if status is not None:
        return status in _RETRYABLE_4XX or status >= 500
    # No status: a transport-level failure (socket reset, DNS, read timeout below the SDK layer).
    return isinstance(exc, (TimeoutError, ConnectionError)) or _is_transport_error(exc)


def _is_transport_error(exc: BaseException) -> bool:
    import httpx  # already imported by litellm/openai whenever we get here

    return isinstance(exc, httpx.TransportError)


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (Retry-After), when it said so in a form we can read."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:  # an HTTP date: rare for LLM APIs, and our own backoff is a fine fallback
        return None


def backoff_delay_s(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff (attempt 0 = first retry): spreads a burst of rate-limited workers
    instead of having them retry in lockstep."""
    return rng.uniform(0.0, min(cap_s, base_s * (2**attempt)))
