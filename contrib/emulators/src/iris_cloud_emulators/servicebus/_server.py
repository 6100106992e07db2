"""The AMQP 1.0 side of the emulator, on python-qpid-proton's reactor.

One proton :class:`~proton.reactor.Container` runs on a background thread and
owns every connection, link and all broker state. Other threads reach it only
through an :class:`~proton.reactor.EventInjector` (stop, inspect, create, and
the hand-over of sockets that passed the SASL front-end in :mod:`._sasl`).

What the Azure SDK expects on the wire, and where it is handled here:

* Plain AMQP or SASL (:mod:`._sasl`), then a ``$cbs`` request/response link
  pair on which the client puts a SAS token; answered with ``status-code``
  202 (or 401), see :meth:`_Server._cbs`.
* Every performative with all its fields (:class:`_FramePadder`) and batches
  recognised by their transfer's message-format (:class:`_FrameSniffer`).
* Entity links addressed ``amqps://host/QUEUE`` (or ``QUEUE/$DeadLetterQueue``,
  ``TOPIC/Subscriptions/SUB``): a sender needs the Send right, a receiver
  Listen; refused attaches carry ``amqp:unauthorized-access``.
* Peek-lock deliveries whose tag is the lock token (``uuid.bytes_le``) with
  ``x-opt-sequence-number``, ``x-opt-enqueued-time``, ``x-opt-locked-until``
  annotations; dispositions accepted / modified / released / rejected with
  ``com.microsoft:dead-letter`` are complete / abandon (or defer) / release /
  dead-letter, each echoed back settled so the SDK's outcome check passes.
* ``QUEUE/$management`` operations: renew-lock, update-disposition,
  peek-message, receive-by-sequence-number, schedule-message,
  cancel-scheduled-message (``statusCode`` / ``statusDescription``).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cproton as _cproton
from proton import (
    UNDESCRIBED,
    Array,
    Condition,
    Data,
    Delivery,
    Endpoint,
    Handler,
    Link,
    Message,
    Terminus,
    Transport,
    symbol,
    timestamp,
    ulong,
)
from proton._reactor import Acceptor  # not re-exported; pinned proton <0.41
from proton.handlers import IOHandler
from proton.reactor import Container

from . import _auth, _sasl
from ._broker import (
    Broker,
    EntityNotFound,
    LockLost,
    MessageNotFound,
    StoredMessage,
)
from ._codec import CodecError, StoredBody, detach, split_batch

_log = logging.getLogger("iris_cloud_emulators.servicebus")

BATCH_FORMAT = 0x80013700
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024
# Credit granted to a client's sender link; topped up as deliveries arrive.
_SEND_CREDIT = 200
# A client that connects but never finishes SASL is dropped after this long.
_HANDSHAKE_TIMEOUT = 10.0
_WRITE_TIMEOUT = 30.0

_COND_UNAUTHORIZED = "amqp:unauthorized-access"
_COND_NOT_FOUND = "amqp:not-found"
_COND_NOT_IMPLEMENTED = "amqp:not-implemented"
_COND_SIZE = "amqp:link:message-size-exceeded"
_COND_DECODE = "amqp:decode-error"
_COND_LOCK_LOST = "com.microsoft:message-lock-lost"
_COND_MESSAGE_NOT_FOUND = "com.microsoft:message-not-found"
_COND_DEAD_LETTER = "com.microsoft:dead-letter"
_COND_ARGUMENT = "com.microsoft:argument-error"

_OP = "com.microsoft:"


def entity_path(address: str | None) -> str:
    """``amqps://host:port/queue/$DeadLetterQueue`` -> ``queue/$DeadLetterQueue``."""
    address = address or ""
    if "://" in address:
        address = address.split("://", 1)[1]
        address = address.split("/", 1)[1] if "/" in address else ""
    return address.strip("/")


def _condition(name: str, description: str) -> Condition:
    """An AMQP error carrying a tracking id in its info map, as Service Bus does.

    The SDK reads the error's info field by position, so it must be present;
    proton leaves an empty or null info out of the encoded list.
    """
    return Condition(name, description, {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())})


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """Keep serving when one event's handling fails: log it instead of
    letting the exception end the reactor (and every other connection)."""

    @functools.wraps(method)
    def wrapper(self: Any, event: Any) -> None:
        try:
            method(self, event)
        except Exception:
            _log.exception("error while handling %s", event.type)
            connection = getattr(event, "connection", None)
            if connection is not None and not connection.state & Endpoint.LOCAL_CLOSED:
                connection.condition = _condition("amqp:internal-error", "emulator error")
                connection.close()

    return wrapper


# -- reading the transfer frames proton does not expose ----------------------


