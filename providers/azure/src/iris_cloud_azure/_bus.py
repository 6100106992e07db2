"""What the sync and the async Service Bus brokers share: everything that does no I/O.

:class:`ServiceBusCommon` holds the URL and option parsing, the
capabilities and the limits the send link announces, the conversion of
messages to and from the SDK's, and the checks of a message to settle.
What decides around I/O (splitting a batch where the SDK's encoded size says
so, probing a silent connection) is written once as steps
(:mod:`iris_cloud.steps`): the sync broker drives them with the
``azure.servicebus`` client, the async one awaits ``azure.servicebus.aio``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

from azure.core.credentials import AzureSasCredential
from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage
from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import MessageSizeExceededError
from iris_cloud.decoding import decode_each
from iris_cloud.errors import ConfigurationError, IrisCloudError, MessageTooLarge, Unavailable
from iris_cloud.logs import get_logger
from iris_cloud.ports import Capabilities, Message
from iris_cloud.steps import Call, Steps

from iris_cloud_azure.errors import translate
from iris_cloud_azure.options import BUS_CREDENTIAL_OPTIONS, PROBE_OPTIONS, RETRY_OPTIONS

__all__ = ["ENVELOPE_RESERVE", "MIN_WAIT", "ServiceBusCommon"]

log = get_logger("iris_cloud_azure.broker")

STANDARD_MAX_MESSAGE = 256 * 1024
ENVELOPE_RESERVE = 2048
"""Bytes kept free below the link's limit for the AMQP envelope (ids, headers, framing).

``Message.size`` counts body and properties only; a body this close to the
limit goes through the claim check instead of failing at the service.
"""
MIN_WAIT = 0.2
"""The SDK needs a positive wait; ``receive(wait=0)`` polls this long."""
PROBE_INTERVAL = 30.0
"""Seconds of receives that brought nothing before the connection is checked."""
PROBE_TIMEOUT = 10.0
"""Seconds the check (a peek) may take before the connection is taken for dead."""
_LINKS = {"send": "_sender", "receive": "_receiver", "dead_letter": "_dead_letter_receiver"}
_SETTLEMENTS = {
    "complete": ("complete_message", "complete"),
    "abandon": ("abandon_message", "abandon"),
    "dead_letter": ("dead_letter_message", "dead-letter"),
    "renew": ("renew_message_lock", "renew the lock of"),
}


@dataclass(frozen=True)
class Held:
    """What ``Message.raw`` holds for a received message: the SDK message and its receiver."""

    message: ServiceBusReceivedMessage
    receiver: Any


def _text(value: Any) -> Any:
    """Received AMQP strings arrive as bytes; give callers ``str``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _body(message: ServiceBusReceivedMessage) -> bytes:
    body = message.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        # An AMQP value body holding a string, as older .NET senders write.
        return body.encode("utf-8")
    if message.body_type != AmqpMessageBodyType.DATA:
        # A sequence, or a value that is a map, list or number: not bytes
        # we could hand on without guessing an encoding.
        raise TypeError("an AMQP sequence or non-string value body")
    # A data body arrives as an iterator of sections.
    return b"".join(bytes(section) for section in body)


def _settings(conn: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in conn.split(";") if "=" in part)
    return {key.strip().lower(): value.strip() for key, value in pairs}


