"""Serving while writing, through a real in-process gRPC server on 127.0.0.1:0 and the real SDK: waits for
the graph hold no RPC thread, overload is refused at once, shutdown is bounded. Gates at the model boundary
make every race deterministic (tests/support/gates.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from memserve_client import MemoryClient, ResourceExhaustedError

from memserve.config import Settings
from memserve.engine.memory import MemoryEngine
from memserve.server.app import MemoryServer
from tests.support.gates import LONG, GatedEmbedder, GatedExtractor, run_in_thread, wait_until


class Running:
    """A MemoryServer on its own event-loop thread, so the test drives it through the sync SDK."""

    def __init__(self, tmp_path, **overrides) -> None:
        settings = Settings(data_dir=tmp_path / "data", embedding_model="hash:64", snapshot_interval_s=0,
                            extractor="offline", summarizer="none", port=0, shutdown_grace_s=0.5)
        self.settings = settings.replace(**overrides)
        self.engine = MemoryEngine(self.settings, embedder=GatedEmbedder())
        self.engine.graph.extractor = GatedExtractor()
        self.server = MemoryServer(self.settings, engine=self.engine)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self.call(self.server.start())
        self.target = f"127.0.0.1:{self.port}"

    def call(self, coro, timeout: float = LONG):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.embedder.gate.open()
        self.extractor.gate.open()
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(LONG)

    @property
    def embedder(self) -> GatedEmbedder:
        return self.engine.embedder.inner

    @property
    def extractor(self) -> GatedExtractor:
        return self.engine.graph.extractor


@pytest.fixture()
def running(tmp_path):
    servers: list[Running] = []

    def start(**overrides) -> Running:
        servers.append(Running(tmp_path / str(len(servers)), **overrides))
        return servers[-1]

    yield start
    for s in servers:
        if s.server._server is not None:
            s.stop()


def _waiters(srv: Running, namespace: str) -> int:
    return len(srv.engine.graph._worker._waiters.get(namespace, []))


def test_waits_for_the_graph_hold_no_rpc_thread(running):
    """Defect 3: wait_for_graph parked a pool thread for up to 120 s; 16 of them starved every other call."""
    srv = running(rpc_threads=2, max_concurrent_rpcs=64)
    with MemoryClient(srv.target, timeout=LONG) as client:
        client.write("ns", ["Alice founded Acme in Berlin."], wait_for_graph=True)
        writers = [run_in_thread(lambda i=i: client.write("slow", [f"SLOWLLM note {i} about Bob."],
                                                            wait_for_graph=True)) for i in range(8)]
        srv.extractor.gate.wait_entered()
        wait_until(lambda: _waiters(srv, "slow") >= 7, "the writers to wait for the graph")
        # 8 clients wait for the graph, on 2 RPC threads: reads and writes still get through.
        assert client.query("ns", "Who founded Acme?").hits[0].episode.text == "Alice founded Acme in Berlin."
        assert client.stats("ns").namespaces[0].episode_count == 1
        assert not any(box["done"].is_set() for _, box in writers)
        srv.extractor.gate.open()
        for _, box in writers:
            assert box["done"].wait(LONG) and "error" not in box, box.get("error")


def test_overload_is_refused_at_once_and_the_server_stays_healthy(running):
    srv = running(max_concurrent_rpcs=2)
    with MemoryClient(srv.target, timeout=LONG) as client:
        client.write("ns", ["Alice founded Acme in Berlin."])
        writers = [run_in_thread(lambda i=i: client.write("slow", [f"SLOWLLM note {i}"], wait_for_graph=True))
                   for i in range(2)]
        srv.extractor.gate.wait_entered()
        wait_until(lambda: srv.server.admission.active == 2, "two calls in flight")
        with pytest.raises(ResourceExhaustedError) as err:
            client.query("ns", "Acme")
        assert "max_concurrent_rpcs" in str(err.value) and err.value.reason == "OVERLOADED"
        assert client.health() == "SERVING"  # health is not a MemoryService call: never refused
        srv.extractor.gate.open()
        for _, box in writers:
            assert box["done"].wait(LONG) and "error" not in box, box.get("error")
        assert client.query("ns", "Acme").hits
        assert srv.server.admission.active == 0 and srv.server.admission.refused == 1


def test_wait_for_graph_deadline_keeps_the_write(running):
    srv = running()
    with MemoryClient(srv.target, timeout=LONG) as client:
        from memserve_client import DeadlineExceededError

        assert client.write("ns", ["SLOWLLM Alice met Bob."]).created == (True,)
        srv.extractor.gate.wait_entered()  # the graph cannot catch up until the gate opens
        with pytest.raises(DeadlineExceededError):
            client.write("ns", ["SLOWLLM Alice met Bob."], wait_for_graph=True, timeout=2.0)
        wait_until(lambda: _waiters(srv, "ns") == 0, "the waiter to be withdrawn, not leaked")
        srv.extractor.gate.open()
        assert client.write("ns", ["SLOWLLM Alice met Bob."], wait_for_graph=True).created == (False,)


def test_shutdown_is_bounded_while_a_call_is_stuck(running):
    """Defect 7: shutdown waited without bound for a call stuck in the encoder."""
    srv = running(shutdown_grace_s=0.2)
    with MemoryClient(srv.target, timeout=LONG) as client:
        client.write("ns", ["Alice founded Acme in Berlin."])
        _, stuck = run_in_thread(lambda: client.write("ns", ["BLOCK this encode never finishes"]))
        srv.embedder.gate.wait_entered()
        srv.call(srv.server.stop())  # returns although the encode is still stuck at its gate
        assert not srv.embedder.gate.opened.is_set()
        assert stuck["done"].wait(LONG) and "error" in stuck  # the client got an error, not an ack
    srv.embedder.gate.open()
    srv.loop.call_soon_threadsafe(srv.loop.stop)
    # Nothing acknowledged was lost and the stuck write did not land.
    engine = MemoryEngine(srv.settings.replace(port=0), embedder=GatedEmbedder())
    engine.start()
    try:
        assert [e.text for e in engine.list_episodes("ns")[0]] == ["Alice founded Acme in Berlin."]
    finally:
        engine.close()


def test_a_port_in_use_is_a_one_line_error_before_the_model_loads(tmp_path):
    import subprocess
    import sys

    from tests.support.cli import occupied_port, startup_error

    with occupied_port() as port:
        # A model path that does not exist: if the server loaded the model first, the error would be about it.
        proc = subprocess.run([sys.executable, "-m", "memserve", "serve", "--data-dir", str(tmp_path / "d"),
                               "--port", str(port), "--set", "embedding_model=/nonexistent/model"],
                              capture_output=True, text=True, timeout=LONG * 2)
    error = startup_error(proc)
    assert "cannot listen on" in error and str(port) in error, proc.stderr
    assert "nonexistent" not in proc.stderr


def test_no_llm_configured_never_imports_litellm(tmp_path):
    """litellm's import took 20 s on a loaded machine: a server without an LLM must not pay it."""
    import subprocess
    import sys

    code = ("import sys, pathlib; from memserve.config import Settings; from memserve.server.app import MemoryServer;"
            "import asyncio\n"
            f"s = Settings(data_dir=pathlib.Path({str(tmp_path / 'd')!r}), embedding_model='hash:64', port=0)\n"
            "async def main():\n"
            "    srv = MemoryServer(s); await srv.start(); await srv.stop()\n"
            "asyncio.run(main())\n"
            "print(sorted(m for m in ('litellm', 'openai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=LONG * 2, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
