"""Request decoding that survives bad input.

protobuf rejects a string field holding invalid UTF-8 with a bare DecodeError, which gRPC would turn into
an INTERNAL error with no hint. Our deserializer instead returns a ``Malformed`` marker, and finds the
offending field by walking the wire format against the message descriptor, so the caller is told
``INVALID_ARGUMENT: episodes[2].text is not valid UTF-8``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message


@dataclass(frozen=True)
class Malformed:
    message: str
    field: str | None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def find_bad_utf8(descriptor: Descriptor, data: bytes, prefix: str = "") -> str | None:
    """Path of the first string field whose bytes are not UTF-8, or None."""
    pos = 0
    counts: dict[int, int] = {}
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, pos = _varint(data, pos)
            continue
        if wire_type == 1:
            pos += 8
            continue
        if wire_type == 5:
            pos += 4
            continue
        if wire_type != 2:
            raise ValueError(f"unsupported wire type {wire_type}")
        length, pos = _varint(data, pos)
        chunk = data[pos:pos + length]
        pos += length
        field = descriptor.fields_by_number.get(number)
        if field is None:
            continue
        index = counts.get(number, 0)
        counts[number] = index + 1
        repeated = field.is_repeated
        path = f"{prefix}{field.name}" + (f"[{index}]" if repeated and not _is_map(field) else "")
        if field.type == FieldDescriptor.TYPE_STRING:
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError:
                return path
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if _is_map(field):
                path = f"{prefix}{field.name}"
            found = find_bad_utf8(field.message_type, chunk, path + ".")
            if found:
                return found
    return None


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def safe_deserializer(message_cls: type[Message]) -> Callable[[bytes], Message | Malformed]:
    def deserialize(data: bytes) -> Message | Malformed:
        try:
            return message_cls.FromString(data)
        except DecodeError:
            try:
                path = find_bad_utf8(message_cls.DESCRIPTOR, data)
            except (ValueError, IndexError):
                path = None
            if path:
                return Malformed(f"{path} is not valid UTF-8", path.rstrip("."))
            return Malformed(f"request is not a valid {message_cls.DESCRIPTOR.full_name} message", None)

    return deserialize


def header_value(text: str) -> str:
    """``text`` as a legal gRPC metadata value (printable ASCII): anything else is escaped. A value with a
    control character or non-ASCII letter makes gRPC drop the whole answer as INTERNAL."""
    if text.isascii() and text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")
