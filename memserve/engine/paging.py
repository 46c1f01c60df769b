"""Opaque page tokens. A token is bound to the list it came from (kind, namespace, filter), so reusing it
elsewhere is an error rather than a silently wrong page."""

from __future__ import annotations

import base64
import binascii
import json

from ..errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(value: int) -> int:
    if value < 0 or value > MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be within [0, {MAX_PAGE_SIZE}], got {value}", field="page_size")
    return value or DEFAULT_PAGE_SIZE


def encode(kind: str, scope: str, position: int | str) -> str:
    raw = json.dumps({"k": kind, "s": scope, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, kind: str, scope: str, default: int | str) -> int | str:
    if not token:
        return default
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        ok = isinstance(data, dict) and data.get("k") == kind and data.get("s") == scope \
            and isinstance(data.get("p"), type(default))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise InvalidArgument("page_token is invalid: pass back the next_page_token of the previous page of "
                              "the same request, unchanged", field="page_token")
    return data["p"]
