"""Decoder for Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``).

Real kubectl and client-go send typed objects in this encoding: the 4-byte magic ``k8s\\x00``
followed by a ``runtime.Unknown`` envelope whose ``raw`` field holds the object's protobuf
message. :func:`decode` turns such a body into exactly the dict the JSON form of the same
object would give, so everything after it (admission, validation, storage, audit) only ever
sees JSON-shaped objects.

The decoder is strict on purpose: an unknown field number, a wrong wire type, a duplicate
field, invalid UTF-8 or a malformed length all raise :class:`ProtobufDecodeError` instead of
being skipped, so no part of a request can be silently dropped or read two ways. Error
messages name the message and field number, never a value (bodies carry secrets).
"""
from __future__ import annotations

import base64
import datetime
import re
from typing import Any, Iterator

from securekube.api.protobuf_schema import (
    ALWAYS,
    MESSAGES,
    NULLABLE,
    OMITEMPTY,
    TOP_LEVEL,
    Field,
    Kind,
    Message,
)

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_VARINT, _FIXED64, _LENGTH_DELIMITED, _GROUP_START, _GROUP_END, _FIXED32 = range(6)
_MAX_FIELD_NUMBER = (1 << 29) - 1
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1

# Go's zero time.Time (0001-01-01T00:00:00Z) as Unix seconds; metav1.Time encodes it as null.
_ZERO_TIME_UNIX = -62135596800
# metav1.Time formats with RFC 3339 (four-digit years); refuse what it cannot represent.
_MIN_UNIX = _ZERO_TIME_UNIX
_MAX_UNIX = 253402300799  # 9999-12-31T23:59:59Z
_UNIX_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

# resource.Quantity: <signed number><suffix>, suffix binary SI, decimal SI or an exponent.
_QUANTITY = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")


class ProtobufDecodeError(ValueError):
    """A protobuf body that is malformed or holds something securekube does not accept."""


def decode(body: bytes) -> dict[str, Any]:
    """Decode a Kubernetes protobuf body into its JSON-shaped object (with apiVersion/kind)."""
    if not body.startswith(MAGIC):
        raise ProtobufDecodeError("protobuf body does not start with the Kubernetes magic 'k8s\\x00'")
    api_version, kind, raw = _open_envelope(memoryview(body)[len(MAGIC):])
    message_name = TOP_LEVEL.get((api_version, kind))
    if message_name is None:
        supported = ", ".join(sorted({f"{v} {k}" for v, k in TOP_LEVEL}))
        raise ProtobufDecodeError(
            f"protobuf body holds a kind securekube cannot decode; supported: {supported}"
        )
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    obj.update(_decode_message(raw, MESSAGES[message_name]))
    return obj


# --- envelope ------------------------------------------------------------------------------


def _open_envelope(data: memoryview) -> tuple[str, str, memoryview]:
    """Unwrap runtime.Unknown: typeMeta=1, raw=2, contentEncoding=3, contentType=4."""
    where = "Unknown"
    seen: dict[int, memoryview] = {}
    for number, wire_type, value in _iter_fields(data, where):
        if number not in (1, 2, 3, 4):
            raise ProtobufDecodeError(f"{where} field {number}: unknown field")
        _expect_wire_type(f"{where} field {number}", wire_type, _LENGTH_DELIMITED)
        if number in seen:
            raise ProtobufDecodeError(f"{where} field {number}: sent more than once")
        assert isinstance(value, memoryview)
        seen[number] = value
    content_encoding = _text(seen.get(3, memoryview(b"")), f"{where} field 3")
    if content_encoding:
        raise ProtobufDecodeError(f"{where} field 3 (contentEncoding): encoded bodies are not supported")
    content_type = _text(seen.get(4, memoryview(b"")), f"{where} field 4")
    if content_type not in ("", CONTENT_TYPE):
        raise ProtobufDecodeError(f"{where} field 4 (contentType): only {CONTENT_TYPE} is supported")
    api_version, kind = _type_meta(seen.get(1, memoryview(b"")))
    return api_version, kind, seen.get(2, memoryview(b""))


def _type_meta(data: memoryview) -> tuple[str, str]:
    """Read runtime.TypeMeta: apiVersion=1, kind=2; both are required."""
    where = "TypeMeta"
    values: dict[int, str] = {}
    for number, wire_type, value in _iter_fields(data, where):
        if number not in (1, 2):
            raise ProtobufDecodeError(f"{where} field {number}: unknown field")
        _expect_wire_type(f"{where} field {number}", wire_type, _LENGTH_DELIMITED)
        if number in values:
            raise ProtobufDecodeError(f"{where} field {number}: sent more than once")
        assert isinstance(value, memoryview)
        values[number] = _text(value, f"{where} field {number}")
    if not values.get(1):
        raise ProtobufDecodeError(f"{where} field 1 (apiVersion): missing")
    if not values.get(2):
        raise ProtobufDecodeError(f"{where} field 2 (kind): missing")
    return values[1], values[2]


