"""Storage failures are translated once (store/db.py): full disk, invalidated database, the commit mark."""

from __future__ import annotations

import duckdb
import pytest

from memserve.errors import DiskFull, StorageCorrupt, StorageFailed
from memserve.server.status import status_code
from memserve.store.commit_mark import CommitMark
from memserve.store.db import Database, storage_error

NO_SPACE = 'Could not write file "/d/memserve.duckdb.wal": No space left on device'


def test_lack_of_space_is_disk_full_whatever_the_layer():
    for exc in (duckdb.TransactionException(f"TransactionContext Error: Failed to commit: {NO_SPACE}"),
                duckdb.IOException(NO_SPACE), OSError(28, "No space left on device"),
                duckdb.FatalException(f"FATAL Error: Transaction COMMIT succeeded and is durable, but the "
                                      f"autocheckpoint failed. {NO_SPACE}")):
        mapped = storage_error(exc)
        assert isinstance(mapped, DiskFull) and mapped.reason == "DISK_FULL", exc
        assert status_code(mapped).name == "RESOURCE_EXHAUSTED"


def test_an_invalidated_database_is_storage_failed():
    exc = duckdb.FatalException("FATAL Error: Failed: database has been invalidated because of a previous fatal "
                                f"error. Original error: {NO_SPACE}")
    mapped = storage_error(exc)
    assert isinstance(mapped, StorageFailed) and status_code(mapped).name == "UNAVAILABLE"
    assert mapped.reason == "STORAGE_FAILED"


def test_other_errors_are_not_storage_errors():
    assert storage_error(duckdb.ConstraintException("Duplicate key")) is None
    assert storage_error(ValueError("x")) is None
    assert storage_error(OSError(13, "Permission denied")) is None


def test_first_fatal_error_marks_the_database_failed_and_calls_back_once(tmp_path):
    db = Database(tmp_path / "x.duckdb")
    seen: list = []
    db.on_fatal.append(seen.append)
    fatal = duckdb.FatalException(f"FATAL Error: Failed to create checkpoint because of error: {NO_SPACE}")
    assert isinstance(db.note_failure(fatal), DiskFull)  # the call that ran into it is told why
    db.note_failure(fatal)
    assert len(seen) == 1 and isinstance(seen[0], StorageFailed) and db.failed is seen[0]
    with pytest.raises(StorageFailed), db.transaction():
        pass
    assert db.checkpoint() is False  # logged, not raised
    db.close()


def test_a_corrupt_wal_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "x.duckdb"
    db = Database(path)
    with db.transaction() as tx:
        tx.execute("CREATE TABLE t (s VARCHAR)")
    db.checkpoint()
    with db.transaction() as tx:
        tx.execute("INSERT INTO t SELECT repeat('ab', 50) FROM range(5000)")
    wal = tmp_path / "x.duckdb.wal"
    data = bytearray(wal.read_bytes())  # as a crash would leave it (closing checkpoints it away)
    db.close()
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    wal.write_bytes(bytes(data))
    with pytest.raises(StorageCorrupt) as info:
        Database(path)
    assert str(wal) in info.value.message and "\n" not in info.value.message and "aside" in info.value.message


def test_commit_mark_warns_only_when_replay_stopped_short(tmp_path):
    mark = CommitMark(tmp_path / "m")
    assert mark.check(0) is None  # no mark yet: a fresh or older data directory
    mark.advance(10)
    mark.advance(7)  # never moves back
    again = CommitMark(tmp_path / "m")
    assert again.recorded == 10
    assert again.check(10) is None and again.check(12) is None
    warning = again.check(6)
    assert warning and "STOPPED SHORT" in warning and "seq 6" in warning and "seq 10" in warning
    again.reset(6)
    assert CommitMark(tmp_path / "m").check(6) is None
