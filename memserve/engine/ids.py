"""Stable episode ids: client-supplied, or a content hash so that re-sending the same write is a no-op."""

from __future__ import annotations

import hashlib

from ..types import EpisodeIn


def content_id(ep: EpisodeIn) -> str:
    when = ep.event_time.isoformat() if ep.event_time else ""
    payload = "\x1f".join((ep.session_id, ep.speaker, when, ep.text))
    return "ep_" + hashlib.sha256(payload.encode("utf-8", errors="surrogatepass")).hexdigest()[:32]


def episode_id(ep: EpisodeIn) -> str:
    return ep.id or content_id(ep)