# --- wire format ---------------------------------------------------------------------------


def _read_varint(data: memoryview, pos: int, where: str) -> tuple[int, int]:
    """Read a base-128 varint (at most 10 bytes, at most 64 bits) at pos."""
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufDecodeError(f"{where}: truncated varint")
        byte = data[pos]
        pos += 1
        # The 10th byte may only carry bit 63; anything more does not fit in 64 bits.
        if shift == 63 and byte > 1:
            raise ProtobufDecodeError(f"{where}: varint overflows 64 bits")
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _iter_fields(data: memoryview, where: str) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) for each field of one message.

    Varint and fixed values come back as unsigned ints, length-delimited ones as a view.
    """
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos, f"{where} tag")
        number, wire_type = tag >> 3, tag & 7
        if number == 0 or number > _MAX_FIELD_NUMBER:
            raise ProtobufDecodeError(f"{where}: invalid field number {number}")
        field_where = f"{where} field {number}"
        value: int | memoryview
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos, field_where)
        elif wire_type in (_FIXED64, _FIXED32):
            size = 8 if wire_type == _FIXED64 else 4
            if pos + size > len(data):
                raise ProtobufDecodeError(f"{field_where}: truncated fixed-width value")
            value = int.from_bytes(data[pos:pos + size], "little")
            pos += size
        elif wire_type == _LENGTH_DELIMITED:
            length, pos = _read_varint(data, pos, field_where)
            if length > len(data) - pos:
                raise ProtobufDecodeError(f"{field_where}: length runs past the end of the message")
            value = data[pos:pos + length]
            pos += length
        elif wire_type in (_GROUP_START, _GROUP_END):
            raise ProtobufDecodeError(f"{field_where}: group wire types are not supported")
        else:
            raise ProtobufDecodeError(f"{field_where}: invalid wire type {wire_type}")
        yield number, wire_type, value


def _expect_wire_type(where: str, actual: int, expected: int) -> None:
    if actual != expected:
        raise ProtobufDecodeError(f"{where}: wrong wire type {actual} (expected {expected})")


# --- schema-driven decoding ----------------------------------------------------------------


def _decode_message(data: memoryview, message: Message) -> dict[str, Any]:
    """Decode one message into the dict Go's encoding/json would produce for it."""
    scalars: dict[int, Any] = {}
    lists: dict[int, list[Any]] = {}
    maps: dict[int, dict[str, Any]] = {}
    for number, wire_type, value in _iter_fields(data, message.name):
        field = message.fields.get(number)
        if field is None:
            raise ProtobufDecodeError(f"{message.name} field {number}: unknown field")
        where = _where(message, number, field)
        if field.kind is Kind.UNSUPPORTED:
            if field.allow_empty and _is_zero_on_wire(value):
                continue
            raise ProtobufDecodeError(f"{where}: not accepted ({field.reason})")
        if field.kind is Kind.MUST_BE_EMPTY:
            if not _is_zero_on_wire(value):
                raise ProtobufDecodeError(f"{where}: must be empty in a request body")
            continue
        if field.map_value is not None:
            _expect_wire_type(where, wire_type, _LENGTH_DELIMITED)
            assert isinstance(value, memoryview)
            key, item = _map_entry(value, field, where)
            entries = maps.setdefault(number, {})
            if key in entries:
                raise ProtobufDecodeError(f"{where}: duplicate map key")
            entries[key] = item
        elif field.repeated:
            lists.setdefault(number, []).extend(_repeated_values(wire_type, value, field, where))
        else:
            if number in scalars:
                raise ProtobufDecodeError(f"{where}: sent more than once")
            _expect_wire_type(where, wire_type, _wire_type_of(field.kind))
            scalars[number] = _value(value, field.kind, field, where)

    out: dict[str, Any] = {}
    for number, field in message.fields.items():
        if field.kind in (Kind.UNSUPPORTED, Kind.MUST_BE_EMPTY):
            continue
        if field.inline:
            embedded = scalars.get(number)
            if embedded is None:
                embedded = _decode_message(memoryview(b""), MESSAGES[field.message])
            for key, item in embedded.items():
                if key in out:
                    raise ProtobufDecodeError(f"{_where(message, number, field)}: clashing key")
                out[key] = item
            continue
        if number in scalars:
            present, value = True, scalars[number]
        elif number in lists:
            present, value = True, lists[number]
        elif number in maps:
            present, value = True, maps[number]
        else:
            present, value = False, None
        if not present:
            if field.presence is ALWAYS:
                out[field.json_name] = _zero_value(field)
            elif field.presence is NULLABLE:
                out[field.json_name] = None
            continue
        if field.presence is OMITEMPTY and _is_empty(value):
            continue
        out[field.json_name] = value
    return out


