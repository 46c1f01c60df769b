"""Which tokens make up an episode's lexical document: its own, plus those of the turn before it in the same
session (by seq). Shared by every backend so they index exactly the same documents."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from .base import LexicalDoc


class ContextDocs:
    def __init__(self, with_previous: bool = True) -> None:
        self.with_previous = with_previous
        self.docs: dict[int, LexicalDoc] = {}
        self._sessions: dict[str, list[int]] = {}  # session -> sorted seqs

    def _neighbours(self, doc: LexicalDoc) -> tuple[int | None, int | None]:
        if not doc.session_id:
            return None, None
        seqs = self._sessions.get(doc.session_id, [])
        i = bisect.bisect_left(seqs, doc.seq)
        before = seqs[i - 1] if i > 0 else None
        j = i + 1 if i < len(seqs) and seqs[i] == doc.seq else i
        after = seqs[j] if j < len(seqs) else None
        return before, after

    def add(self, docs: Iterable[LexicalDoc]) -> set[int]:
        """Add new docs; returns the seqs whose composed document changed (the new ones and their successors)."""
        changed: set[int] = set()
        for doc in docs:
            if doc.seq in self.docs:
                continue
            self.docs[doc.seq] = doc
            if doc.session_id:
                bisect.insort(self._sessions.setdefault(doc.session_id, []), doc.seq)
            changed.add(doc.seq)
            if self.with_previous:
                _, after = self._neighbours(doc)
                if after is not None:
                    changed.add(after)
        return changed

    def remove(self, seqs: Iterable[int]) -> tuple[set[int], set[int]]:
        """Remove docs; returns (removed seqs, surviving seqs whose composed document changed)."""
        removed: set[int] = set()
        changed: set[int] = set()
        for seq in seqs:
            doc = self.docs.pop(seq, None)
            if doc is None:
                continue
            removed.add(seq)
            if doc.session_id:
                ss = self._sessions[doc.session_id]
                i = bisect.bisect_left(ss, seq)
                del ss[i]
                if self.with_previous and i < len(ss):
                    changed.add(ss[i])
                if not ss:
                    del self._sessions[doc.session_id]
        return removed, changed - removed

    def composed(self, seq: int) -> list[str]:
        doc = self.docs[seq]
        if not self.with_previous:
            return list(doc.tokens)
        before, _ = self._neighbours(doc)
        if before is None:
            return list(doc.tokens)
        return list(doc.tokens) + list(self.docs[before].tokens)
