"""`memserve backup | restore | export-namespace | import-namespace`: copy a live database, put a copy back,
and move one namespace between servers as JSONL (docs/DURABILITY.md).

The export file: a header line ``{"memserve_export": 1, "namespace", "embedding_model", "embedding_dim"}``,
then one line per episode ``{"id", "session_id", "speaker", "text", "event_time", "create_time", "metadata",
"importance", "pinned", "embedding" (base64 of little-endian float32), "extraction" ({"entities", "triples"}
or null)}``.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports the SDK only when a command needs it
    from memserve_client import MemoryClient

FORMAT = 1
_CHUNK = 256


def backup(client: MemoryClient, directory: Path) -> int:
    info = client.admin.backup(str(directory.expanduser().absolute()))
    print(f"backed up {info.size_bytes} bytes to {info.directory} (last episode seq {info.last_seq}, schema "
          f"{info.schema_version}); restore with `memserve restore {info.directory} --data-dir DIR`",
          file=sys.stderr)
    return 0


def restore(source: Path, data_dir: Path, *, force: bool) -> int:
    from .store.backup import RestoreError
    from .store.backup import restore as restore_backup

    try:
        manifest = restore_backup(source, data_dir, force=force)
    except (RestoreError, OSError) as exc:
        print(f"memserve restore: {exc}", file=sys.stderr)
        return 2
    print(f"restored the backup of {manifest.get('backup_time')} (last episode seq {manifest.get('last_seq')}) "
          f"into {data_dir}; start `memserve serve --data-dir {data_dir}` (indexes are rebuilt at its first "
          "start)", file=sys.stderr)
    return 0


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def export_namespace(client: MemoryClient, namespace: str, output: Path) -> int:
    from tqdm import tqdm

    count = 0
    tmp = output.with_name(output.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as fh, tqdm(unit="ep", desc=f"export {namespace}", file=sys.stderr) as bar:
        header_written = False
        for model, x in client.admin.iter_export(namespace):
            if not header_written:
                dim = len(x.embedding) // 4
                fh.write(json.dumps({"memserve_export": FORMAT, "namespace": namespace, "embedding_model": model,
                                     "embedding_dim": dim}) + "\n")
                header_written = True
            e = x.episode
            extraction = None if x.extraction is None else {
                "entities": list(x.extraction.entities),
                "triples": [[t.subject, t.predicate, t.object] for t in x.extraction.triples]}
            fh.write(json.dumps({
                "id": e.id, "session_id": e.session_id, "speaker": e.speaker, "text": e.text,
                "event_time": _time(e.event_time), "create_time": _time(e.create_time),
                "metadata": dict(e.metadata), "importance": e.importance, "pinned": e.pinned,
                "embedding": base64.b64encode(x.embedding).decode("ascii"), "extraction": extraction,
            }, ensure_ascii=False) + "\n")
            count += 1
            bar.update(1)
    tmp.replace(output)
    print(f"exported {count} episodes of {namespace!r} to {output}", file=sys.stderr)
    return 0


class ExportFileError(ValueError):
    pass


def _read_export(path: Path) -> tuple[dict, Iterator]:
    from memserve_client import Episode, ExportedEpisode, Extraction, Triple

    fh = open(path, encoding="utf-8")  # noqa: SIM115 - the generator below owns and closes it
    try:
        header = json.loads(fh.readline())
        if not isinstance(header, dict) or header.get("memserve_export") != FORMAT:
            raise ValueError("no memserve_export header")
    except ValueError as exc:
        fh.close()
        raise ExportFileError(f"{path}:1: not a memserve namespace export ({exc})") from None

    def when(value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    def items() -> Iterator:
        with fh:
            for n, line in enumerate(fh, 2):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    episode = Episode(id=r["id"], namespace="", session_id=r["session_id"], speaker=r["speaker"],
                                      text=r["text"], event_time=when(r["event_time"]), metadata=r["metadata"],
                                      importance=float(r["importance"]), pinned=bool(r["pinned"]),
                                      create_time=when(r["create_time"]))
                    ex = r.get("extraction")
                    extraction = None if ex is None else Extraction(
                        entities=tuple(ex["entities"]), triples=tuple(Triple(*t) for t in ex["triples"]))
                    yield n, ExportedEpisode(episode=episode, embedding=base64.b64decode(r["embedding"]),
                                             extraction=extraction)
                except (ValueError, KeyError, TypeError) as exc:
                    raise ExportFileError(f"{path}:{n}: not an exported episode ({exc!r})") from None

    return header, items()


def import_namespace(client: MemoryClient, path: Path, namespace: str | None) -> int:
    from memserve_client import MemserveError
    from tqdm import tqdm

    try:
        header, items = _read_export(path)
    except (ExportFileError, OSError) as exc:
        print(f"memserve import-namespace: {exc}", file=sys.stderr)
        return 2
    target = namespace or header["namespace"]
    created = total = 0
    chunk: list = []
    first_line = 2

    def send() -> None:
        nonlocal created, total
        result = client.admin.import_namespace(target, [x for _, x in chunk],
                                               embedding_model=header["embedding_model"])
        created += sum(result.created)
        total += len(chunk)
        bar.update(len(chunk))

    with tqdm(unit="ep", desc=f"import {target}", file=sys.stderr) as bar:
        try:
            for n, x in items:
                if not chunk:
                    first_line = n
                chunk.append((n, x))
                if len(chunk) >= _CHUNK:
                    send()
                    chunk = []
            if chunk:
                send()
        except ExportFileError as exc:
            print(f"memserve import-namespace: {exc}; the {total} episodes before it are stored (re-running "
                  "is safe: ids are kept)", file=sys.stderr)
            return 2
        except MemserveError as exc:
            print(f"memserve import-namespace: {path}:{first_line}: the server refused the batch starting here "
                  f"({exc}); the {total} episodes before it are stored (re-running is safe: ids are kept)",
                  file=sys.stderr)
            return 1
    print(f"imported {total} episodes into {target!r} ({created} new)", file=sys.stderr)
    return 0
