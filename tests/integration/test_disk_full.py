"""A full disk: writes are refused with RESOURCE_EXHAUSTED / DISK_FULL and lose nothing acknowledged; a
database DuckDB invalidates makes the server stop serving and exit 75 for its supervisor to restart it.

The data directory lives on a small tmpfs (mounting needs root; without it these tests are skipped), and a
ballast file fills it to an exact amount of free space, so which failure happens does not depend on timing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memserve_client import MemoryClient, ResourceExhaustedError

from tests.support.server import ServerProcess

QUIET = {"extractor": "none", "summarizer": "none"}  # no background writes: the test decides what is written


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)], check=False, capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _free(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(mnt, leave: int = 0):
    """Fill the file system until ``leave`` bytes are free (0: completely)."""
    ballast = mnt / "ballast"
    with open(ballast, "ab") as fh:
        while (room := _free(mnt) - leave) > 0:
            try:
                fh.write(b"\0" * min(room, 1 << 20))
                fh.flush()
            except OSError:
                break
    return ballast


def _batch(n: int, size: int = 7500) -> list[str]:
    return [f"{uuid.uuid4().hex} " + os.urandom(size // 2).hex() for _ in range(n)]


def _health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status


def _stored(target: str) -> set[str]:
    with MemoryClient(target, timeout=30) as client:
        return {e.text for e in client.iter_episodes("full", page_size=500)}


def test_full_disk_refuses_writes_keeps_serving_and_recovers(small_disk, tmp_path):
    data = small_disk / "data"
    server = ServerProcess(data, settings={**QUIET, "embedding_model": "hash:64"}).start()
    acked: list[str] = []
    try:
        with MemoryClient(server.target, timeout=30) as client:
            for _ in range(3):
                texts = _batch(20)
                client.write("full", texts)
                acked += texts
            ballast = _fill(small_disk)
            refused = _batch(20)
            with pytest.raises(ResourceExhaustedError) as info:
                client.write("full", refused)
            assert info.value.reason == "DISK_FULL" and "free space" in info.value.message
            # Reads go on; health still says SERVING: the database is intact, only new writes wait.
            assert _health(server.target) == health_pb2.HealthCheckResponse.SERVING
            assert _stored(server.target) == set(acked)
            assert client.query("full", acked[0], top_k=1).hits[0].episode.text == acked[0]
            ballast.unlink()
            assert all(client.write("full", refused).created)  # space is back: the same write goes through
            acked += refused
        # SIGTERM on a full disk: the snapshot and the checkpoint cannot be written. The exit is the documented
        # code, with no traceback, and the WAL still holds every acknowledged write.
        _fill(small_disk)
        code = server.stop()
        assert code == 75, server.log_tail()
        assert "Traceback" not in server.log(), server.log_tail(80)
    finally:
        server.kill()
    (small_disk / "ballast").unlink()
    with ServerProcess(data, settings={**QUIET, "embedding_model": "hash:64"}) as again:
        assert _stored(again.target) == set(acked)


def test_invalidated_database_stops_serving_and_exits_75(small_disk, tmp_path):
    """A checkpoint that cannot be written makes DuckDB invalidate the database. A backup checkpoints on
    purpose, so it is the deterministic way to get there: the WAL holds writes, the disk has no room."""
    data = small_disk / "data"
    settings = {**QUIET, "embedding_model": "hash:64"}
    server = ServerProcess(data, settings=settings).start()
    acked: list[str] = []
    try:
        with MemoryClient(server.target, timeout=30) as client:
            for _ in range(3):
                texts = _batch(10)
                client.write("full", texts)
                acked += texts
            _fill(small_disk)
            with pytest.raises(ResourceExhaustedError) as info:
                client.admin.backup(str(tmp_path / "backup"))
            assert info.value.reason == "DISK_FULL"
            # From now on the server does not claim to serve: health says NOT_SERVING until it has gone.
            try:
                assert _health(server.target) == health_pb2.HealthCheckResponse.NOT_SERVING
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE  # already shut down
        assert server.proc is not None
        server.proc.wait(60)  # it exits on its own, for its supervisor to restart it
        assert server.proc.returncode == 75, server.log_tail(60)
        log = server.log()
        assert "DuckDB invalidated the database" in log and "exiting with status 75" in log
        assert "Traceback" not in log, server.log_tail(80)
    finally:
        server.kill()
    (small_disk / "ballast").unlink()  # space is back: the restarted server replays the WAL
    with ServerProcess(data, settings=settings) as again:
        assert _stored(again.target) == set(acked)
