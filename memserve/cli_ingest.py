"""`memserve ingest`: JSONL file → WriteEpisodes batches, with optional HippoRAG OpenIE attachments."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

_KNOWN = {"id", "text", "session_id", "speaker", "time", "event_time", "metadata", "importance", "pinned"}


class IngestError(ValueError):
    pass


def parse_time(value: str | int | float, where: str) -> datetime:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise IngestError(f"{where}: time {value!r} is not ISO 8601 or epoch seconds") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def read_jsonl(path: Path) -> Iterator[dict]:
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
            yield out


def ingest_file(client, namespace: str, path: Path, *, openie: Path | None = None, batch_size: int = 128,
                wait_for_graph: bool = False) -> int:
    from memserve_client import Extraction, Triple
    from tqdm import tqdm

    from .extract import load_hipporag_openie

    try:
        records = list(read_jsonl(path))
        extractions = load_hipporag_openie(openie) if openie else {}
    except (IngestError, OSError, ValueError, KeyError) as exc:
        print(f"memserve ingest: {exc}", file=sys.stderr)
        return 2
    attached = 0
    for record in records:
        found = extractions.get(record["text"])
        if found:
            record["extraction"] = Extraction(
                entities=found.entities, triples=tuple(Triple(t.subject, t.predicate, t.object) for t in found.triples))
            attached += 1
    created = 0
    with tqdm(total=len(records), unit="ep", desc=f"ingest {namespace}", file=sys.stderr) as bar:
        for start in range(0, len(records), batch_size):
            batch = records[start:start + batch_size]
            result = client.write(namespace, batch, wait_for_graph=wait_for_graph)
            created += sum(result.created)
            bar.update(len(batch))
    note = f", {attached} with OpenIE extractions" if openie else ""
    print(f"ingested {len(records)} episodes into {namespace!r} ({created} new{note})", file=sys.stderr)
    return 0
