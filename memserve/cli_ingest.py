"""`memserve ingest`: JSONL file → WriteEpisodes batches, with optional HippoRAG OpenIE attachments.

The whole file is read and checked before the first write, with the server's own per-episode checks
(engine/validation.py, default limits), so a bad line 200 is reported as ``file:200`` and nothing is written.
A server error part-way (a limit the server was configured below the defaults, a full disk, a restart) stops
the run after the batches already acknowledged; episode ids are stable (client-supplied or a content hash),
so running the same command again writes only what is missing.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings
from .engine.validation import check_episodes, check_namespace
from .errors import InvalidArgument
from .types import EpisodeIn

if TYPE_CHECKING:  # the CLI imports the SDK only when a command needs it
    from memserve_client import MemoryClient

_KNOWN = {"id", "text", "session_id", "speaker", "time", "event_time", "metadata", "importance", "pinned"}


class IngestError(ValueError):
    pass


def parse_time(value: str | int | float, where: str) -> datetime:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise IngestError(f"{where}: time {value!r} is not ISO 8601 or epoch seconds") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=1)
def _default_settings() -> Settings:
    return Settings()


def _check_record(record: dict, where: str, seen_ids: dict[str, str]) -> None:
    """The server's checks for one episode (default limits), reported against the file's line."""
    for key, kind in (("id", str), ("session_id", str), ("speaker", str), ("pinned", bool)):
        if key in record and not isinstance(record[key], kind):
            raise IngestError(f"{where}: {key} must be a {kind.__name__}, got {type(record[key]).__name__}")
    importance = record.get("importance")
    if importance is not None and (isinstance(importance, bool) or not isinstance(importance, (int, float))):
        raise IngestError(f"{where}: importance must be a number within [0, 1]")
    episode = EpisodeIn(text=record["text"], id=record.get("id", ""), session_id=record.get("session_id", ""),
                        speaker=record.get("speaker", ""), event_time=record.get("event_time"),
                        metadata=record.get("metadata", {}),
                        importance=None if importance is None else float(importance),
                        pinned=record.get("pinned", False))
    try:
        check_episodes([episode], _default_settings())
    except InvalidArgument as exc:
        message = exc.message.replace("episodes[0].", "", 1)
        raise IngestError(f"{where}: {message}") from None
    if episode.id:
        if episode.id in seen_ids:
            raise IngestError(f"{where}: id {episode.id!r} repeats the id on {seen_ids[episode.id]}")
        seen_ids[episode.id] = where


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) for every record of the file, each checked; raises IngestError naming
    ``file:line`` at the first bad one."""
    seen_ids: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise IngestError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise IngestError(f"{where}: each line must be an object with a string 'text'")
            unknown = set(record) - _KNOWN
            if unknown:
                raise IngestError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_KNOWN)})")
            out = {k: record[k] for k in ("id", "text", "session_id", "speaker", "metadata", "importance", "pinned")
                   if k in record}
            when = record.get("time", record.get("event_time"))
            if when is not None:
                out["event_time"] = parse_time(when, where)
            if "metadata" in out:
                if not isinstance(out["metadata"], dict):
                    raise IngestError(f"{where}: metadata must be an object")
                out["metadata"] = {str(k): str(v) for k, v in out["metadata"].items()}
            _check_record(out, where, seen_ids)
            yield n, out


def ingest_file(client: MemoryClient, namespace: str, path: Path, *, openie: Path | None = None, batch_size: int = 128,
                wait_for_graph: bool = False) -> int:
    from memserve_client import Extraction, MemserveError, Triple
    from tqdm import tqdm

    from .extract import load_hipporag_openie

    try:
        check_namespace(namespace, "--namespace")
        numbered = list(read_jsonl(path))
        extractions = load_hipporag_openie(openie) if openie else {}
    except (IngestError, OSError, ValueError, KeyError) as exc:
        print(f"memserve ingest: {exc}", file=sys.stderr)
        return 2
    except InvalidArgument as exc:
        print(f"memserve ingest: {exc.message}", file=sys.stderr)
        return 2
    lines = [n for n, _ in numbered]
    records = [r for _, r in numbered]
    attached = 0
    for record in records:
        found = extractions.get(record["text"])
        if found:
            record["extraction"] = Extraction(
                entities=found.entities, triples=tuple(Triple(t.subject, t.predicate, t.object) for t in found.triples))
            attached += 1
    created = done = 0
    with tqdm(total=len(records), unit="ep", desc=f"ingest {namespace}", file=sys.stderr) as bar:
        for start in range(0, len(records), batch_size):
            batch = records[start:start + batch_size]
            try:
                result = client.write(namespace, batch, wait_for_graph=wait_for_graph)
            except MemserveError as exc:
                bar.close()
                print(f"memserve ingest: {path}:{lines[start]}-{lines[start + len(batch) - 1]}: the server refused "
                      f"this batch ({exc}); the {done} episodes before it are stored. "
                      "Fix the cause and run the same command again: ids are stable, so only what is missing "
                      "is written", file=sys.stderr)
                return 1
            created += sum(result.created)
            done += len(batch)
            bar.update(len(batch))
    note = f", {attached} with OpenIE extractions" if openie else ""
    print(f"ingested {len(records)} episodes into {namespace!r} ({created} new{note})", file=sys.stderr)
    return 0
