"""Per-namespace lexical indexes (BM25), speakers and event times, derived from DuckDB.

Nothing is persisted: ``load_all`` rebuilds every namespace from the episodes table at start-up, so after a
crash (or any lost update) the channel agrees with the database by construction. Writes add inside their
DuckDB transaction (like the FAISS add, so a delete cannot slip in between) and are taken out again when the
commit fails; deletes and pruning remove after their commit. One lock per namespace: scoring a query holds it
for the scoring only (well under a millisecond on chat-sized namespaces).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from ..lexical import LexicalDoc, LexicalIndex, make_lexical_index, tokenize
from ..store import episodes_repo
from ..store.db import Database


@dataclass
class _Entry:
    index: LexicalIndex
    lock: threading.Lock = field(default_factory=threading.Lock)
    speaker_of: dict[int, str] = field(default_factory=dict)
    speakers: Counter[str] = field(default_factory=Counter)
    event_time: dict[int, float] = field(default_factory=dict)  # seq -> POSIX seconds (episodes that have one)


Row = tuple[int, str, str, str, "datetime | None"]  # seq, session_id, speaker, text, event_time


class LexicalRegistry:
    def __init__(self, db: Database, *, k1: float, b: float, with_previous: bool) -> None:
        self._db = db
        self._k1, self._b, self._with_previous = k1, b, with_previous
        self._entries: dict[str, _Entry] = {}
        self._registry_lock = threading.Lock()

    def _new(self) -> _Entry:
        return _Entry(make_lexical_index("inverted", k1=self._k1, b=self._b, with_previous=self._with_previous))

    def _entry(self, namespace: str, create: bool) -> _Entry | None:
        with self._registry_lock:
            entry = self._entries.get(namespace)
            if entry is None and create:
                entry = self._entries[namespace] = self._new()
            return entry

    def load_all(self, namespaces: Iterable[str]) -> int:
        total = 0
        for ns in namespaces:
            total += self.reload(ns)
        return total

    def reload(self, namespace: str) -> int:
        """Rebuild one namespace from DuckDB (start-up, or after a rolled-back namespace drop)."""
        entry = self._new()
        rows = episodes_repo.lexical_rows(self._db.reader(), namespace)
        self._fill(entry, rows)
        with self._registry_lock:
            if rows:
                self._entries[namespace] = entry
            else:
                self._entries.pop(namespace, None)
        return len(rows)

    @staticmethod
    def _fill(entry: _Entry, rows: Sequence[Row]) -> None:
        entry.index.add(LexicalDoc(seq, session, tuple(tokenize(text))) for seq, session, _, text, _ in rows)
        for seq, _, speaker, _, when in rows:
            if seq not in entry.speaker_of:
                entry.speaker_of[seq] = speaker
                if speaker:
                    entry.speakers[speaker] += 1
                if when is not None:
                    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
                    entry.event_time[seq] = aware.timestamp()

    def add(self, namespace: str, rows: Sequence[Row]) -> None:
        """Idempotent by seq."""
        if not rows:
            return
        entry = self._entry(namespace, create=True)
        assert entry is not None
        with entry.lock:
            self._fill(entry, rows)

    def remove(self, namespace: str, seqs: Iterable[int]) -> None:
        entry = self._entry(namespace, create=False)
        if entry is None:
            return
        seqs = [int(s) for s in seqs]
        with entry.lock:
            entry.index.remove(seqs)
            for seq in seqs:
                entry.event_time.pop(seq, None)
                speaker = entry.speaker_of.pop(seq, None)
                if speaker:
                    entry.speakers[speaker] -= 1
                    if entry.speakers[speaker] <= 0:
                        del entry.speakers[speaker]

    def drop(self, namespace: str) -> None:
        with self._registry_lock:
            self._entries.pop(namespace, None)

    def search(self, namespace: str, text: str, k: int,
               allowed: Collection[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        entry = self._entry(namespace, create=False)
        if entry is None:
            return np.zeros(0, np.int64), np.zeros(0)
        tokens = tokenize(text)
        with entry.lock:
            return entry.index.search(tokens, k, allowed)

    def speakers(self, namespace: str) -> list[str]:
        entry = self._entry(namespace, create=False)
        if entry is None:
            return []
        with entry.lock:
            return list(entry.speakers)

    def speaker_seqs(self, namespace: str, speaker: str) -> set[int]:
        entry = self._entry(namespace, create=False)
        if entry is None:
            return set()
        want = speaker.casefold()
        with entry.lock:
            return {seq for seq, s in entry.speaker_of.items() if s.casefold() == want}

    def seqs_in_window(self, namespace: str, start: datetime, end: datetime) -> set[int]:
        """Episodes whose event time falls in [start, end)."""
        entry = self._entry(namespace, create=False)
        if entry is None:
            return set()
        lo, hi = start.timestamp(), end.timestamp()
        with entry.lock:
            return {seq for seq, t in entry.event_time.items() if lo <= t < hi}

    def size(self, namespace: str) -> int:
        entry = self._entry(namespace, create=False)
        if entry is None:
            return 0
        with entry.lock:
            return len(entry.index)
