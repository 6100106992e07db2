"""The SASL layer, spoken before a connection is handed to proton.

proton-c without Cyrus SASL can only be an ANONYMOUS/EXTERNAL server, while
Service Bus also takes PLAIN with a key name and secret. So each accepted
socket first goes through :func:`handshake` on a short-lived thread: it answers
the SASL exchange itself (ANONYMOUS or PLAIN) and returns the bytes of the
following AMQP protocol header, which proton then gets as if it had read them.
Clients that skip SASL (the Python SDK in emulator mode sends the AMQP header
straight away) pass through untouched.
"""

from __future__ import annotations

import hmac
import math
import socket
from dataclasses import dataclass

from proton import UNDESCRIBED, Array, Data, Described, symbol, ubyte, ulong

from ._auth import Grant, SasKey
from ._codec import detach

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"

_MECHANISMS = 0x40
_INIT = 0x41
_OUTCOME = 0x44
_OK, _AUTH_FAILED = 0, 1


class SaslFailed(Exception):
    """The client did not complete a SASL exchange we accept."""


@dataclass
class Handshake:
    """What the handshake learned: the header bytes for proton and any grant."""

    header: bytes
    grants: list[Grant]


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        chunk = sock.recv(size - len(out))
        if not chunk:
            raise SaslFailed("connection closed during SASL")
        out += chunk
    return bytes(out)


def _frame(performative: int, fields: list[object]) -> bytes:
    data = Data()
    data.put_object(Described(ulong(performative), fields))
    body = bytes(data.encode())
    # size, data offset 2 (8-byte header), type 1 (SASL), channel 0.
    return (8 + len(body)).to_bytes(4, "big") + b"\x02\x01\x00\x00" + body


def _read_frame(sock: socket.socket) -> tuple[int, list[object]]:
    size = int.from_bytes(_recv_exactly(sock, 4), "big")
    if not 8 <= size <= 65536:
        raise SaslFailed(f"implausible SASL frame size {size}")
    rest = _recv_exactly(sock, size - 4)
    body = rest[rest[0] * 4 - 4 :]
    data = Data()
    data.decode(body)
    data.rewind()
    data.next()
    described = data.get_object()
    if not isinstance(described, Described):
        raise SaslFailed("SASL frame without a performative")
    return int(described.descriptor), list(detach(described.value) or [])


def _plain_grant(response: bytes, keys: dict[str, SasKey]) -> Grant | None:
    """Check ``authzid NUL authcid NUL password``: key name and secret."""
    parts = response.split(b"\x00")
    if len(parts) != 3:
        return None
    name, password = parts[1].decode(errors="replace"), parts[2].decode(errors="replace")
    key = keys.get(name)
    if key is None or not hmac.compare_digest(key.secret, password):
        return None
    return Grant(key=key, scope="", expires_at=math.inf)


def handshake(sock: socket.socket, keys: dict[str, SasKey]) -> Handshake:
    """Run the SASL exchange (if the client starts one) on a blocking socket."""
    header = _recv_exactly(sock, 8)
    if header == AMQP_HEADER:
        return Handshake(header, [])
    if header != SASL_HEADER:
        # Tell the client what we speak (AMQP 1.0, 2.2) before hanging up.
        sock.sendall(SASL_HEADER)
        raise SaslFailed(f"unsupported protocol header {header!r}")
    mechanisms = Array(UNDESCRIBED, Data.SYMBOL, symbol("ANONYMOUS"), symbol("PLAIN"))
    sock.sendall(SASL_HEADER + _frame(_MECHANISMS, [mechanisms]))
    performative, fields = _read_frame(sock)
    if performative != _INIT or not fields:
        raise SaslFailed("expected sasl-init")
    mechanism = str(fields[0])
    response = bytes(fields[1]) if len(fields) > 1 and fields[1] is not None else b""
    grants: list[Grant] = []
    if mechanism == "PLAIN" and keys:
        grant = _plain_grant(response, keys)
        if grant is None:
            sock.sendall(_frame(_OUTCOME, [ubyte(_AUTH_FAILED)]))
            raise SaslFailed("PLAIN credentials do not match a configured key")
        grants.append(grant)
    elif mechanism not in ("ANONYMOUS", "PLAIN"):
        sock.sendall(_frame(_OUTCOME, [ubyte(_AUTH_FAILED)]))
        raise SaslFailed(f"unsupported SASL mechanism {mechanism}")
    sock.sendall(_frame(_OUTCOME, [ubyte(_OK)]))
    return Handshake(_recv_exactly(sock, 8), grants)