class _FrameSniffer:
    """Follows the incoming byte stream to learn each transfer's message-format.

    proton-c does not expose a delivery's message-format, yet it is the only
    reliable mark of an SDK batch (0x80013700). This parser reads the frame
    headers and the attach/transfer performatives as bytes arrive, and records
    ``(link name, delivery tag)`` of every batch transfer.
    """

    _PEEK = 64 * 1024  # a performative is far smaller; larger frames are skipped

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip = 0
        self._names: dict[tuple[int, int], str] = {}
        self.batches: set[tuple[str, bytes]] = set()

    def feed(self, chunk: bytes) -> None:
        """Consume bytes in the order they were read from the socket."""
        self._buffer += chunk
        while True:
            if self._skip:
                dropped = min(self._skip, len(self._buffer))
                del self._buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    return
            if len(self._buffer) < 8:
                return
            if self._buffer[:4] == b"AMQP":  # protocol header (SASL or AMQP layer)
                del self._buffer[:8]
                continue
            size = int.from_bytes(self._buffer[:4], "big")
            if size < 8:  # not a frame: stop sniffing rather than guess
                self._buffer.clear()
                self._skip = 1 << 62
                return
            head = min(size, self._PEEK)
            if len(self._buffer) < head:
                return
            self._frame(bytes(self._buffer[:head]))
            del self._buffer[:head]
            self._skip = size - head

    def _frame(self, frame: bytes) -> None:
        doff, kind = frame[4], frame[5]
        body = frame[doff * 4 :]
        # Only AMQP frames whose performative is attach (0x12) or transfer (0x14).
        if kind != 0 or len(body) < 3 or body[:2] != b"\x00\x53" or body[2] not in (0x12, 0x14):
            return
        channel = int.from_bytes(frame[6:8], "big")
        data = Data()
        try:
            data.decode(body)
            data.rewind()
            data.next()
            fields = list(detach(data.get_object().value))
        except Exception:  # a truncated or odd performative: proton will judge it
            return
        fields += [None] * (4 - len(fields))
        if body[2] == 0x12:
            self._names[(channel, int(fields[1]))] = str(fields[0])
        elif fields[3] == BATCH_FORMAT and fields[2] is not None:
            name = self._names.get((channel, int(fields[0])))
            if name is not None:
                self.batches.add((name, bytes(fields[2])))


# Field counts of the AMQP 1.0 performatives, by descriptor code.
_ARITY = {0x10: 10, 0x11: 8, 0x12: 14, 0x13: 11, 0x14: 11, 0x15: 6, 0x16: 3, 0x17: 1, 0x18: 1}


