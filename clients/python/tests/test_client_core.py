"""The I/O-free core: the policy table, deadline/retry bookkeeping, and plans driven by hand (no server)."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from memserve_client import DeadlineExceededError, UnavailableError, _core
from memserve_client._proto import memory_pb2 as pb


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "nope"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_every_rpc_of_the_service_has_a_policy() -> None:
    service = pb.DESCRIPTOR.services_by_name["MemoryService"]
    assert set(service.methods_by_name) == set(_core.RPCS)
    for name, rpc in _core.RPCS.items():
        assert rpc.path == f"/memserve.v1.MemoryService/{name}"
        assert rpc.request_type.DESCRIPTOR is service.methods_by_name[name].input_type
        assert rpc.response_type.DESCRIPTOR is service.methods_by_name[name].output_type
        assert rpc.default_timeout > 0


def test_idempotency_table() -> None:
    assert _core.RPCS["WriteEpisodes"].idempotent and _core.RPCS["DeleteEpisodes"].idempotent
    assert not _core.RPCS["DeleteNamespace"].idempotent and not _core.RPCS["Prune"].idempotent
    dry = next(_core.prune("ns", dry_run=True, max_episodes=0, max_bytes=0, min_score=None, timeout=None))
    real = next(_core.prune("ns", dry_run=False, max_episodes=0, max_bytes=0, min_score=None, timeout=None))
    assert dry.retryable and not real.retryable


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = _core.RetryPolicy(initial_backoff=0.1, max_backoff=0.5, multiplier=2.0)
    assert [policy.backoff(n, lambda: 1.0) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.4, 0.5])
    assert policy.backoff(3, lambda: 0.25) == pytest.approx(0.1)


def _attempts(call: _core.Call, clock: FakeClock, **settings: object) -> _core.Attempts:
    config = replace(_core.make_settings(timeout=None, max_retries=3, api_key=None, max_batch=256), **settings)
    return _core.Attempts(call, config, clock=clock, rand=lambda: 1.0)


def test_deadline_resolution_order() -> None:
    query = _core.Call(_core.RPCS["Query"], pb.QueryRequest())
    assert _attempts(query, FakeClock()).timeout == 30.0
    assert _attempts(_core.Call(_core.RPCS["WriteEpisodes"], pb.WriteEpisodesRequest()), FakeClock()).timeout == 120
    assert _attempts(query, FakeClock(), timeout=5.0).timeout == 5.0  # client-wide
    per_call = _core.Call(_core.RPCS["Query"], pb.QueryRequest(), timeout=2.0)
    assert _attempts(per_call, FakeClock(), timeout=5.0).timeout == 2.0  # per call wins


def test_retries_unavailable_then_gives_up_after_max_attempts() -> None:
    clock = FakeClock()
    attempts = _attempts(_core.Call(_core.RPCS["Query"], pb.QueryRequest()), clock)
    delays = []
    with pytest.raises(UnavailableError):
        while True:
            attempts.next_timeout()
            delays.append(attempts.backoff(FakeRpcError(grpc.StatusCode.UNAVAILABLE)))
            clock.now += delays[-1]
    assert attempts.attempt == 4 and delays == pytest.approx([0.1, 0.2, 0.4])


def test_no_retry_for_other_codes_or_non_idempotent_calls() -> None:
    query = _attempts(_core.Call(_core.RPCS["Query"], pb.QueryRequest()), FakeClock())
    query.next_timeout()
    with pytest.raises(Exception) as info:
        query.backoff(FakeRpcError(grpc.StatusCode.INTERNAL))
    assert info.value.code == grpc.StatusCode.INTERNAL
    drop = _attempts(_core.Call(_core.RPCS["DeleteNamespace"], pb.DeleteNamespaceRequest()), FakeClock())
    drop.next_timeout()
    with pytest.raises(UnavailableError):
        drop.backoff(FakeRpcError(grpc.StatusCode.UNAVAILABLE))


def test_retries_stop_at_the_deadline() -> None:
    clock = FakeClock()
    attempts = _attempts(_core.Call(_core.RPCS["Query"], pb.QueryRequest(), timeout=1.0), clock)
    assert attempts.next_timeout() == pytest.approx(1.0)
    clock.now += 0.95  # a 0.1 s backoff would end past the deadline
    with pytest.raises(UnavailableError):
        attempts.backoff(FakeRpcError(grpc.StatusCode.UNAVAILABLE))
    clock.now += 1.0
    with pytest.raises(DeadlineExceededError):
        attempts.next_timeout()


def test_write_plan_chunks_and_concatenates() -> None:
    plan = _core.write("ns", [f"text {i}" for i in range(5)], wait_for_graph=True, timeout=None, max_batch=2)
    sizes = []
    call = next(plan)
    try:
        while True:
            sizes.append(len(call.request.episodes))
            assert call.request.wait_for_graph and call.request.namespace == "ns"
            ids = [e.text for e in call.request.episodes]
            call = plan.send(pb.WriteEpisodesResponse(ids=ids, created=[True] * len(ids)))
    except StopIteration as done:
        result = done.value
    assert sizes == [2, 2, 1]
    assert result.ids == tuple(f"text {i}" for i in range(5))


def test_empty_write_makes_no_call() -> None:
    plan = _core.write("ns", [], wait_for_graph=False, timeout=None, max_batch=2)
    with pytest.raises(StopIteration) as done:
        next(plan)
    assert done.value.value.ids == ()


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        _core.make_settings(timeout=0, max_retries=3, api_key=None, max_batch=1)
    with pytest.raises(ValueError):
        _core.make_settings(timeout=None, max_retries=-1, api_key=None, max_batch=1)
    settings = _core.make_settings(timeout=None, max_retries=0, api_key="k", max_batch=1)
    assert settings.metadata == (("authorization", "Bearer k"),) and settings.retry.max_attempts == 1
