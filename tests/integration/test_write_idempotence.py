"""What re-sending a write means, end to end through the SDK (issue 13: the content id ignores metadata and
importance, and a re-send with new metadata used to be a silent no-op).

The decision: the content id stays what the episode is (session, speaker, event time, text). An exact re-send
is an idempotent no-op; a write that names an existing episode but differs from it (metadata, importance,
pinned, or text under a client id) is refused with EPISODE_CONFLICT, naming the field, and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from memserve_client import EpisodeConflictError, EpisodeInput, FailedPreconditionError, MemoryClient

TEXT = "Alice moved to Paris in 2019."


def test_an_exact_resend_is_a_no_op(client: MemoryClient) -> None:
    episode = EpisodeInput(TEXT, session_id="s1", metadata={"topic": "moves"}, importance=0.7)
    first = client.write("idem-same", [episode])
    again = client.write("idem-same", [episode])
    assert first.created == (True,) and again.created == (False,) and again.ids == first.ids
    # Unset importance is the server default: saying 0.5 explicitly is the same write.
    plain = client.write("idem-same", [EpisodeInput("Bob stayed in Rome.")])
    assert client.write("idem-same", [EpisodeInput("Bob stayed in Rome.", importance=0.5)]).created == (False,)
    assert plain.created == (True,)
    # An event time in another zone is the same instant.
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    timed = EpisodeInput("Carol flew to Oslo.", event_time=when)
    client.write("idem-same", [timed])
    shifted = EpisodeInput("Carol flew to Oslo.", event_time=when.astimezone(timezone(timedelta(hours=2))))
    assert client.write("idem-same", [shifted]).created == (False,)
    assert len(client.list("idem-same").items) == 3


@pytest.mark.parametrize(("change", "field"), [
    ({"metadata": {"topic": "travel"}}, "metadata"),
    ({"importance": 0.9}, "importance"),
    ({"pinned": True}, "pinned"),
])
def test_a_changed_attribute_is_refused_not_dropped(client: MemoryClient, change: dict, field: str) -> None:
    ns = f"idem-{field}"
    (id_,) = client.write(ns, [EpisodeInput(TEXT, metadata={"topic": "moves"}, importance=0.7)]).ids
    base = {"metadata": {"topic": "moves"}, "importance": 0.7}
    changed = EpisodeInput(TEXT, **{**base, **change})
    with pytest.raises(EpisodeConflictError) as err:
        client.write(ns, [EpisodeInput("A new episode in the same request."), changed])
    assert isinstance(err.value, FailedPreconditionError) and err.value.reason == "EPISODE_CONFLICT"
    assert err.value.field == f"episodes[1].{field}"
    assert id_ in err.value.message and "delete the episode" in err.value.message
    # The stored episode is untouched, and nothing of the refused request was written.
    stored = client.get(ns, id_)
    assert dict(stored.metadata) == {"topic": "moves"} and stored.importance == pytest.approx(0.7)
    assert [e.id for e in client.list(ns).items] == [id_]


def test_the_documented_way_to_change_an_episode(client: MemoryClient) -> None:
    (id_,) = client.write("idem-update", [EpisodeInput(TEXT, metadata={"topic": "moves"})]).ids
    client.delete("idem-update", [id_])
    result = client.write("idem-update", [EpisodeInput(TEXT, metadata={"topic": "travel"})])
    assert result.ids == (id_,) and result.created == (True,)
    assert dict(client.get("idem-update", id_).metadata) == {"topic": "travel"}


def test_a_client_id_reused_for_other_text_is_refused(client: MemoryClient) -> None:
    client.write("idem-client-id", [EpisodeInput(TEXT, id="note-1")])
    assert client.write("idem-client-id", [EpisodeInput(TEXT, id="note-1")]).created == (False,)
    with pytest.raises(EpisodeConflictError) as err:
        client.write("idem-client-id", [EpisodeInput("Alice moved to Lyon in 2021.", id="note-1")])
    assert err.value.field == "episodes[0].text"
    assert client.get("idem-client-id", "note-1").text == TEXT


def test_two_versions_in_one_request_are_refused(client: MemoryClient) -> None:
    with pytest.raises(EpisodeConflictError) as err:
        client.write("idem-one-request", [EpisodeInput(TEXT, metadata={"v": "1"}),
                                          EpisodeInput(TEXT, metadata={"v": "2"})])
    assert err.value.field == "episodes[1].metadata" and "episodes[0] of this request" in err.value.message
    # The same episode twice in one request is still fine.
    result = client.write("idem-one-request", [EpisodeInput(TEXT), EpisodeInput(TEXT)])
    assert result.created == (True, False)
