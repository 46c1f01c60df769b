"""Hypothesis strategies built from protobuf descriptors: any well-typed message, and raw bytes that are not one.

``message(descriptor)`` draws a message of that type field by field: strings from a mix of plain, empty, huge
and odd unicode (plus a few valid namespace names and ids, so requests get past the first check and reach
deeper code); integers at and around their type's extremes; floats including NaN and infinities; enums with
unknown numbers; nested messages (Timestamps with out-of-range seconds and nanos included); repeated and map
fields. ``raw_request(descriptor)`` draws bytes that are *not* a valid message of that type: random bytes, a
valid message with bytes flipped or cut, and a valid message whose string field holds invalid UTF-8.

Nothing here knows the memserve API: new RPCs and fields are covered as soon as they are in the descriptor.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

F = FieldDescriptor
HUGE = 300_000  # characters: above the default per-text limit, below the default message size limit

_INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1), F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1), F.TYPE_SINT64: (-(2**63), 2**63 - 1), F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}

# Valid-looking values first, so a good share of requests pass validation and exercise the engine.
_NAMES = ["fz", "fuzz-a", "fuzz.b_1", "A", "0" * 64]
ODD = ["", " ", "\x00", "\t\n", "a\x00b", "\u200b", "\u202e evil", "\ufeff", "😀" * 50, "ｆｕｌｌ",
       "\U0010ffff", "e\u0301" * 20, "null", "../../etc/passwd", "' OR 1=1 --", "%s%n", "\\", "a" * 65]


def text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(_NAMES + ODD),
        st.text(max_size=40),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
        st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "😀", " ", "\x01"]),
                  st.sampled_from([1_000, 70_000, HUGE])),
    )


def integer(field_type: int) -> st.SearchStrategy[int]:
    lo, hi = _INT_RANGES[field_type]
    edges = sorted({lo, hi, 0, 1, -1 if lo < 0 else 2, 100, 1000, 5000, min(2**31 - 1, hi)})
    return st.one_of(st.sampled_from([e for e in edges if lo <= e <= hi]), st.integers(lo, hi))


def floating(field: FieldDescriptor) -> st.SearchStrategy[float]:
    width = 32 if field.type == F.TYPE_FLOAT else 64
    return st.one_of(st.sampled_from([0.0, -0.0, 0.5, 1.0, -1.0, 1e38, -1e38, float("nan"), float("inf"),
                                      float("-inf")]),
                     st.floats(width=width))


def enum(field: FieldDescriptor) -> st.SearchStrategy[int]:
    known = [v.number for v in field.enum_type.values]
    return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))


# String fields whose name says they hold a namespace or an id: mostly drawn from values that exist on the
# fuzzed server, so the rest of the request reaches the engine instead of stopping at the first check.
NAMED = {"namespace": ["fz", "fz", "fz", "fuzz-a"], "id": ["A", "fz", "nope"], "ids": ["A", "fz", "nope"],
         "session_id": ["s", "fz", ""], "summary_session_id": ["s", ""], "session_ids": ["s", "fz"]}


# String fields that name a file or directory on the server (a backup target, say) must never get an arbitrary
# absolute path: the fuzzer would have the server write wherever it drew. They get odd values that are no
# usable path, or paths under PATH_ROOT (a temporary directory the test sets with set_path_root).
PATH_ROOT: list[str] = []
_PATH_NAMES = ("path", "dir", "directory", "file", "filename", "folder")


def set_path_root(root: str) -> None:
    PATH_ROOT[:] = [root.rstrip("/")]


def _is_path(field: FieldDescriptor) -> bool:
    name = field.name.lower()
    return any(name == n or name.endswith("_" + n) for n in _PATH_NAMES)


def path() -> st.SearchStrategy[str]:
    odd = st.sampled_from(["", " ", "\x00", "a\x00b", "\u202e"])
    if not PATH_ROOT:
        return odd
    leaf = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=30)
    under = st.builds(lambda parts: "/".join([PATH_ROOT[0], *parts]), st.lists(leaf, min_size=1, max_size=3))
    return st.one_of(odd, under, st.just(PATH_ROOT[0]))


def scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    t = field.type
    if t == F.TYPE_STRING and _is_path(field):
        return path()
    if t == F.TYPE_STRING:
        known = NAMED.get(field.name)
        return st.one_of(st.sampled_from(known), st.sampled_from(known), text()) if known else text()
    if t == F.TYPE_BYTES:
        return st.binary(max_size=512)
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
        return floating(field)
    if t == F.TYPE_ENUM:
        return enum(field)
    if t in _INT_RANGES:
        return integer(t)
    if t == F.TYPE_MESSAGE:
        return message(field.message_type, depth + 1)
    raise NotImplementedError(f"field type {t} of {field.full_name}")


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _repeated(field: FieldDescriptor, depth: int) -> st.SearchStrategy[list]:
    """0-3 drawn elements, or a long list (past batch limits) of one cheap element."""
    long = st.sampled_from([50, 300]).map(lambda n: [_filler(field)] * n)
    return st.one_of(st.lists(scalar(field, depth), max_size=3), long)


def _filler(field: FieldDescriptor) -> Any:
    """A cheap value for long lists (hundreds of entries), so big batches do not cost hypothesis much."""
    if field.type == F.TYPE_STRING:
        return "filler text"
    if field.type == F.TYPE_MESSAGE:
        cls = GetMessageClass(field.message_type)
        msg = cls()
        if "text" in field.message_type.fields_by_name:
            msg.text = "filler text"
        return msg
    return 0


def message(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any message of this type. Below depth 3 nested messages are left unset (the API is shallow)."""
    cls = GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if _is_map(field):
            key = scalar(field.message_type.fields_by_name["key"], depth)
            value = scalar(field.message_type.fields_by_name["value"], depth)
            fields[field.name] = st.dictionaries(key, value, max_size=4)
        elif field.is_repeated:
            fields[field.name] = _repeated(field, depth)
        elif field.type == F.TYPE_MESSAGE and depth >= 3:
            continue
        else:
            fields[field.name] = scalar(field, depth)
    present = {name: st.one_of(st.none(), strategy) for name, strategy in fields.items()}
    return st.fixed_dictionaries(present).map(lambda values: _build(cls, values))


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    msg = cls()
    for name, value in values.items():
        if value is None:
            continue
        field = cls.DESCRIPTOR.fields_by_name[name]
        if _is_map(field):
            target = getattr(msg, name)
            for k, v in value.items():
                if field.message_type.fields_by_name["value"].type == F.TYPE_MESSAGE:
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif field.is_repeated:
            getattr(msg, name).extend(value)
        elif field.type == F.TYPE_MESSAGE:
            getattr(msg, name).CopyFrom(value)
        else:
            setattr(msg, name, value)
    return msg


