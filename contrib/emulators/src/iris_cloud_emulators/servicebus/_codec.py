"""AMQP 1.0 message encoding at the level of sections.

A stored message is kept as the raw encoded sections the client sent, so bodies
(several ``data`` sections, ``amqp-sequence``, ``amqp-value``), properties and
footers go back to receivers byte for byte. Only the sections the broker owns —
the header (delivery count) and the message annotations (sequence number,
enqueued time, lock expiry) — are decoded and re-encoded per delivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proton import Array, Data, Described, symbol, ubyte, uint, ulong

HEADER = 0x70
DELIVERY_ANNOTATIONS = 0x71
MESSAGE_ANNOTATIONS = 0x72
PROPERTIES = 0x73
APPLICATION_PROPERTIES = 0x74
DATA = 0x75
AMQP_SEQUENCE = 0x76
AMQP_VALUE = 0x77
FOOTER = 0x78

_BODY = (DATA, AMQP_SEQUENCE, AMQP_VALUE)

# Section descriptors may also be sent as symbols (AMQP 1.0 section 3.2).
_SYMBOLIC = {
    "amqp:header:list": HEADER,
    "amqp:delivery-annotations:map": DELIVERY_ANNOTATIONS,
    "amqp:message-annotations:map": MESSAGE_ANNOTATIONS,
    "amqp:properties:list": PROPERTIES,
    "amqp:application-properties:map": APPLICATION_PROPERTIES,
    "amqp:data:binary": DATA,
    "amqp:amqp-sequence:list": AMQP_SEQUENCE,
    "amqp:amqp-value:*": AMQP_VALUE,
    "amqp:footer:map": FOOTER,
}

# The header list's fields: durable, priority, ttl, first-acquirer, delivery-count.
_HEADER_DEFAULTS: list[Any] = [False, 4, None, False, 0]


class CodecError(ValueError):
    """The bytes are not a well-formed AMQP 1.0 message."""


def split_sections(raw: bytes) -> list[tuple[int, bytes]]:
    """Split an encoded message into ``(section code, encoded section)`` pairs.

    Raises :class:`CodecError` unless every byte belongs to a described section.
    """
    out: list[tuple[int, bytes]] = []
    pos = 0
    data = Data()
    while pos < len(raw):
        data.clear()
        try:
            consumed = data.decode(raw[pos:])
        except Exception as exc:  # proton raises DataException and friends
            raise CodecError(f"undecodable section at byte {pos}: {exc}") from exc
        if consumed <= 0:
            raise CodecError(f"empty section at byte {pos}")
        data.rewind()
        data.next()
        if data.type() != Data.DESCRIBED:
            raise CodecError(f"section at byte {pos} is not a described type")
        data.enter()
        data.next()
        descriptor = data.get_object()
        data.exit()
        if isinstance(descriptor, symbol):
            code = _SYMBOLIC.get(str(descriptor))
        elif isinstance(descriptor, int):
            code = int(descriptor)
        else:
            code = None
        if code is None or not HEADER <= code <= FOOTER:
            raise CodecError(f"unknown section descriptor {descriptor!r}")
        out.append((code, bytes(raw[pos : pos + consumed])))
        pos += consumed
    return out


def detach(value: Any) -> Any:
    """Copy every binary in ``value`` out of proton's buffers.

    proton returns AMQP binaries as memoryviews into the decoder's memory,
    which is reused or freed once the :class:`~proton.Data` object goes away.
    """
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, dict):
        return type(value)((detach(k), detach(v)) for k, v in value.items())
    if isinstance(value, list):
        return [detach(v) for v in value]
    if isinstance(value, Described):
        return Described(value.descriptor, detach(value.value))
    if isinstance(value, Array):
        return Array(value.descriptor, value.type, *(detach(v) for v in value.elements))
    return value


def decode_section_value(encoded: bytes) -> Any:
    """Return the Python value described by one encoded section."""
    data = Data()
    data.decode(encoded)
    data.rewind()
    data.next()
    described = data.get_object()
    return detach(described.value)


def encode_section(code: int, value: Any) -> bytes:
    """Encode ``value`` as the section with descriptor ``code``."""
    data = Data()
    data.put_object(Described(ulong(code), value))
    return bytes(data.encode())


@dataclass
class StoredBody:
    """The parts of a message that the broker keeps but never interprets.

    ``header`` holds the sender's header fields (durable, priority, ttl,
    first-acquirer) so they survive redelivery; ``annotations`` the sender's
    message annotations (e.g. partition key, scheduled enqueue time).
    """

    header: list[Any] = field(default_factory=lambda: list(_HEADER_DEFAULTS))
    annotations: dict[Any, Any] = field(default_factory=dict)
    properties: bytes = b""
    application_properties: dict[Any, Any] | None = None
    body: bytes = b""
    footer: bytes = b""

    @classmethod
    def parse(cls, raw: bytes) -> StoredBody:
        """Parse one encoded message as a client sent it."""
        stored = cls()
        body = bytearray()
        for code, encoded in split_sections(raw):
            if code == HEADER:
                values = list(decode_section_value(encoded) or [])
                values += _HEADER_DEFAULTS[len(values) :]
                stored.header = [
                    default if value is None else value
                    for value, default in zip(values[:5], _HEADER_DEFAULTS, strict=True)
                ]
            elif code == MESSAGE_ANNOTATIONS:
                stored.annotations = dict(decode_section_value(encoded) or {})
            elif code == PROPERTIES:
                stored.properties = encoded
            elif code == APPLICATION_PROPERTIES:
                stored.application_properties = dict(decode_section_value(encoded) or {})
            elif code in _BODY:
                body += encoded
            elif code == FOOTER:
                stored.footer = encoded
            # Delivery annotations are hop-by-hop (AMQP 1.0, 3.2.2): not stored.
        stored.body = bytes(body)
        return stored

    @property
    def ttl_ms(self) -> int | None:
        """The sender's time-to-live in milliseconds, if any."""
        ttl = self.header[2]
        return int(ttl) if ttl else None

    def encode(self, delivery_count: int, annotations: dict[Any, Any]) -> bytes:
        """Encode the message for one delivery.

        ``annotations`` are the broker's annotations, merged over the sender's.
        """
        durable, priority, ttl, _first, _count = self.header
        header = [
            bool(durable),
            ubyte(int(priority)),
            None if ttl is None else uint(int(ttl)),
            delivery_count == 0,
            uint(delivery_count),
        ]
        merged = dict(self.annotations)
        merged.update({symbol(key): value for key, value in annotations.items()})
        parts = [encode_section(HEADER, header), encode_section(MESSAGE_ANNOTATIONS, merged)]
        parts.append(self.properties)
        if self.application_properties is not None:
            parts.append(encode_section(APPLICATION_PROPERTIES, self.application_properties))
        parts.append(self.body)
        parts.append(self.footer)
        return b"".join(parts)


def split_batch(raw: bytes) -> list[bytes]:
    """Return the messages packed in a batch envelope.

    The SDK sends a batch (message-format 0x80013700) as one message whose body
    is a sequence of ``data`` sections, each holding one encoded message.
    """
    out = []
    for code, encoded in split_sections(raw):
        if code == DATA:
            out.append(bytes(decode_section_value(encoded)))
        elif code in _BODY:
            raise CodecError("a batch body must consist of data sections only")
    return out
