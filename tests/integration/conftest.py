from __future__ import annotations

import pytest
from memserve_client import MemoryClient

from tests.support.gates import LONG
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("srv") / "data", settings={"max_batch_episodes": "50"})
    with proc:
        yield proc


@pytest.fixture()
def client(server):
    with MemoryClient(server.target, timeout=LONG) as c:
        yield c