def raw_request(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    """Bytes on the wire that are not (or not quite) a valid message of this type."""
    # (outer field or None, string field): invalid UTF-8 at the top level and one message down
    targets = [(None, f) for f in descriptor.fields if f.type == F.TYPE_STRING]
    targets += [(outer, f) for outer in descriptor.fields if outer.type == F.TYPE_MESSAGE and not _is_map(outer)
                for f in outer.message_type.fields if f.type == F.TYPE_STRING]
    flips = st.tuples(message(descriptor).map(lambda m: m.SerializeToString()), st.integers(0, 2**16),
                      st.integers(1, 255)).map(lambda t: _flip(*t))
    cut = st.tuples(message(descriptor).map(lambda m: m.SerializeToString()), st.integers(0, 2**16)).map(
        lambda t: t[0][: t[1] % (len(t[0]) + 1)])
    options: list[st.SearchStrategy[bytes]] = [
        st.binary(max_size=256),
        st.sampled_from([b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x08" + b"\xff" * 11, b"\x0b", b"\x0c",
                         b"\x0a\x05abc"]),
        flips, cut,
    ]
    if targets:
        junk = st.sampled_from([b"\xc3\x28", b"\xff\xfe", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"])
        options.append(st.tuples(st.sampled_from(targets), junk).map(lambda t: _bad_string(*t[0], t[1])))
    return st.one_of(options)


def _bad_string(outer: FieldDescriptor | None, field: FieldDescriptor, payload: bytes) -> bytes:
    """A field ``field`` (length-delimited) holding ``payload``, inside ``outer`` when given."""
    inner = _tag(field.number) + _varint(len(payload)) + payload
    return inner if outer is None else _tag(outer.number) + _varint(len(inner)) + inner


def _flip(data: bytes, where: int, xor: int) -> bytes:
    if not data:
        return bytes([xor])
    i = where % len(data)
    return data[:i] + bytes([data[i] ^ xor]) + data[i + 1:]


def _tag(number: int) -> bytes:
    return _varint(number << 3 | 2)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
