"""Stable episode ids: client-supplied, or a content hash so that re-sending the same write is a no-op.

The content hash covers session, speaker, event time and text: what the episode *is*. Metadata, importance and
pinned are attributes of it and are not hashed, so the same text cannot become two episodes (two identical
passages in every top-k) by a change of tag. A write that names an existing episode must therefore agree with it
on those attributes too: an exact re-send is an idempotent no-op, a different one is refused with
``EpisodeConflict`` (see ``conflicting_fields``) instead of being silently dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC

import numpy as np

from ..errors import EpisodeConflict
from ..types import DEFAULT_IMPORTANCE, Episode, EpisodeIn


def content_id(ep: EpisodeIn) -> str:
    when = ep.event_time.isoformat() if ep.event_time else ""
    payload = "\x1f".join((ep.session_id, ep.speaker, when, ep.text))
    return "ep_" + hashlib.sha256(payload.encode("utf-8", errors="surrogatepass")).hexdigest()[:32]


def episode_id(ep: EpisodeIn) -> str:
    return ep.id or content_id(ep)


def refuse_conflicts(ids: Sequence[str], episodes: Sequence[EpisodeIn], stored: Mapping[str, Episode]) -> None:
    """Raise ``EpisodeConflict`` (naming ``episodes[i].<field>``) if an episode names a ``stored`` one (by id),
    or one earlier in the same request, and differs from it; exact re-sends pass."""
    first: dict[str, int] = {}
    for i, (id_, ep) in enumerate(zip(ids, episodes, strict=True)):
        if id_ in stored:
            other: Episode | EpisodeIn = stored[id_]
            where = "the stored episode"
        elif first.setdefault(id_, i) != i:
            other = episodes[first[id_]]
            where = f"episodes[{first[id_]}] of this request"
        else:
            continue
        diff = conflicting_fields(ep, other)
        if diff:
            raise EpisodeConflict(
                f"episodes[{i}] has the id {id_} of {where} but a different {', '.join(diff)}; nothing was "
                "written. Without a client id, the id is a content hash of session_id, speaker, event_time and "
                "text, so the same text with new metadata, importance or pinned names the same episode. To "
                "change it, delete the episode and write it again, or give the new version its own id.",
                field=f"episodes[{i}].{diff[0]}")


def conflicting_fields(ep: EpisodeIn, other: Episode | EpisodeIn) -> list[str]:
    """The fields in which ``ep`` differs from ``other`` of the same id, stored or earlier in the same request
    (empty: the same write).

    An unset importance means the server default, as it did when the episode was stored; importance is a
    32-bit float in DuckDB and on the wire, so it is compared at that precision; event times compare as
    instants. A precomputed extraction is not compared: it is derived data, used only when the episode is
    first stored."""
    mine, theirs = _attributes(ep), _attributes(other)
    return [name for name, value in mine.items() if theirs[name] != value]


def _attributes(ep: Episode | EpisodeIn) -> dict[str, object]:
    importance = DEFAULT_IMPORTANCE if ep.importance is None else ep.importance
    when = ep.event_time
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return {"text": ep.text, "session_id": ep.session_id, "speaker": ep.speaker, "event_time": when,
            "metadata": dict(ep.metadata), "importance": float(np.float32(importance)), "pinned": bool(ep.pinned)}