class ServiceBusCommon(ABC):
    """The I/O-free half of ``ServiceBusBroker`` and ``AsyncServiceBusBroker``.

    ``capabilities.max_message_bytes`` starts at the standard tier's 256 KB
    and is replaced by the limit the service announces on the send link
    (1 MB and more on premium) when the sender opens, before the first send.
    A subclass names its SDK client class in :attr:`client_class` and the
    credential used when none is given in :meth:`default_credential`.
    """

    scheme: ClassVar[str] = "azuresb"
    messaging_system: ClassVar[str] = "servicebus"
    client_class: ClassVar[Any]
    """``azure.servicebus.ServiceBusClient`` or its ``aio`` twin."""
    capabilities = Capabilities(
        max_message_bytes=STANDARD_MAX_MESSAGE - ENVELOPE_RESERVE,
        max_batch=100,
        max_batch_bytes=STANDARD_MAX_MESSAGE - ENVELOPE_RESERVE,
        native_dead_letter=True,
        delayed_retry=False,
        lock_renewal=True,
        max_delivery_count=None,
        delivery_count_exact=True,
        peek=True,
        conditional_create=False,
    )

    def __init__(
        self,
        client: Any,
        *,
        entity: str,
        subscription: str | None = None,
        claim_check: Any = None,
        auth: str = "custom",
        probe_interval: float = PROBE_INTERVAL,
        probe_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        super().__init__(claim_check=claim_check)  # type: ignore[call-arg]
        if not probe_interval > 0 or not probe_timeout > 0:
            raise ConfigurationError("probe_interval and probe_timeout must be positive")
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._heard_at = time.monotonic()
        self._client = client
        self._entity = entity
        self._subscription = subscription
        # A queue's completed message is gone for everyone; a subscription's only for it.
        self.capabilities = replace(self.capabilities, completes_for_all=subscription is None)
        self._auth = auth
        self._sender: Any = None
        self._receiver: Any = None
        self._dead_letter_receiver: Any = None
        self._closed = False
        self._batch_limit: int | None = None

    @staticmethod
    @abstractmethod
    def default_credential() -> Any:
        """The credential when none is given (``DefaultAzureCredential``)."""

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``azuresb://NAMESPACE/QUEUE`` or ``azuresb://NAMESPACE/TOPIC/subscriptions/SUB``.

        ``NAMESPACE`` is the short name (``contoso`` for
        ``contoso.servicebus.windows.net``) or a host name. Options: one of
        ``connection_string``, ``sas_token``, ``credential`` (default:
        ``DefaultAzureCredential``); ``claim_check`` (an object store);
        ``retry_total`` / ``retry_backoff_factor`` / ``retry_backoff_max``;
        ``probe_interval`` / ``probe_timeout``.
        """
        parts = urlsplit(url)
        if parts.scheme != cls.scheme:
            raise ConfigurationError(f"not an azuresb:// URL (scheme {parts.scheme!r})")
        namespace = parts.hostname or ""
        segments = [unquote(s) for s in parts.path.strip("/").split("/") if s]
        if (
            not namespace
            or len(segments) not in (1, 3)
            or (len(segments) == 3 and segments[1] != "subscriptions")
        ):
            raise ConfigurationError(
                "azuresb URL must be azuresb://NAMESPACE/QUEUE or "
                "azuresb://NAMESPACE/TOPIC/subscriptions/SUBSCRIPTION"
            )
        if parts.query:
            raise ConfigurationError("azuresb URLs take no query parameters; pass options instead")
        entity = segments[0]
        subscription = segments[2] if len(segments) == 3 else None
        claim_check = options.pop("claim_check", None)
        retry = {k: options.pop(k) for k in RETRY_OPTIONS if k in options}
        probe = {k: _seconds(options.pop(k), k) for k in PROBE_OPTIONS if k in options}
        unknown = set(options) - set(BUS_CREDENTIAL_OPTIONS)
        if unknown:
            raise ConfigurationError(f"unknown azuresb option(s): {', '.join(sorted(unknown))}")
        given = [k for k in BUS_CREDENTIAL_OPTIONS if options.get(k)]
        if len(given) > 1:
            raise ConfigurationError(f"give one azuresb credential, not {' and '.join(given)}")
        kind = given[0] if given else "default_credential"
        fqdn = namespace if "." in namespace else f"{namespace}.servicebus.windows.net"
        client_class = cls.client_class
        if kind == "connection_string":
            conn = str(options["connection_string"])
            _check_connection_string(conn, namespace, entity)
            try:
                client = client_class.from_connection_string(conn, **retry)
            except ValueError as exc:
                raise ConfigurationError(
                    f"malformed Service Bus connection string: {exc}"
                ) from None
        elif kind == "sas_token":
            token = AzureSasCredential(str(options["sas_token"]))
            client = client_class(fqdn, token, **retry)
        elif kind == "credential":
            client = client_class(fqdn, options["credential"], **retry)
        else:
            client = client_class(fqdn, cls.default_credential(), **retry)
        return cls(
            client,
            entity=entity,
            subscription=subscription,
            claim_check=claim_check,
            auth=kind,
            **probe,
        )

    def __repr__(self) -> str:
        where = self._entity + (
            f"/subscriptions/{self._subscription}" if self._subscription else ""
        )
        return (
            f"{type(self).__name__}(namespace={self._client.fully_qualified_namespace!r}, "
            f"entity={where!r}, auth={self._auth})"
        )

    @property
    def destination(self) -> str:
        """The queue or topic (a subscription's topic)."""
        return self._entity

    @property
    def _where(self) -> str:
        if self._subscription:
            return f"subscription {self._subscription!r} of topic {self._entity!r}"
        return f"Service Bus entity {self._entity!r}"

    # -- links -----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(f"{self!r} is closed")

    enter_method: ClassVar[str] = "__enter__"
    """How the SDK opens a link: ``__enter__``, or ``__aenter__`` for the aio SDK."""

    def _link_steps(self, role: str) -> Steps[Any]:
        """The link of ``role`` (``send``, ``receive``, ``dead_letter``), opened now if not yet.

        The caller holds its lock. A link is opened at once, with the SDK's own
        retries: authorisation happens on the attach, and left to the first
        receive the attach would have to fit that call's wait (a refusal would
        surface as a timeout with ``receive(wait=0)``).
        """
        self._check_open()
        attr = _LINKS[role]
        current = getattr(self, attr)
        if current is not None:
            return current
        if role == "send":
            what, right = f"open a sender to {self._entity!r}", "send"
        else:
            what, right = f"open a receiver on {self._where}", "receive"
        with translate(what, right):
            link = self._new_link(role)
            try:
                yield Call(getattr(link, self.enter_method))
            except Exception:
                yield Call(link.close)
                raise
        setattr(self, attr, link)
        if role == "send":
            self._adopt_link_limits(link)
        return link

    def _new_link(self, role: str) -> Any:
        if role == "send":
            if self._subscription:
                return self._client.get_topic_sender(self._entity)
            return self._client.get_queue_sender(self._entity)
        from azure.servicebus import ServiceBusReceiveMode, ServiceBusSubQueue

        kwargs: dict[str, Any] = {
            "receive_mode": ServiceBusReceiveMode.PEEK_LOCK,
            "sub_queue": ServiceBusSubQueue.DEAD_LETTER if role == "dead_letter" else None,
            "prefetch_count": 0,  # never lock messages nobody asked for
        }
        if self._subscription:
            return self._client.get_subscription_receiver(
                self._entity, self._subscription, **kwargs
            )
        return self._client.get_queue_receiver(self._entity, **kwargs)

    def _adopt_link_limits(self, sender: Any) -> None:
        # The service announces its limits on the attach: 256 KB standard, up to
        # 100 MB premium. The SDK keeps them on the sender once the link is open.
        # A batch travels as one AMQP message, so it is bound by both limits (the
        # SDK's batch default alone can exceed a small link's message limit).
        link_max = int(getattr(sender, "_max_message_size_on_link", 0) or STANDARD_MAX_MESSAGE)
        batch_max = int(getattr(sender, "_max_batch_size_on_link", 0) or link_max)
        self._batch_limit = min(batch_max, link_max)
        self.capabilities = replace(
            self.capabilities,
            max_message_bytes=max(link_max - ENVELOPE_RESERVE, 1),
            max_batch_bytes=max(self._batch_limit - ENVELOPE_RESERVE, 1),
        )

    # -- sending ---------------------------------------------------------------------
    def _send_batch_steps(self, sender: Any, batch: list[Message]) -> Steps[None]:
        """Send ``batch`` on ``sender``, split again where the SDK's encoded size says so."""
        what = f"send to {self._entity!r}"
        with translate(what, "send"):
            if len(batch) == 1:
                # One message needs no batch envelope; the SDK still checks its size
                # against the link (MessageSizeExceededError -> MessageTooLarge).
                yield Call(sender.send_messages, (self._to_sdk(batch[0]),))
                return
            current = yield Call(sender.create_message_batch, (self._batch_limit,))
            for msg in batch:
                outgoing = self._to_sdk(msg)
                if self._try_add(current, outgoing, msg, what):
                    continue
                # The SDK counts the real encoded size; send what fits, start anew.
                yield Call(sender.send_messages, (current,))
                current = yield Call(sender.create_message_batch, (self._batch_limit,))
                self._try_add(current, outgoing, msg, what)
            if len(current):
                yield Call(sender.send_messages, (current,))

    @staticmethod
    def _try_add(batch: Any, outgoing: ServiceBusMessage, msg: Message, what: str) -> bool:
        """Add to ``batch``; ``False`` if it is full, MessageTooLarge if even an empty one is."""
        try:
            batch.add_message(outgoing)
        except MessageSizeExceededError:
            if len(batch) == 0:
                raise MessageTooLarge(
                    f"{what}: message {msg.message_id} does not fit this entity's limit of "
                    f"{batch.max_size_in_bytes} bytes with its AMQP envelope"
                ) from None
            return False
        return True

    @staticmethod
    def _to_sdk(msg: Message) -> ServiceBusMessage:
        properties: dict[str | bytes, Any] = {k: v for k, v in msg.properties.items()}
        return ServiceBusMessage(
            msg.body,
            message_id=msg.message_id,
            correlation_id=msg.correlation_id,
            subject=msg.subject,
            content_type=msg.content_type,
            application_properties=properties or None,
        )

    # -- receiving -------------------------------------------------------------------
    def _receive_steps(self, receiver: Any, max_messages: int, wait: float) -> Steps[list[Message]]:
        """Receive from ``receiver``; after ``probe_interval`` s of nothing, probe it."""
        got: list[Message] = yield from self._receive_from_steps(receiver, max_messages, wait)
        now = time.monotonic()
        if got:
            self._heard_at = now
        elif now - self._heard_at >= self._probe_interval:
            yield from self._probe_steps(receiver)
        return got

    def _probe_steps(self, receiver: Any) -> Steps[None]:
        """Make sure a receiver that brings nothing is still connected; else drop it."""
        try:
            with translate(f"check the connection to {self._where}", "receive"):
                yield Call(
                    receiver.peek_messages,
                    (),
                    {"max_message_count": 1, "sequence_number": 1, "timeout": self._probe_timeout},
                )
        except IrisCloudError as exc:
            if not exc.retryable:
                raise
            log.warning(
                "the connection to %s did not answer within %.0fs (%s); reopening it",
                self._where,
                self._probe_timeout,
                type(exc).__name__,
            )
            yield Call(self._drop_receiver, (receiver,))
            raise Unavailable(
                f"the connection to {self._where} went silent; a new one is opened on the "
                "next receive"
            ) from exc
        self._heard_at = time.monotonic()

    @abstractmethod
    def _drop_receiver(self, receiver: Any) -> object:
        """Forget a dead receiver and close it without waiting on it."""

    def _receive_from_steps(
        self, receiver: Any, max_messages: int, wait: float
    ) -> Steps[list[Message]]:
        with translate(f"receive from {self._where}", "receive"):
            received = yield Call(
                receiver.receive_messages,
                (),
                {"max_message_count": max(1, max_messages), "max_wait_time": max(wait, MIN_WAIT)},
            )
        return self._decoded(received, receiver)

    def _peek_steps(self, receiver: Any, max_messages: int) -> Steps[list[Message]]:
        """The oldest ``max_messages`` messages (a Service Bus peek), locked or not, untouched."""
        if max_messages < 1:
            raise ConfigurationError("max_messages must be at least 1")
        with translate(f"peek at {self._where}", "receive"):
            # Without a sequence number the receiver browses on from its last
            # peek or receive; from 1 it is always the oldest.
            peeked = yield Call(
                receiver.peek_messages,
                (),
                {"max_message_count": max_messages, "sequence_number": 1},
            )
        return decode_each(peeked, lambda m: self._from_sdk(m, None), lambda m: Message(b""))

    def _decoded(self, received: list[Any], receiver: Any) -> list[Message]:
        return decode_each(
            received,
            lambda m: self._from_sdk(m, receiver),
            lambda m: Message(
                b"",
                lock_token=str(m.lock_token) if m.lock_token else None,
                dead_letter_reason=_text(m.dead_letter_reason),
                dead_letter_description=_text(m.dead_letter_error_description),
                raw=Held(m, receiver),
            ),
        )

    @staticmethod
    def _from_sdk(sdk: ServiceBusReceivedMessage, receiver: Any) -> Message:
        # ``receiver`` is None for a peeked message: not delivered, not settleable.
        properties = {
            str(_text(k)): _text(v) for k, v in (sdk.application_properties or {}).items()
        }
        return Message(
            body=_body(sdk),
            message_id=str(_text(sdk.message_id) or ""),
            correlation_id=_text(sdk.correlation_id),
            content_type=_text(sdk.content_type),
            subject=_text(sdk.subject),
            properties=properties,
            # AMQP's delivery-count counts earlier attempts; ours counts this one too
            # (1 on first delivery), like SQS's receive count and Pub/Sub's attempt.
            delivery_count=int(sdk.delivery_count or 0) + (receiver is not None),
            enqueued_at=sdk.enqueued_time_utc,
            lock_token=str(sdk.lock_token) if sdk.lock_token else None,
            locked_until=sdk.locked_until_utc,
            dead_letter_reason=_text(sdk.dead_letter_reason),
            dead_letter_description=_text(sdk.dead_letter_error_description),
            raw=None if receiver is None else Held(sdk, receiver),
        )

    # -- settling --------------------------------------------------------------------
    def _settle_steps(self, message: Message, verb: str, **kwargs: Any) -> Steps[Any]:
        """Settle ``message`` on its receiver: complete, abandon, dead_letter or renew."""
        if not isinstance(message.raw, Held):
            raise ConfigurationError(
                f"settle a message with the {type(self).__name__} that received it"
            )
        held = message.raw
        method, words = _SETTLEMENTS[verb]
        if verb == "renew":
            what = f"{words} message {message.message_id}"
        else:
            what = f"{words} message {message.message_id} on {self._where}"
        with translate(what, "receive"):
            return (yield Call(getattr(held.receiver, method), (held.message,), kwargs))

    def _close_steps(self, links: list[Any]) -> Steps[None]:
        """Close ``links`` (taken under the caller's lock by :meth:`_take_links`), then the
        connection."""
        for handler in links:
            with translate(f"close a link on {self._where}"):
                yield Call(handler.close)
        with translate(f"close the connection of {self!r}"):
            yield Call(self._client.close)

    def _take_links(self) -> list[Any]:
        """Mark the broker closed and take its open links."""
        self._closed = True
        handlers = [self._sender, self._receiver, self._dead_letter_receiver]
        self._sender = self._receiver = self._dead_letter_receiver = None
        return [h for h in handlers if h is not None]


def _seconds(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"option {name} must be a number of seconds") from None


def _check_connection_string(conn: str, namespace: str, entity: str) -> None:
    """Catch a connection string for another namespace or entity before connecting."""
    settings = _settings(conn)
    endpoint = urlsplit(settings.get("endpoint", ""))
    host = endpoint.hostname or ""
    emulator = settings.get("usedevelopmentemulator", "").lower() == "true"
    if host and not emulator and host != namespace and not host.startswith(namespace + "."):
        raise ConfigurationError(
            f"the connection string is for namespace {host!r}, the URL names {namespace!r}"
        )
    entity_path = settings.get("entitypath")
    if entity_path and entity_path != entity:
        raise ConfigurationError(
            f"the connection string is scoped to entity {entity_path!r}, the URL names {entity!r}"
        )
