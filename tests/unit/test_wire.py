from __future__ import annotations

import pytest
from memserve_client._proto import memory_pb2 as pb

from memserve.engine import paging
from memserve.errors import InvalidArgument
from memserve.server.wire import Malformed, find_bad_utf8, safe_deserializer


def _bad(msg, marker: bytes = b"MARK") -> bytes:
    return msg.SerializeToString().replace(marker, b"\xff\xfe\xfd\xfc")


@pytest.mark.parametrize("msg, path", [
    (pb.WriteEpisodesRequest(namespace="MARK"), "namespace"),
    (pb.WriteEpisodesRequest(episodes=[pb.EpisodeInput(text="a"), pb.EpisodeInput(speaker="MARK")]),
     "episodes[1].speaker"),
    (pb.WriteEpisodesRequest(episodes=[pb.EpisodeInput(metadata={"MARK": "v"})]), "episodes[0].metadata.key"),
    (pb.WriteEpisodesRequest(episodes=[pb.EpisodeInput(extraction=pb.Extraction(
        triples=[pb.Triple(subject="a", predicate="b", object="c"), pb.Triple(object="MARK")]))]),
     "episodes[0].extraction.triples[1].object"),
    (pb.QueryRequest(filter=pb.QueryFilter(session_ids=["ok", "MARK"])), "filter.session_ids[1]"),
])
def test_bad_utf8_is_located(msg, path):
    data = _bad(msg)
    assert find_bad_utf8(type(msg).DESCRIPTOR, data) == path
    result = safe_deserializer(type(msg))(data)
    assert isinstance(result, Malformed) and result.field == path


def test_good_requests_pass_through():
    msg = pb.QueryRequest(namespace="ns", text="héllo ✓", top_k=3)
    assert safe_deserializer(pb.QueryRequest)(msg.SerializeToString()) == msg


def test_page_tokens_round_trip_and_are_scoped():
    token = paging.encode("episodes", "ns", 42)
    assert paging.decode(token, "episodes", "ns", 0) == 42
    assert paging.decode("", "episodes", "ns", 0) == 0
    with pytest.raises(InvalidArgument):
        paging.decode(token, "episodes", "other-ns", 0)
    with pytest.raises(InvalidArgument):
        paging.decode(token, "namespaces", "ns", "")
    with pytest.raises(InvalidArgument):
        paging.page_size(-1)
    assert paging.page_size(0) == paging.DEFAULT_PAGE_SIZE


def test_header_values_are_printable_ascii() -> None:
    from memserve.server.wire import header_value

    assert header_value("episodes[3].text") == "episodes[3].text"
    for odd in ("a\x12b", "é\x00😀", "tab\there", "\u202e"):
        value = header_value(odd)
        assert value.isascii() and value.isprintable(), value
    assert header_value("a\x12b") == "a\\x12b"
