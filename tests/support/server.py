"""The test suite's real server: memserve.testing.ServerProcess with fast, deterministic defaults."""

from __future__ import annotations

from pathlib import Path

from memserve.testing import ServerProcess as _ServerProcess

REPO = Path(__file__).resolve().parents[2]


class ServerProcess(_ServerProcess):
    """Defaults for tests: the deterministic hash embedder, no periodic snapshots (so restarts test repair)."""

    def __init__(self, data_dir: Path, *, settings: dict[str, str] | None = None,
                 env: dict[str, str] | None = None, channel_credentials=None) -> None:
        super().__init__(data_dir, settings={"embedding_model": "hash:64", "snapshot_interval_s": "0",
                                             **(settings or {})}, env=env, start_timeout=90.0,
                         channel_credentials=channel_credentials)
