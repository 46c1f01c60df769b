from __future__ import annotations

import threading

import pytest

from memserve.store.db import Database, migration_files


def test_migrations_apply_once_in_order(tmp_path):
    db = Database(tmp_path / "m.duckdb")
    versions = [v for v, _, _ in migration_files()]
    assert versions == sorted(versions) and db.schema_version == versions[-1]
    db.close()
    again = Database(tmp_path / "m.duckdb")  # reopening applies nothing twice
    rows = again.reader().execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert rows == len(versions)
    again.close()


def test_failed_transaction_rolls_back(tmp_path):
    db = Database(tmp_path / "t.duckdb")
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO server_meta VALUES ('k', 'v')")
        raise RuntimeError("boom")
    assert db.reader().execute("SELECT count(*) FROM server_meta").fetchone()[0] == 0


def test_checkpoint_with_an_open_write_transaction_does_not_raise(tmp_path):
    db = Database(tmp_path / "c.duckdb")
    with db.transaction() as tx:
        tx.execute("INSERT INTO server_meta VALUES ('k', 'v')")
    other = db.reader()
    other.execute("BEGIN TRANSACTION")
    other.execute("UPDATE server_meta SET value = 'w' WHERE key = 'k'")  # DuckDB refuses CHECKPOINT now
    assert db.checkpoint() is False  # refused, logged, not raised
    other.execute("ROLLBACK")
    assert db.checkpoint() is True
    db.close()


def test_readers_are_per_thread_and_renewed_after_close_readers(tmp_path):
    db = Database(tmp_path / "r.duckdb")
    main = db.reader()
    seen = []
    t = threading.Thread(target=lambda: seen.append(db.reader()))
    t.start()
    t.join()
    assert seen[0] is not main and db.reader() is main
    db.close_readers()
    fresh = db.reader()
    assert fresh is not main and fresh.execute("SELECT 1").fetchone() == (1,)
    db.close()