def _where(message: Message, number: int, field: Field) -> str:
    name = field.json_name or field.message
    return f"{message.name} field {number} ({name})"


def _wire_type_of(kind: Kind) -> int:
    return _VARINT if kind in (Kind.BOOL, Kind.INT32, Kind.INT64) else _LENGTH_DELIMITED


def _repeated_values(wire_type: int, value: int | memoryview, field: Field, where: str) -> list[Any]:
    """Values of one occurrence of a repeated field; numbers may come packed or unpacked."""
    if field.kind in (Kind.BOOL, Kind.INT32, Kind.INT64) and wire_type == _LENGTH_DELIMITED:
        assert isinstance(value, memoryview)
        values = []
        pos = 0
        while pos < len(value):
            number, pos = _read_varint(value, pos, where)
            values.append(_value(number, field.kind, field, where))
        return values
    _expect_wire_type(where, wire_type, _wire_type_of(field.kind))
    return [_value(value, field.kind, field, where)]


def _value(raw: int | memoryview, kind: Kind, field: Field, where: str) -> Any:
    """Convert one wire value of the given kind to its JSON form."""
    if kind is Kind.BOOL:
        assert isinstance(raw, int)
        if raw > 1:
            raise ProtobufDecodeError(f"{where}: bool value is neither 0 nor 1")
        return raw == 1
    if kind is Kind.INT64:
        assert isinstance(raw, int)
        return _signed64(raw)
    if kind is Kind.INT32:
        assert isinstance(raw, int)
        return _int32(raw, where)
    assert isinstance(raw, memoryview)
    if kind is Kind.STRING:
        return _text(raw, where)
    if kind is Kind.BYTES:
        return base64.b64encode(bytes(raw)).decode("ascii")
    if kind is Kind.MESSAGE:
        return _decode_message(raw, MESSAGES[field.message])
    if kind is Kind.TIME:
        return _time(raw, where)
    if kind is Kind.QUANTITY:
        return _quantity(raw, where)
    if kind is Kind.INT_OR_STRING:
        return _int_or_string(raw, where)
    if kind is Kind.STRING_LIST:
        return _string_list(raw, where)
    raise ProtobufDecodeError(f"{where}: unsupported value kind")


def _signed64(raw: int) -> int:
    """A varint read as unsigned, reinterpreted as the two's-complement int64 it encodes."""
    return raw - (1 << 64) if raw >= 1 << 63 else raw


def _int32(raw: int, where: str) -> int:
    # Negative int32 values arrive sign-extended to 64 bits; anything wider is malformed.
    signed = _signed64(raw)
    if not _INT32_MIN <= signed <= _INT32_MAX:
        raise ProtobufDecodeError(f"{where}: value out of int32 range")
    return signed


def _text(raw: memoryview, where: str) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtobufDecodeError(f"{where}: string is not valid UTF-8") from None


def _map_entry(raw: memoryview, field: Field, where: str) -> tuple[str, Any]:
    """Read one map entry message: key=1 (string), value=2."""
    assert field.map_value is not None
    key_raw: memoryview | None = None
    value_raw: int | memoryview | None = None
    entry = f"{where} map entry"
    for number, wire_type, value in _iter_fields(raw, entry):
        if number == 1:
            _expect_wire_type(f"{entry} field 1", wire_type, _LENGTH_DELIMITED)
            if key_raw is not None:
                raise ProtobufDecodeError(f"{entry} field 1: sent more than once")
            assert isinstance(value, memoryview)
            key_raw = value
        elif number == 2:
            _expect_wire_type(f"{entry} field 2", wire_type, _wire_type_of(field.map_value))
            if value_raw is not None:
                raise ProtobufDecodeError(f"{entry} field 2: sent more than once")
            value_raw = value
        else:
            raise ProtobufDecodeError(f"{entry} field {number}: unknown field")
    key = _text(key_raw, f"{entry} field 1") if key_raw is not None else ""
    if value_raw is None:
        # Go leaves a missing map value at its zero value.
        value_raw = memoryview(b"")
    return key, _value(value_raw, field.map_value, field, where)