class _FramePadder:
    """Rewrites outgoing performatives so that every field is present.

    proton-c, like the AMQP spec allows, leaves trailing null fields out of a
    performative's list. azure-servicebus 7.14 indexes the decoded lists by
    position (e.g. a transfer's payload is expected at index 11), so it breaks
    on short lists. Appending explicit nulls (0x40) is byte-for-byte the same
    message for every other peer. Works on the stream as proton writes it:
    protocol header, then frames; payload bytes pass through untouched.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._raw = 0  # payload bytes of the current frame still to pass through
        self._header_seen = False

    def feed(self, data: bytes) -> bytes:
        """Take bytes proton wrote; return the bytes to put on the wire now."""
        self._buffer += data
        out = bytearray()
        buffer = self._buffer
        while buffer:
            if self._raw:
                taken = min(self._raw, len(buffer))
                out += buffer[:taken]
                del buffer[:taken]
                self._raw -= taken
                continue
            if not self._header_seen:
                if len(buffer) < 8:
                    break
                out += buffer[:8]
                del buffer[:8]
                self._header_seen = True
                continue
            if len(buffer) < 8:
                break
            size = int.from_bytes(buffer[:4], "big")
            offset = buffer[4] * 4
            performative = self._performative(buffer, offset)
            if performative is None:  # not all of it buffered yet
                break
            old_length, new_performative = performative
            out += (size - old_length + len(new_performative)).to_bytes(4, "big")
            out += buffer[4:offset]
            out += new_performative
            del buffer[: offset + old_length]
            self._raw = size - offset - old_length
        return bytes(out)

    @staticmethod
    def _performative(buffer: bytearray, offset: int) -> tuple[int, bytes] | None:
        """``(length in the frame, padded encoding)`` of the frame's performative.

        ``(0, b"")`` leaves the frame alone; None means more bytes are needed.
        """
        size = int.from_bytes(buffer[:4], "big")
        if size == offset:  # an empty (heartbeat) frame
            return 0, b""
        if len(buffer) < offset + 4:  # descriptor (3 bytes) and list constructor
            return None
        code, constructor = buffer[offset + 2], buffer[offset + 3]
        if buffer[5] != 0 or buffer[offset : offset + 2] != b"\x00\x53" or code not in _ARITY:
            return 0, b""  # not an AMQP performative we know: the frame passes as is
        if constructor == 0x45:  # list0
            count, elements, length = 0, b"", 4
        elif constructor == 0xC0:  # list8: size, count, elements
            if len(buffer) < offset + 6:
                return None
            length = 5 + buffer[offset + 4]
            count = buffer[offset + 5]
            elements = bytes(buffer[offset + 6 : offset + length])
        elif constructor == 0xD0:  # list32: size, count, elements
            if len(buffer) < offset + 12:
                return None
            length = 8 + int.from_bytes(buffer[offset + 4 : offset + 8], "big")
            count = int.from_bytes(buffer[offset + 8 : offset + 12], "big")
            elements = bytes(buffer[offset + 12 : offset + length])
        else:
            return 0, b""
        if len(buffer) < offset + length:
            return None
        missing = max(0, _ARITY[code] - count)
        elements += b"\x40" * missing
        count += missing
        if len(elements) + 1 <= 0xFF:
            encoded = bytes([0xC0, len(elements) + 1, count]) + elements
        else:
            encoded = b"\xd0" + (len(elements) + 4).to_bytes(4, "big") + count.to_bytes(4, "big")
            encoded += elements
        return length, b"\x00\x53" + bytes([code]) + encoded


class _ClientSocket:
    """An accepted socket as proton sees it.

    Reads also feed a :class:`_FrameSniffer`; writes go through a
    :class:`_FramePadder` and are sent in full before returning (the padder
    changes lengths, so partial writes cannot be reported back to proton).
    """

    def __init__(self, sock: Any, sniffer: _FrameSniffer) -> None:
        self._sock = sock
        self._sniffer = sniffer
        self._padder = _FramePadder()

    def recv(self, size: int) -> bytes:
        """Read from the socket and show the bytes to the sniffer."""
        chunk = self._sock.recv(size)
        if chunk:
            self._sniffer.feed(chunk)
        return chunk

    def send(self, data: bytes) -> int:
        """Pad and send everything; report all of ``data`` as written."""
        out = self._padder.feed(bytes(data))
        if out:
            # A client that stops reading for this long is dropped (proton
            # closes the transport on the socket error).
            self._sock.settimeout(_WRITE_TIMEOUT)
            try:
                self._sock.sendall(out)
            finally:
                self._sock.setblocking(False)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Acceptor(Acceptor):
    """proton's acceptor, with our SASL front-end and the frame sniffer.

    ``server`` is the :class:`_Server`; a handshake thread hands the socket
    back to the reactor thread through its cross-thread call queue.
    """

    server: _Server

    @_guarded
    def on_selectable_readable(self, event: Any) -> None:
        """Accept one connection and start its SASL handshake off the reactor thread."""
        sock, _name = self._selectable.accept()
        threading.Thread(
            target=self._handshake, args=(sock,), name="servicebus-sasl", daemon=True
        ).start()

    def _handshake(self, sock: Any) -> None:
        try:
            sock.settimeout(_HANDSHAKE_TIMEOUT)
            result = _sasl.handshake(sock, self.server.keys)
        except (OSError, _sasl.SaslFailed) as exc:
            _log.info("connection refused during SASL: %s", exc)
            sock.close()
            return
        sock.setblocking(False)
        if not self.server.call_soon(lambda: self._adopt(sock, result)):
            sock.close()

    def _adopt(self, sock: Any, handshake: _sasl.Handshake) -> None:
        """Give an authenticated socket to proton (mirrors proton's Acceptor)."""
        sniffer = _FrameSniffer()
        reactor = self._reactor
        connection = reactor.connection(self._handler or reactor.handler)
        connection._acceptor = self
        connection.iris = _ConnectionState(sniffer, list(handshake.grants))
        transport = Transport(Transport.SERVER)  # no SASL layer: done in _sasl
        transport.bind(connection)
        selectable = reactor.selectable(delegate=_ClientSocket(sock, sniffer))
        selectable._transport = transport
        transport._selectable = selectable
        sniffer.feed(handshake.header)
        transport.push(handshake.header)
        IOHandler.update(transport, selectable, reactor.now)


# -- per-connection and per-link state ----------------------------------------


@dataclass(eq=False)
class _ConnectionState:
    """What the server knows about one client connection."""

    sniffer: _FrameSniffer
    grants: list[_auth.Grant] = field(default_factory=list)


class _Outgoing:
    """Our side of one peek-lock transfer; settles it at most once."""

    def __init__(self, delivery: Delivery, token: uuid.UUID) -> None:
        self.delivery: Delivery | None = delivery
        self.token = token

    def finish(
        self,
        state: Any = None,
        *,
        condition: Condition | None = None,
        failed: bool = False,
        undeliverable: bool = False,
    ) -> None:
        """Settle with ``state`` echoed back (the SDK compares it with what it sent)."""
        delivery, self.delivery = self.delivery, None
        if delivery is None:
            return
        if state is not None:
            if condition is not None:
                delivery.local.condition = condition
            if state == Delivery.MODIFIED:
                delivery.local.failed = failed
                delivery.local.undeliverable = undeliverable
            delivery.update(state)
        delivery.settle()

    def forget(self) -> None:
        """The link is gone: never touch the proton delivery again."""
        self.delivery = None


class _Timer(Handler):
    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__()
        self._callback = callback

    @_guarded
    def on_timer_task(self, event: Any) -> None:
        self._callback()


class _ContainerScheduler:
    """The broker's :class:`~._broker.Scheduler`, backed by the container's timers."""

    def __init__(self, container: Container) -> None:
        self._container = container

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        return self._container.schedule(delay, _Timer(callback))


def _tag(delivery: Delivery) -> bytes:
    """The delivery tag as bytes.

    proton's ``Delivery.tag`` decodes the tag as UTF-8, which fails for the
    binary lock-token tags Service Bus uses, so read it through the C API.
    """
    raw = _cproton.lib.pn_delivery_tag(delivery._impl)
    return bytes(_cproton.ffi.unpack(raw.start, raw.size))


def _filters(terminus: Any) -> dict[Any, Any]:
    """The filter map of a source terminus (empty when there is none)."""
    data = terminus.filter
    data.rewind()
    if not data.next():
        return {}
    value = data.get_object()
    return value if isinstance(value, dict) else {}


def _elements(value: Any) -> list[Any]:
    """Elements of an AMQP array or list as sent by the SDK."""
    if isinstance(value, Array):
        return list(value.elements)
    if isinstance(value, (list, tuple)):
        return list(value)
    return [] if value is None else [value]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _key(mapping: Any, name: str) -> Any:
    """Look ``name`` up in a decoded AMQP map whose keys may be str, symbol or bytes."""
    if not isinstance(mapping, dict):
        return None
    for key, value in mapping.items():
        if _text(key) == name:
            return value
    return None


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    return uuid.UUID(str(value))


class _Server(Handler):
    """The proton event handler: links, deliveries, ``$cbs`` and ``$management``."""

    def __init__(self, keys: dict[str, _auth.SasKey], max_message_size: int) -> None:
        super().__init__()
        self.keys = keys
        self.max_message_size = max_message_size
        self.broker: Broker  # set once the container (and so the scheduler) exists
        self.connections: set[Any] = set()
        self.calls: queue.SimpleQueue[tuple[Callable[[], Any], _Result]] = queue.SimpleQueue()
        self.container: Container | None = None
        self.acceptor: Acceptor | None = None
        self.wake: Callable[[], None] | None = None  # wakes the reactor for self.calls
        self.stopped = False

    # -- connection plumbing ----------------------------------------------

    @_guarded
    def on_connection_remote_open(self, event: Any) -> None:
        connection = event.connection
        self.connections.add(connection)
        connection.container = "iris-cloud-servicebus-emulator"
        if connection.state & Endpoint.LOCAL_UNINIT:
            connection.open()

    @_guarded
    def on_session_remote_open(self, event: Any) -> None:
        if event.session.state & Endpoint.LOCAL_UNINIT:
            event.session.open()

    @_guarded
    def on_session_remote_close(self, event: Any) -> None:
        event.session.close()

    @_guarded
    def on_connection_remote_close(self, event: Any) -> None:
        self._drop_connection(event.connection)
        event.connection.close()

    @_guarded
    def on_transport_closed(self, event: Any) -> None:
        if event.connection is not None:
            self._drop_connection(event.connection)

    def _drop_connection(self, connection: Any) -> None:
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        link = connection.link_head(0)
        while link is not None:
            self._drop_link(link)
            link = link.next(0)

    @_guarded
    def on_link_remote_close(self, event: Any) -> None:
        self._drop_link(event.link)
        event.link.close()

    @_guarded
    def on_link_remote_detach(self, event: Any) -> None:
        self._drop_link(event.link)
        event.link.detach()

    def _drop_link(self, link: Link) -> None:
        entity = getattr(link, "iris_entity", None)
        if entity is not None and link in entity.consumers:
            entity.consumers.remove(link)
        # Locks taken on this link stay until they expire or are settled
        # through $management, as on Service Bus; only the transfers go.
        for outgoing in getattr(link, "iris_outgoing", {}).values():
            outgoing.forget()
        link.iris_outgoing = {}

    # -- attach -----------------------------------------------------------

    @_guarded
    def on_link_remote_open(self, event: Any) -> None:
        link = event.link
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        address = link.remote_source.address if link.is_sender else link.remote_target.address
        path = entity_path(address)
        state: _ConnectionState = link.connection.iris
        link.iris_node = None
        link.iris_entity = None
        link.iris_outgoing = {}
        link.iris_pending = []
        link.iris_targets = []
        try:
            if path == "$cbs":
                link.iris_node = "$cbs"
            elif path.lower().endswith("/$management"):
                link.iris_node = path[: -len("/$management")]
            elif link.is_sender:
                self._attach_receiver(link, path, state)
            else:
                self._attach_sender(link, path, state)
        except _Refused as refused:
            # A refused attach carries a null terminus on our end (AMQP 1.0,
            # 2.6.3) and is detached at once with the reason. The SDK then
            # fails the link with that condition before it tries to use it.
            if link.is_sender:
                link.target.copy(link.remote_target)
                link.source.type = Terminus.UNSPECIFIED
            else:
                link.source.copy(link.remote_source)
                link.target.type = Terminus.UNSPECIFIED
            link.condition = _condition(refused.condition, refused.description)
            link.open()
            link.close()
            return
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        link.open()
        if link.is_receiver:
            link.flow(_SEND_CREDIT)
        elif link.iris_entity is not None:
            self.pump(link.iris_entity)

    def _allowed(self, state: _ConnectionState, path: str, right: str) -> bool:
        if not self.keys:
            return True
        return any(grant.covers(path, right) for grant in state.grants)

    def _require(self, state: _ConnectionState, path: str, right: str) -> None:
        if not self._allowed(state, path, right):
            raise _Refused(
                _COND_UNAUTHORIZED,
                f"Unauthorized access. '{right}' claim(s) are required to perform this "
                f"operation. Resource: '{path}'.",
            )

    def _attach_receiver(self, link: Link, path: str, state: _ConnectionState) -> None:
        """A client receiver: we send from a queue, subscription or dead-letter queue."""
        self._require(state, path, _auth.LISTEN)
        if any(_text(k) == "com.microsoft:session-filter" for k in _filters(link.remote_source)):
            raise _Refused(_COND_NOT_IMPLEMENTED, "the emulator does not support sessions")
        try:
            entity = self.broker.receivable(path)
        except EntityNotFound as exc:
            raise _Refused(
                _COND_NOT_FOUND, f"The messaging entity '{path}' could not be found."
            ) from exc
        link.iris_entity = entity
        link.iris_path = path
        # receive-and-delete: the SDK asks for pre-settled transfers.
        link.iris_auto_settle = link.remote_snd_settle_mode == Link.SND_SETTLED
        entity.consumers.append(link)

    def _attach_sender(self, link: Link, path: str, state: _ConnectionState) -> None:
        """A client sender: messages go to a queue or to a topic's subscriptions."""
        self._require(state, path, _auth.SEND)
        try:
            link.iris_targets = self.broker.sendable(path)
        except EntityNotFound as exc:
            raise _Refused(
                _COND_NOT_FOUND, f"The messaging entity '{path}' could not be found."
            ) from exc
        link.iris_path = path
        link.max_message_size = self.max_message_size
        # The SDK sizes batches by this vendor property when present (else it
        # assumes 256 KiB below 1 MiB); a batch is one message, same limit.
        link.properties = {
            symbol("com.microsoft:max-message-batch-size"): ulong(self.max_message_size)
        }

    # -- sending to clients -----------------------------------------------

    @_guarded
    def on_link_flow(self, event: Any) -> None:
        link = event.link
        if not link.is_sender:
            return
        self._flush_replies(link)
        entity = getattr(link, "iris_entity", None)
        if entity is not None:
            self.pump(entity)
        elif link.credit > 0:
            link.drained()

    def pump(self, entity: Any) -> None:
        """Hand ready messages to the entity's receivers that have credit, round robin."""
        while True:
            progressed = False
            for link in list(entity.consumers):
                if link.credit <= 0 or not entity.has_ready():
                    continue
                if not self._allowed(link.connection.iris, link.iris_path, _auth.LISTEN):
                    continue  # its token expired: served again after a new put-token
                acquired = self.broker.acquire(entity, lock=not link.iris_auto_settle)
                if acquired is None:
                    break
                self._deliver(link, *acquired)
                progressed = True
                # Rotate so the next message goes to the next receiver.
                entity.consumers.remove(link)
                entity.consumers.append(link)
                break
            if not progressed:
                break
        for link in entity.consumers:
            if link.credit > 0:
                link.drained()  # answers a drain request; a no-op otherwise

    def _deliver(self, link: Any, message: StoredMessage, held: Any) -> None:
        tag = (held.token if held is not None else uuid.uuid4()).bytes_le
        delivery = link.delivery(tag)
        link.send(message.encode(held))
        link.advance()
        if held is None:
            delivery.settle()
            return
        outgoing = _Outgoing(delivery, held.token)
        held.delivery = outgoing
        link.iris_outgoing[tag] = outgoing

    # -- deliveries -------------------------------------------------------

    @_guarded
    def on_delivery(self, event: Any) -> None:
        delivery = event.delivery
        link = event.link
        if link.is_sender:
            self._disposition(link, delivery)
            return
        if delivery.partial:
            return
        raw = link.recv(delivery.pending)
        link.advance()
        if link.state & Endpoint.LOCAL_CLOSED:  # a transfer racing our refusal of the link
            delivery.settle()
            return
        state: _ConnectionState = link.connection.iris
        batch = (link.name, _tag(delivery)) in state.sniffer.batches
        state.sniffer.batches.discard((link.name, _tag(delivery)))
        try:
            if link.iris_node == "$cbs":
                self._cbs(link, raw)
                outcome: tuple[int, Condition | None] = (Delivery.ACCEPTED, None)
            elif link.iris_node is not None:
                self._management(link, link.iris_node, raw)
                outcome = (Delivery.ACCEPTED, None)
            else:
                outcome = self._store(link, raw, batch)
        except CodecError as exc:
            outcome = (Delivery.REJECTED, _condition(_COND_DECODE, str(exc)))
        state_code, condition = outcome
        if condition is not None:
            delivery.local.condition = condition
        delivery.update(state_code)
        delivery.settle()
        if link.credit < _SEND_CREDIT // 2:
            link.flow(_SEND_CREDIT - link.credit)

    def _store(self, link: Any, raw: bytes, batch: bool) -> tuple[int, Condition | None]:
        if not self._allowed(link.connection.iris, link.iris_path, _auth.SEND):
            # The token that let the link attach has expired since.
            return Delivery.REJECTED, _condition(
                _COND_UNAUTHORIZED,
                f"Unauthorized access. 'Send' claim(s) are required to perform this "
                f"operation. Resource: '{link.iris_path}'.",
            )
        if len(raw) > self.max_message_size:
            return Delivery.REJECTED, _condition(
                _COND_SIZE,
                f"The received message (size {len(raw)} bytes) exceeds the limit "
                f"({self.max_message_size} bytes) currently allowed on the link.",
            )
        parts = split_batch(raw) if batch else [raw]
        bodies = [StoredBody.parse(part) for part in parts]
        self.broker.enqueue(link.iris_targets, bodies)
        return Delivery.ACCEPTED, None

    def _disposition(self, link: Any, delivery: Delivery) -> None:
        """A client settled (or updated) one of our peek-lock transfers."""
        outgoing: _Outgoing | None = link.iris_outgoing.get(_tag(delivery))
        state = delivery.remote_state
        if outgoing is None or outgoing.delivery is None:
            return
        if state not in (
            Delivery.ACCEPTED,
            Delivery.REJECTED,
            Delivery.RELEASED,
            Delivery.MODIFIED,
        ):
            if delivery.settled:  # settled with no outcome: nothing to apply
                link.iris_outgoing.pop(_tag(delivery), None)
                outgoing.finish()
            return
        link.iris_outgoing.pop(_tag(delivery), None)
        token = outgoing.token
        held = self.broker.lock_of(token)
        if held is None or held.delivery is not outgoing:
            outgoing.finish(
                Delivery.REJECTED,
                condition=_condition(
                    _COND_LOCK_LOST,
                    "The lock supplied is invalid. Either the lock expired, or the message "
                    "has already been removed from the queue.",
                ),
            )
            return
        remote = delivery.remote
        if state == Delivery.ACCEPTED:
            outgoing.finish(Delivery.ACCEPTED)
            self.broker.complete(token)
        elif state == Delivery.RELEASED:
            outgoing.finish(Delivery.RELEASED)
            self.broker.abandon(token, failed=False)
        elif state == Delivery.MODIFIED:
            outgoing.finish(
                Delivery.MODIFIED, failed=remote.failed, undeliverable=remote.undeliverable
            )
            if remote.undeliverable:  # how the SDK asks for defer
                self.broker.defer(token)
            else:
                # Service Bus counts every abandon, whether or not the client
                # set delivery-failed (the JavaScript SDK does not).
                self.broker.abandon(token)
        else:  # REJECTED: dead-letter, with the reason carried in the error info
            condition = remote.condition
            reason = description = None
            if condition is not None and condition.name == _COND_DEAD_LETTER:
                reason = _text(_key(condition.info, "DeadLetterReason"))
                description = _text(_key(condition.info, "DeadLetterErrorDescription"))
            outgoing.finish(Delivery.REJECTED)
            self.broker.dead_letter(token, reason, description)

    # -- $cbs -------------------------------------------------------------

    def _cbs(self, link: Any, raw: bytes) -> None:
        request = Message()
        request.decode(raw)
        props = request.properties or {}
        state: _ConnectionState = link.connection.iris
        operation = _text(_key(props, "operation"))
        if operation != "put-token":
            self._reply(
                link, request, {"status-code": 400, "status-description": "Unknown operation"}
            )
            return
        token = _text(request.body) or ""
        if not self.keys:
            self._reply(link, request, {"status-code": 202, "status-description": "Accepted"})
            return
        try:
            grant = _auth.verify_token(token, self.keys)
        except _auth.TokenRejected as exc:
            _log.info("put-token rejected: %s", exc)
            self._reply(
                link, request, {"status-code": 401, "status-description": f"Unauthorized: {exc}"}
            )
            return
        now = time.time()
        state.grants = [g for g in state.grants if g.expires_at > now] + [grant]
        self._reply(link, request, {"status-code": 202, "status-description": "Accepted"})
        # Receivers whose earlier token had expired are served again.
        entities = []
        other = link.connection.link_head(Endpoint.LOCAL_ACTIVE)
        while other is not None:
            entity = getattr(other, "iris_entity", None)
            if entity is not None and entity not in entities:
                entities.append(entity)
            other = other.next(Endpoint.LOCAL_ACTIVE)
        for entity in entities:
            self.pump(entity)

    def _reply(
        self, link: Any, request: Message, properties: dict[str, Any], body: Any = None
    ) -> None:
        """Answer a request on the client's receiver link for its ``reply_to`` node."""
        response = Message(correlation_id=request.id, properties=properties, body=body)
        target = self._reply_link(link, request.reply_to)
        if target is None:
            _log.warning("no reply link for %r", request.reply_to)
            return
        target.iris_pending.append(response)
        self._flush_replies(target)

    def _reply_link(self, request_link: Any, reply_to: str | None) -> Any:
        """The link a reply goes out on, found as Service Bus finds it.

        With a ``reply-to``, the client's receiver link of that name (the
        JavaScript SDK's ``cbs-<uuid>``) or, failing that, one whose source is
        that address. Without one, the receiver paired with the request link:
        the same node, preferably on the same session (the Python SDK).
        """
        node = entity_path(request_link.remote_target.address).lower()
        wanted = entity_path(reply_to).lower() if reply_to else node
        by_name = by_address = None
        candidate = request_link.connection.link_head(Endpoint.LOCAL_ACTIVE)
        while candidate is not None:
            if candidate.is_sender and getattr(candidate, "iris_node", None) is not None:
                source = entity_path(candidate.remote_source.address).lower()
                same_session = candidate.session == request_link.session
                if reply_to and candidate.name == reply_to:
                    by_name = candidate
                elif source == wanted and (by_address is None or same_session):
                    by_address = candidate
            candidate = candidate.next(Endpoint.LOCAL_ACTIVE)
        return by_name or by_address

    def _flush_replies(self, link: Any) -> None:
        pending = getattr(link, "iris_pending", None)
        while pending and link.credit > 0:
            delivery = link.send(pending.pop(0))
            delivery.settle()

    # -- $management ------------------------------------------------------

    def _management(self, link: Any, path: str, raw: bytes) -> None:
        request = Message()
        request.decode(raw)
        operation = _text(_key(request.properties or {}, "operation")) or ""
        body = detach(request.body) if isinstance(request.body, dict) else {}
        state: _ConnectionState = link.connection.iris
        handlers: dict[str, tuple[str, Callable[[str, Any], tuple[int, Any]]]] = {
            _OP + "renew-lock": (_auth.LISTEN, self._renew_lock),
            _OP + "update-disposition": (_auth.LISTEN, self._update_disposition),
            _OP + "peek-message": (_auth.LISTEN, self._peek),
            _OP + "receive-by-sequence-number": (_auth.LISTEN, self._receive_deferred),
            _OP + "schedule-message": (_auth.SEND, self._schedule),
            _OP + "cancel-scheduled-message": (_auth.SEND, self._cancel_scheduled),
        }
        status, response_body, condition, description = 200, {}, None, "OK"
        if operation not in handlers:
            status, condition = 501, _COND_NOT_IMPLEMENTED
            description = f"The emulator does not implement {operation!r}."
        # A token for the entity or for its management node will do (the
        # JavaScript SDK puts one with audience ENTITY/$management).
        elif not self._allowed(state, f"{path}/$management", handlers[operation][0]):
            status, condition = 401, _COND_UNAUTHORIZED
            description = f"Unauthorized access. '{handlers[operation][0]}' claim(s) are required."
        else:
            try:
                status, response_body = handlers[operation][1](path, body)
                description = "OK" if status == 200 else "No messages"
            except LockLost as exc:
                status, condition, description = 410, _COND_LOCK_LOST, str(exc)
            except MessageNotFound as exc:
                status, condition, description = 404, _COND_MESSAGE_NOT_FOUND, str(exc)
            except EntityNotFound as exc:
                status, condition, description = 404, _COND_NOT_FOUND, str(exc)
            except (CodecError, ValueError, TypeError) as exc:
                status, condition, description = 400, _COND_ARGUMENT, str(exc)
        properties: dict[str, Any] = {"statusCode": status, "statusDescription": description}
        if condition is not None:
            properties["errorCondition"] = symbol(condition)
        self._reply(link, request, properties, response_body)

    def _lock_tokens(self, path: str, body: Any) -> list[uuid.UUID]:
        """The request's lock tokens, each checked to lock a message of ``path``."""
        tokens = [_uuid(t) for t in _elements(_key(body, "lock-tokens"))]
        for token in tokens:
            self.broker.check_lock(path, token)
        return tokens

    def _renew_lock(self, path: str, body: Any) -> tuple[int, Any]:
        expirations = [timestamp(self.broker.renew(t)) for t in self._lock_tokens(path, body)]
        return 200, {"expirations": Array(UNDESCRIBED, Data.TIMESTAMP, *expirations)}

    def _update_disposition(self, path: str, body: Any) -> tuple[int, Any]:
        status = _text(_key(body, "disposition-status"))
        for token in self._lock_tokens(path, body):
            if status == "completed":
                self.broker.complete(token)
            elif status == "abandoned":
                self.broker.abandon(token)
            elif status == "defered":
                self.broker.defer(token)
            elif status == "suspended":
                self.broker.dead_letter(
                    token,
                    _text(_key(body, "deadletter-reason")),
                    _text(_key(body, "deadletter-description")),
                )
            else:
                raise ValueError(f"unknown disposition-status {status!r}")
        return 200, {}

    def _peek(self, path: str, body: Any) -> tuple[int, Any]:
        entity = self.broker.receivable(path)
        start = int(_key(body, "from-sequence-number") or 1)
        count = int(_key(body, "message-count") or 1)
        found = self.broker.peek(entity, start, count)
        if not found:
            return 204, {}
        return 200, {"messages": [{"message": m.encode(None)} for m in found]}

    def _receive_deferred(self, path: str, body: Any) -> tuple[int, Any]:
        entity = self.broker.receivable(path)
        numbers = [int(n) for n in _elements(_key(body, "sequence-numbers"))]
        # receiver-settle-mode 1 (second) is peek-lock, 0 (first) receive-and-delete.
        lock = int(_key(body, "receiver-settle-mode") or 0) == 1
        taken = self.broker.receive_deferred(entity, numbers, lock=lock)
        messages = []
        for message, held in taken:
            item: dict[str, Any] = {"message": message.encode(held)}
            if held is not None:
                item["lock-token"] = held.token
            messages.append(item)
        return 200, {"messages": messages}

    def _schedule(self, path: str, body: Any) -> tuple[int, Any]:
        targets = self.broker.sendable(path)
        bodies = []
        for item in _elements(_key(body, "messages")):
            stored = StoredBody.parse(bytes(_key(item, "message")))
            when = stored.annotations.get(symbol("x-opt-scheduled-enqueue-time"))
            if when is None:
                raise ValueError("a scheduled message needs x-opt-scheduled-enqueue-time")
            bodies.append((stored, int(when)))
        numbers = self.broker.schedule(targets, bodies)
        return 200, {"sequence-numbers": Array(UNDESCRIBED, Data.LONG, *numbers)}

    def _cancel_scheduled(self, path: str, body: Any) -> tuple[int, Any]:
        targets = self.broker.sendable(path)
        numbers = [int(n) for n in _elements(_key(body, "sequence-numbers"))]
        self.broker.cancel_scheduled(targets, numbers)
        return 200, {}

    # -- cross-thread calls -------------------------------------------------

    def call_soon(self, function: Callable[[], Any]) -> bool:
        """Run ``function`` on the reactor thread (from any thread); False once stopped."""
        if self.stopped or self.wake is None:
            return False
        self.calls.put((function, _Result(awaited=False)))
        self.wake()
        return True

    @_guarded
    def on_iris_call(self, event: Any) -> None:
        while True:
            try:
                function, result = self.calls.get_nowait()
            except queue.Empty:
                return
            try:
                result.value = function()
            except BaseException as exc:  # handed back to the calling thread
                result.error = exc
                if not result.awaited:
                    _log.exception("cross-thread call failed")
            result.done.set()

    @_guarded
    def on_iris_stop(self, event: Any) -> None:
        self.stopped = True
        if self.acceptor is not None:
            self.acceptor.close()
        for connection in list(self.connections):
            self._drop_connection(connection)
            connection.close()
        assert self.container is not None
        self.container.stop()


class _Refused(Exception):
    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


@dataclass
class _Result:
    """The outcome of a function run on the reactor thread for another thread."""

    awaited: bool = True
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None
