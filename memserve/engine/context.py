"""Pack a prompt-ready context under a token budget (HEMA keeps prompts under 3,500 tokens).

Layout, in priority order: the compact summary, then the hits in rank order, then (graph mode) the supporting
facts of those hits. Whatever does not fit is dropped; the first piece that only partly fits is cut at a token
boundary and ends with an ellipsis, and packing stops there. ``build_context`` measures the *whole* text after
every addition, because BPE counts are not additive across a join, so the result can never exceed the budget
as counted by the counter it was given.

Token counting: ``load_token_counter()`` returns tiktoken's ``cl100k_base`` when the encoding file can be read
without the network, otherwise ``Utf8ByteCounter``. tiktoken downloads encodings on first use; offline that
fails (or hangs), so this module never asks tiktoken to fetch anything. It builds the encoding itself from a
local copy: tiktoken's cache (``TIKTOKEN_CACHE_DIR``/``DATA_GYM_CACHE_DIR``) or the copy litellm bundles in its
package, verified against the published SHA-256. It never writes ``os.environ`` (litellm does so on import,
which is why an already-imported litellm makes ``tiktoken.get_encoding`` work offline; we only read the file).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from memserve.domain.clock import as_utc

logger = logging.getLogger(__name__)

DEFAULT_TOKEN_BUDGET = 3_500
ELLIPSIS = "\u2026"


# ---------------------------------------------------------------------------------------------------------
# Token counters


@runtime_checkable
class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """A prefix of ``text`` ending at a token boundary, aiming for at most ``max_tokens`` tokens."""
        ...


class Utf8ByteCounter:
    """Fallback when tiktoken is unavailable: one token per UTF-8 byte.

    This is an upper bound on any byte-level BPE count (cl100k_base included: every token is at least one byte,
    so a text can never have more tokens than bytes). Ratios such as bytes/3 or bytes/4 are closer on English but
    undercount CJK, emoji, and spaced digits or punctuation ("1 2 3" is one token per two bytes), which would
    let a context overflow the model's real budget. Over-counting only makes the context shorter.
    """

    name = "utf8-bytes"

    def count(self, text: str) -> int:
        return len(text.encode("utf-8"))

    def truncate(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        data = text.encode("utf-8")[:max_tokens]
        # Dropping a partial trailing character keeps the prefix valid UTF-8 and within the byte count.
        return data.decode("utf-8", errors="ignore")


class TiktokenCounter:
    """Exact counts with a tiktoken encoding (``special`` tokens in user text are counted as plain text)."""

    def __init__(self, encoding: object) -> None:
        self._encoding = encoding
        self.name = f"tiktoken:{encoding.name}"  # type: ignore[attr-defined]

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))  # type: ignore[attr-defined]

    def truncate(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        tokens = self._encoding.encode_ordinary(text)  # type: ignore[attr-defined]
        if len(tokens) <= max_tokens:
            return text
        data = self._encoding.decode_bytes(tokens[:max_tokens])  # type: ignore[attr-defined]
        return data.decode("utf-8", errors="ignore")


# cl100k_base as published by OpenAI (tiktoken_ext/openai_public.py); the ranks file is checked by hash.
_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def load_token_counter() -> TokenCounter:
    """cl100k_base if it loads offline, else ``Utf8ByteCounter`` (logged once per call)."""
    try:
        import tiktoken
    except ImportError:
        logger.info("tiktoken is not installed; counting tokens as UTF-8 bytes (an upper bound)")
        return Utf8ByteCounter()

    # Already loaded in this process (e.g. by litellm): reuse it, no I/O.
    loaded = getattr(getattr(tiktoken, "registry", None), "ENCODINGS", {}).get("cl100k_base")
    if loaded is not None:
        return TiktokenCounter(loaded)

    for path in _cl100k_candidate_files():
        ranks = _read_ranks(path)
        if ranks is None:
            continue
        encoding = tiktoken.Encoding(
            name="cl100k_base", pat_str=_CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=_CL100K_SPECIAL
        )
        return TiktokenCounter(encoding)
    logger.info("cl100k_base is not available offline; counting tokens as UTF-8 bytes (an upper bound)")
    return Utf8ByteCounter()


def _cl100k_candidate_files() -> list[Path]:
    # tiktoken names cache entries by the SHA-1 of the download URL.
    key = hashlib.sha1(_CL100K_URL.encode()).hexdigest()
    dirs = [Path(os.environ[var]) for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR") if os.environ.get(var)]
    dirs.append(Path(tempfile.gettempdir()) / "data-gym-cache")
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it (slow, networked)
    if spec is not None and spec.submodule_search_locations:
        dirs.extend(Path(location) / "litellm_core_utils" / "tokenizers" for location in spec.submodule_search_locations)
    return [d / key for d in dirs if (d / key).is_file()]


def _read_ranks(path: Path) -> dict[bytes, int] | None:
    try:
        data = path.read_bytes()
    except OSError as err:
        logger.debug("cannot read %s: %s", path, err)
        return None
    if hashlib.sha256(data).hexdigest() != _CL100K_SHA256:
        logger.warning("ignoring %s: not the published cl100k_base file (hash mismatch)", path)
        return None
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


# ---------------------------------------------------------------------------------------------------------
# Context packing


@dataclass(frozen=True)
class ContextHit:
    """A retrieved episode as the context shows it. ``facts``: strings or (subject, predicate, object)."""

    rank: int
    text: str
    speaker: str = ""
    session_id: str = ""
    event_time: datetime | None = None
    facts: tuple[str | tuple[str, str, str], ...] = ()


HitLike = ContextHit | tuple  # a 6-tuple (rank, text, speaker, session_id, event_time, facts) is accepted too

_SUMMARY_HEADER = "Summary of the conversation so far:\n"
_HITS_HEADER = "Relevant memories:\n"
_FACTS_HEADER = "Supporting facts:\n"
_SECTION_GAP = "\n\n"


def build_context(
    summary: str,
    hits: Sequence[HitLike],
    budget_tokens: int = DEFAULT_TOKEN_BUDGET,
    counter: TokenCounter | None = None,
) -> tuple[str, int]:
    """``(context_text, tokens_used)`` with ``tokens_used == counter.count(context_text) <= budget_tokens``."""
    if budget_tokens < 0:
        raise ValueError("budget_tokens must not be negative")
    counter = counter or load_token_counter()
    packer = _Packer(counter, budget_tokens)
    ordered = sorted((_as_hit(h) for h in hits), key=lambda h: h.rank)

    if summary.strip():
        packer.add_section(_SUMMARY_HEADER, [(" ".join(summary.split()), 0)])
    if not packer.full and ordered:
        packer.add_section(_HITS_HEADER, [_format_hit(i + 1, h) for i, h in enumerate(ordered)])
    facts = _unique_facts(ordered)
    if not packer.full and facts:
        packer.add_section(_FACTS_HEADER, [(f"- {fact}", 2) for fact in facts])
    return packer.text, counter.count(packer.text)


class _Packer:
    """Appends lines while the whole text stays within budget; cuts the first line that does not fit."""

    def __init__(self, counter: TokenCounter, budget: int) -> None:
        self._counter = counter
        self._budget = budget
        self.text = ""
        self.full = budget == 0

    def _fits(self, text: str) -> bool:
        return self._counter.count(text) <= self._budget

    def add_section(self, header: str, lines: list[tuple[str, int]]) -> None:
        """``lines``: (line, label_chars): a cut line must keep more than its first ``label_chars`` characters,
        so a hit is never reduced to its "[n] (date, speaker)" label alone."""
        prefix = (self.text + _SECTION_GAP if self.text else "") + header
        for line, label_chars in lines:
            candidate = prefix + line
            if self._fits(candidate):
                self.text = candidate
                prefix = candidate + "\n"
                continue
            cut = self._longest_prefix_that_fits(prefix, line)
            if len(cut) - len(ELLIPSIS) > label_chars:
                self.text = prefix + cut
            self.full = True
            return

    def _longest_prefix_that_fits(self, prefix: str, line: str) -> str:
        """The longest token-prefix of ``line`` that, with an ellipsis, fits after ``prefix`` ("" if none)."""
        # Binary search on the prefix length in tokens; the count of prefix+cut is only roughly monotonic in the
        # cut, so the answer is re-checked by measuring the full text (the loop below keeps it honest).
        low, high = 1, self._counter.count(line)
        best = ""
        while low <= high:
            mid = (low + high) // 2
            piece = self._counter.truncate(line, mid).rstrip()
            if piece and self._fits(prefix + piece + ELLIPSIS):
                best = piece + ELLIPSIS
                low = mid + 1
            else:
                high = mid - 1
        return best


def _as_hit(hit: HitLike) -> ContextHit:
    if isinstance(hit, ContextHit):
        return hit
    rank, text, speaker, session_id, event_time, facts = hit
    return ContextHit(rank, text, speaker or "", session_id or "", event_time, tuple(facts or ()))


def _format_hit(position: int, hit: ContextHit) -> tuple[str, int]:
    # Where/when/who first: agents resolve "what did she say last week" from these, not from the text.
    labels = []
    if hit.event_time is not None:
        labels.append(as_utc(hit.event_time).strftime("%Y-%m-%d %H:%M UTC"))
    if hit.session_id:
        labels.append(f"session {hit.session_id}")
    if hit.speaker:
        labels.append(hit.speaker)
    label = f"[{position}]" + (f" ({', '.join(labels)})" if labels else "") + " "
    return label + " ".join(hit.text.split()), len(label)


def _unique_facts(hits: list[ContextHit]) -> list[str]:
    seen: set[str] = set()
    facts: list[str] = []
    for hit in hits:
        for fact in hit.facts:
            rendered = " ".join(fact) if isinstance(fact, tuple) else str(fact)
            rendered = " ".join(rendered.split())
            key = rendered.casefold()
            if rendered and key not in seen:
                seen.add(key)
                facts.append(rendered)
    return facts