def _time(raw: memoryview, where: str) -> str | None:
    """metav1.Time: empty means the zero time (null); else seconds=1, nanos=2.

    JSON carries whole seconds only, like upstream, which also drops nanos when decoding.
    """
    if len(raw) == 0:
        return None
    seconds = 0
    nanos = 0
    seen: set[int] = set()
    for number, wire_type, value in _iter_fields(raw, f"{where} Time"):
        if number not in (1, 2):
            raise ProtobufDecodeError(f"{where} Time field {number}: unknown field")
        _expect_wire_type(f"{where} Time field {number}", wire_type, _VARINT)
        if number in seen:
            raise ProtobufDecodeError(f"{where} Time field {number}: sent more than once")
        seen.add(number)
        assert isinstance(value, int)
        signed = _signed64(value)
        if number == 1:
            seconds = signed
        else:
            nanos = signed
    if not 0 <= nanos <= 999_999_999:
        raise ProtobufDecodeError(f"{where} Time field 2 (nanos): out of range")
    if seconds == _ZERO_TIME_UNIX:
        return None
    if not _MIN_UNIX <= seconds <= _MAX_UNIX:
        raise ProtobufDecodeError(f"{where} Time field 1 (seconds): out of range")
    moment = _UNIX_EPOCH + datetime.timedelta(seconds=seconds)
    # Formatted by hand: strftime does not zero-pad years below 1000 on every platform.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def _quantity(raw: memoryview, where: str) -> str:
    """resource.Quantity: string=1; a zero Quantity (nothing sent) is "0"."""
    text_value = "0"
    seen = False
    for number, wire_type, value in _iter_fields(raw, f"{where} Quantity"):
        if number != 1:
            raise ProtobufDecodeError(f"{where} Quantity field {number}: unknown field")
        _expect_wire_type(f"{where} Quantity field 1", wire_type, _LENGTH_DELIMITED)
        if seen:
            raise ProtobufDecodeError(f"{where} Quantity field 1: sent more than once")
        seen = True
        assert isinstance(value, memoryview)
        text_value = _text(value, f"{where} Quantity field 1")
    if not _QUANTITY.fullmatch(text_value):
        raise ProtobufDecodeError(f"{where} Quantity field 1: not a valid quantity")
    return text_value


def _int_or_string(raw: memoryview, where: str) -> int | str:
    """intstr.IntOrString: type=1 (0 int, 1 string), intVal=2, strVal=3."""
    values: dict[int, int | memoryview] = {}
    for number, wire_type, value in _iter_fields(raw, f"{where} IntOrString"):
        if number not in (1, 2, 3):
            raise ProtobufDecodeError(f"{where} IntOrString field {number}: unknown field")
        expected = _LENGTH_DELIMITED if number == 3 else _VARINT
        _expect_wire_type(f"{where} IntOrString field {number}", wire_type, expected)
        if number in values:
            raise ProtobufDecodeError(f"{where} IntOrString field {number}: sent more than once")
        values[number] = value
    kind = values.get(1, 0)
    if kind == 0:
        int_val = values.get(2, 0)
        assert isinstance(int_val, int)
        return _int32(int_val, f"{where} IntOrString field 2")
    if kind == 1:
        str_val = values.get(3, memoryview(b""))
        assert isinstance(str_val, memoryview)
        return _text(str_val, f"{where} IntOrString field 3")
    raise ProtobufDecodeError(f"{where} IntOrString field 1: unknown type")


def _string_list(raw: memoryview, where: str) -> list[str] | None:
    """ExtraValue: `repeated string items = 1`; Go leaves an empty one nil (JSON null)."""
    items: list[str] = []
    for number, wire_type, value in _iter_fields(raw, f"{where} ExtraValue"):
        if number != 1:
            raise ProtobufDecodeError(f"{where} ExtraValue field {number}: unknown field")
        _expect_wire_type(f"{where} ExtraValue field 1", wire_type, _LENGTH_DELIMITED)
        assert isinstance(value, memoryview)
        items.append(_text(value, f"{where} ExtraValue field 1"))
    return items or None


def _is_zero_on_wire(value: int | memoryview) -> bool:
    return value == 0 if isinstance(value, int) else len(value) == 0


def _is_empty(value: Any) -> bool:
    """What Go's omitempty drops: false, 0, "", nil, and empty slices or maps."""
    if value is None or value is False or value == "":
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        return value == 0
    if isinstance(value, (list, dict)):
        return not value
    return False


def _zero_value(field: Field) -> Any:
    """The JSON form of a Go field left at its zero value."""
    if field.repeated or field.map_value is not None:
        return None  # nil slice or map
    if field.kind is Kind.MESSAGE:
        return _decode_message(memoryview(b""), MESSAGES[field.message])
    return {
        Kind.STRING: "",
        Kind.BOOL: False,
        Kind.INT32: 0,
        Kind.INT64: 0,
        Kind.BYTES: None,  # nil []byte
        Kind.TIME: None,
        Kind.QUANTITY: "0",
        Kind.INT_OR_STRING: 0,
    }[field.kind]
