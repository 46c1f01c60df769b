"""Backups of a live database, and restoring them into a data directory.

A backup is taken inside the server, under DuckDB's write lock (``Database.transaction`` serialises every
write through it): the WAL is folded into the database file (CHECKPOINT), then the file — and the WAL, should
the checkpoint have been refused — is copied. No commit can land between the checkpoint and the end of the
copy, so the copy is exactly the database as of the call, and every write acknowledged before it is inside.
Queries keep running (they only read); writes wait for the copy.

Why a file copy and not DuckDB's ``EXPORT DATABASE``: the copy is the same DuckDB file, with its sequences,
schema version and migration history, so restoring is a copy back and the server starts as it would after a
clean stop; EXPORT writes one CSV/Parquet file per table that IMPORT must re-create schema and sequences
from, and re-encodes every embedding column on the way. Index snapshots are not copied: they are derived, and
the restored server rebuilds them from the stored embeddings at its first start (no re-encoding).

``MANIFEST.json`` beside the copy records what it is (time, last episode seq, schema version, embedder) and
each file's SHA-256, which ``restore`` checks before it writes anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import FailedPrecondition, InvalidArgument
from .commit_mark import MARK_FILE
from .db import DB_FILE, Database, storage_error

MANIFEST = "MANIFEST.json"
FORMAT = 1


@dataclass(frozen=True)
class BackupInfo:
    directory: Path
    size_bytes: int
    last_seq: int
    backup_time: datetime
    schema_version: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def backup(db: Database, directory: Path) -> BackupInfo:
    directory = Path(directory)
    if not directory.is_absolute():
        raise InvalidArgument(f"directory {str(directory)!r} must be an absolute path on the server's machine",
                              field="directory")
    if directory.resolve() == db.path.parent.resolve():
        raise InvalidArgument("directory is the server's own data directory", field="directory")
    if (directory / MANIFEST).exists() or (directory / DB_FILE).exists():
        raise FailedPrecondition(f"{directory} already holds a backup: choose a new directory",
                                 field="directory", reason="BACKUP_EXISTS")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgument(f"cannot create {directory}: {exc}", field="directory") from None
    files: dict[str, str] = {}
    with db.exclusive():  # the write lock: no commit until the copy is complete
        cur = db.reader()
        row = cur.execute("SELECT value FROM server_meta WHERE key = 'embedder'").fetchone()
        embedder = "" if row is None else str(row[0])
        last_seq = db.max_seq()
        version = db.schema_version
        db.checkpoint_locked()
        for suffix in ("", ".wal"):
            src = Path(str(db.path) + suffix)
            if src.exists() and src.stat().st_size:
                try:
                    _copy(src, directory / src.name)
                except OSError as exc:
                    for name in (*files, src.name):  # no half backup that restore could mistake for one
                        (directory / name).unlink(missing_ok=True)
                    raise (storage_error(exc) or InvalidArgument(f"cannot write {directory}: {exc}",
                                                                 field="directory")) from exc
                files[src.name] = _sha256(directory / src.name)
    now = datetime.now(UTC)
    manifest = {"format": FORMAT, "backup_time": now.isoformat(), "last_seq": last_seq,
                "schema_version": version, "embedder": embedder, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    size = sum((directory / name).stat().st_size for name in files)
    return BackupInfo(directory, size, last_seq, now, version)


class RestoreError(Exception):
    pass


def restore(source: Path, data_dir: Path, *, force: bool = False) -> dict:
    """Copy a backup into ``data_dir`` (which must hold no database unless ``force``); returns the manifest."""
    source, data_dir = Path(source), Path(data_dir)
    try:
        manifest = json.loads((source / MANIFEST).read_text())
        files: dict[str, str] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RestoreError(f"{source} is not a memserve backup ({MANIFEST}: {exc})") from None
    if DB_FILE not in files:
        raise RestoreError(f"{source}/{MANIFEST} lists no {DB_FILE}")
    for name, expected in files.items():
        path = source / name
        if not path.exists():
            raise RestoreError(f"{path} is missing: the backup is incomplete")
        if _sha256(path) != expected:
            raise RestoreError(f"{path} does not match the checksum in {MANIFEST}: the backup is damaged")
    if (data_dir / DB_FILE).exists() and not force:
        raise RestoreError(f"{data_dir} already holds a database: stop its server and restore into an empty "
                           "directory, or pass --force to replace it")
    data_dir.mkdir(parents=True, exist_ok=True)
    # Whatever belonged to the database being replaced: its WAL, index snapshots and commit mark.
    for stale in (data_dir / f"{DB_FILE}.wal", data_dir / MARK_FILE):
        stale.unlink(missing_ok=True)
    shutil.rmtree(data_dir / "indexes", ignore_errors=True)
    for name in files:
        _copy(source / name, data_dir / name)
    return manifest
