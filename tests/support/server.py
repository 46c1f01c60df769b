"""The test suite's real server: memserve.testing.ServerProcess with fast, deterministic defaults."""

from __future__ import annotations

from pathlib import Path

from memserve.testing import ServerProcess as _ServerProcess
from tests.support.gates import SETTLE

REPO = Path(__file__).resolve().parents[2]


class ServerProcess(_ServerProcess):
    """Defaults for tests: the deterministic hash embedder, no periodic snapshots (so restarts test repair)."""

    def __init__(self, data_dir: Path, *, settings: dict[str, str] | None = None,
                 env: dict[str, str] | None = None, channel_credentials=None) -> None:
        super().__init__(data_dir, settings={"embedding_model": "hash:64", "snapshot_interval_s": "0",
                                             **(settings or {})}, env=env,
                         # Generous bounds, only reached when the server is broken: at load 20 on 2 cores a start
                         # or a graceful stop (with litellm imported) can take tens of seconds.
                         start_timeout=SETTLE, stop_timeout=SETTLE, channel_credentials=channel_credentials)
