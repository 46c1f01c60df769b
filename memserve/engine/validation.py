"""Input validation shared by every entry point (gRPC servicer, library use, CLI).

Each check raises ``InvalidArgument`` naming the offending field with its path (``episodes[3].text``), so
a person can fix the request; nothing is written before the whole request has passed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ..config import Settings
from ..errors import InvalidArgument
from ..types import EpisodeIn, QueryFilter, QueryIn

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_MAX_ID_CHARS = 128
_MAX_SHORT_FIELD = 256
_MAX_METADATA_VALUE = 4096
_MAX_SESSION_FILTER = 1000


def check_namespace(namespace: str, field: str = "namespace") -> None:
    if not namespace:
        raise InvalidArgument("namespace is required", field=field)
    if not NAMESPACE_RE.fullmatch(namespace):  # fullmatch: "$" alone would accept a trailing newline
        raise InvalidArgument(
            f"namespace {namespace[:80]!r} is invalid: use 1-64 characters of letters, digits, '_', '.' or '-', "
            "starting with a letter or digit", field=field)


def _check_short(value: str, field: str, *, limit: int = _MAX_SHORT_FIELD, what: str | None = None) -> None:
    """``field`` is the path sent back as metadata (no user text in it); ``what`` names it in the message."""
    what = what or field
    if len(value) > limit:
        raise InvalidArgument(f"{what} is {len(value)} characters long; the limit is {limit}", field=field)
    if any(ord(c) < 32 for c in value):
        raise InvalidArgument(f"{what} contains control characters", field=field)


def check_episode_id(id_: str, field: str) -> None:
    if id_ != id_.strip():
        raise InvalidArgument(f"{field} has leading or trailing white space", field=field)
    _check_short(id_, field, limit=_MAX_ID_CHARS)


def check_episodes(episodes: Sequence[EpisodeIn], settings: Settings) -> None:
    if not episodes:
        raise InvalidArgument("episodes is empty: send at least one episode", field="episodes")
    if len(episodes) > settings.max_batch_episodes:
        raise InvalidArgument(
            f"batch of {len(episodes)} episodes is over the limit of {settings.max_batch_episodes}; "
            "split it into several calls", field="episodes", reason="BATCH_TOO_LARGE")
    seen: dict[str, int] = {}
    for i, ep in enumerate(episodes):
        prefix = f"episodes[{i}]"
        if not ep.text or not ep.text.strip():
            raise InvalidArgument(f"{prefix}.text is empty", field=f"{prefix}.text")
        nbytes = len(ep.text.encode("utf-8", errors="surrogatepass"))
        if nbytes > settings.max_text_bytes:
            raise InvalidArgument(
                f"{prefix}.text is {nbytes} bytes; the limit is {settings.max_text_bytes} "
                "(split long documents into passages)", field=f"{prefix}.text", reason="TEXT_TOO_LARGE")
        if ep.id:
            check_episode_id(ep.id, f"{prefix}.id")
            if ep.id in seen:
                raise InvalidArgument(f"{prefix}.id {ep.id!r} repeats episodes[{seen[ep.id]}].id in the same batch",
                                      field=f"{prefix}.id")
            seen[ep.id] = i
        _check_short(ep.session_id, f"{prefix}.session_id")
        _check_short(ep.speaker, f"{prefix}.speaker")
        if ep.importance is not None and not (math.isfinite(ep.importance) and 0.0 <= ep.importance <= 1.0):
            raise InvalidArgument(f"{prefix}.importance must be within [0, 1], got {ep.importance}",
                                  field=f"{prefix}.importance")
        if len(ep.metadata) > settings.max_metadata_entries:
            raise InvalidArgument(f"{prefix}.metadata has {len(ep.metadata)} entries; the limit is "
                                  f"{settings.max_metadata_entries}", field=f"{prefix}.metadata")
        for key, value in ep.metadata.items():
            if not key:
                raise InvalidArgument(f"{prefix}.metadata has an empty key", field=f"{prefix}.metadata")
            _check_short(key, f"{prefix}.metadata", what=f"{prefix}.metadata key {key[:40]!r}")
            if len(value) > _MAX_METADATA_VALUE:
                raise InvalidArgument(f"{prefix}.metadata[{key!r}] is over {_MAX_METADATA_VALUE} characters",
                                      field=f"{prefix}.metadata")
        if ep.extraction is not None:
            for j, t in enumerate(ep.extraction.triples):
                if not (t.subject.strip() and t.predicate.strip() and t.object.strip()):
                    raise InvalidArgument(f"{prefix}.extraction.triples[{j}] has an empty part",
                                          field=f"{prefix}.extraction.triples[{j}]")


def check_filter(flt: QueryFilter) -> None:
    if len(flt.session_ids) > _MAX_SESSION_FILTER:
        raise InvalidArgument(f"filter.session_ids has {len(flt.session_ids)} entries; the limit is "
                              f"{_MAX_SESSION_FILTER}", field="filter.session_ids")
    for i, s in enumerate(flt.session_ids):
        if not s:
            raise InvalidArgument(f"filter.session_ids[{i}] is empty", field=f"filter.session_ids[{i}]")
    if flt.time_start and flt.time_end and flt.time_start >= flt.time_end:
        raise InvalidArgument("filter.event_time: start must be before end", field="filter.event_time")
    for key in flt.metadata:
        if not key:
            raise InvalidArgument("filter.metadata has an empty key", field="filter.metadata")


def check_query(q: QueryIn, settings: Settings) -> None:
    check_namespace(q.namespace)
    if not q.text or not q.text.strip():
        raise InvalidArgument("text is empty: a query needs words", field="text")
    nbytes = len(q.text.encode("utf-8", errors="surrogatepass"))
    if nbytes > settings.max_text_bytes:
        raise InvalidArgument(f"text is {nbytes} bytes; the limit is {settings.max_text_bytes}", field="text")
    if q.top_k < 1 or q.top_k > settings.max_top_k:
        raise InvalidArgument(f"top_k must be within [1, {settings.max_top_k}], got {q.top_k}", field="top_k")
    if q.token_budget < 0:
        raise InvalidArgument(f"token_budget must be >= 0, got {q.token_budget}", field="token_budget")
    g = q.graph
    for name in ("damping", "passage_weight", "synonym_threshold"):
        value = getattr(g, name)
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InvalidArgument(f"graph.{name} must be within [0, 1], got {value}", field=f"graph.{name}")
    if g.damping is not None and not 0.0 < g.damping < 1.0:
        raise InvalidArgument(f"graph.damping must be within (0, 1), got {g.damping}", field="graph.damping")
    if g.fact_top_k is not None and not 1 <= g.fact_top_k <= 100:
        raise InvalidArgument(f"graph.fact_top_k must be within [1, 100], got {g.fact_top_k}",
                              field="graph.fact_top_k")
    if len(q.speaker) > 256:
        raise InvalidArgument(f"speaker is {len(q.speaker)} characters; the limit is 256", field="speaker")
    check_filter(q.filter)
