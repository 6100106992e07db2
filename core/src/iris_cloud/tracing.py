"""OpenTelemetry tracing: the W3C trace context in message properties, and the spans.

With ``opentelemetry-api`` installed (the ``iris-cloud[otel]`` extra) every
``send`` starts a ``send`` span (PRODUCER) per message and writes its context
into the message's ``traceparent`` / ``tracestate`` properties through the
globally configured propagator; ``receive`` records a ``receive`` span linked
to what arrived; the consumer runs each handler in a ``handle`` span
(CONSUMER, its :class:`TracingObserver`) whose parent is the context the
message carried, so one trace runs from the sender's process through every
hop; :func:`~iris_cloud.workflows.save_result` records ``save``. Without the
package all of it is a no-op and nothing imports it. Spans go wherever the
application's SDK sends them (``docs/operations.md``, "Tracing"); without an
SDK the API records nothing but still passes a received context on to what a
handler sends.

A received ``traceparent`` / ``tracestate`` is the sender's: it is checked
against the W3C grammar before the propagator sees it, and a malformed one is
ignored (the message is handled untraced, or with no ``tracestate``), never
logged. Only those two fields travel: other propagator fields (``baggage``,
B3) are neither written nor read, since no grammar of theirs is checked here
and the OpenTelemetry propagators log what they cannot parse.

Span attributes carry ids, kinds, counts and exception class names, never a
body, a property value other than an id, an object name or an exception's
text (they may hold patient data). A message id is the sender's text too (any
length, any characters on ``mem://`` / ``local://`` and Service Bus): it is
escaped and capped by :func:`~iris_cloud.untrusted.clean` as on a log line.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

from iris_cloud.messages import Message, PropertyValue
from iris_cloud.observers import ConsumerObserver, Delivery, ObservedConsumer, Outcome
from iris_cloud.untrusted import clean

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import Span

try:
    from opentelemetry import context as _context
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # the extra is not installed: every call below is a no-op
    _trace = None  # type: ignore[assignment]
    _propagate = None  # type: ignore[assignment]
    _context = None  # type: ignore[assignment]

__all__ = [
    "TRACEPARENT",
    "TRACER_NAME",
    "TRACESTATE",
    "TRACE_PROPERTIES",
    "TracingObserver",
    "continuing",
    "enabled",
    "message_kind",
    "recording",
    "trace_context",
    "trace_properties",
    "valid_traceparent",
    "valid_tracestate",
    "with_trace_context",
]

TRACER_NAME = "iris_cloud"
"""The instrumentation scope of every span here (``trace.get_tracer(TRACER_NAME)``)."""
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_PROPERTIES = (TRACEPARENT, TRACESTATE)
"""The message properties that carry the W3C trace context."""

# W3C Trace Context, level 1: version 00 has exactly these four fields; a
# later version may add fields, which this reader does not know and ignores.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_TRACESTATE_KEY = (
    r"(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"
)
_TRACESTATE_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_TRACESTATE_MEMBER = re.compile(f"({_TRACESTATE_KEY})=(?:{_TRACESTATE_VALUE})")
_TRACESTATE_MAX_MEMBERS = 32
_TRACESTATE_MAX_LENGTH = 512
"""What W3C asks every hop to pass on; a longer tracestate is dropped, not cut."""

M = TypeVar("M", bound=Sequence[Message])

# Map ``MessageType`` (message_for's property) to the consumer's kinds.
_KINDS = {"OrderRequest": "order", "OrderResult": "result", "GradingSubmission": "grading"}


def enabled() -> bool:
    """Whether ``opentelemetry-api`` is installed (spans and propagation are on)."""
    return _trace is not None


def valid_traceparent(value: object) -> str | None:
    """``value`` if it is a W3C ``traceparent`` this library accepts, else ``None``."""
    if not isinstance(value, str) or len(value) != 55:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None or match[1] == "ff":
        return None
    if match[2] == "0" * 32 or match[3] == "0" * 16:
        return None
    return value


def valid_tracestate(value: object) -> str | None:
    """``value`` if it is a well-formed W3C ``tracestate`` of at most 512 characters."""
    if not isinstance(value, str) or len(value) > _TRACESTATE_MAX_LENGTH:
        return None
    keys: set[str] = set()
    for member in value.split(","):
        member = member.strip(" \t")
        if not member:
            continue
        match = _TRACESTATE_MEMBER.fullmatch(member)
        if match is None or match[1] in keys:
            return None
        keys.add(match[1])
    if len(keys) > _TRACESTATE_MAX_MEMBERS:
        return None
    return value


class _Getter:
    """The propagator's view of received properties: checked trace fields, nothing else."""

    def get(self, carrier: Mapping[str, PropertyValue], key: str) -> list[str] | None:
        check = {TRACEPARENT: valid_traceparent, TRACESTATE: valid_tracestate}.get(key)
        value = check(carrier.get(key)) if check is not None else None
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, PropertyValue]) -> list[str]:
        return [k for k in TRACE_PROPERTIES if k in carrier]


_GETTER = _Getter()


def trace_context(message: Message) -> OtelContext | None:
    """The OpenTelemetry context ``message`` carries, or ``None`` (none, malformed, no OTel)."""
    return _extract(message.properties)


def _extract(properties: Mapping[str, PropertyValue]) -> OtelContext | None:
    if _trace is None or valid_traceparent(properties.get(TRACEPARENT)) is None:
        return None
    # Duck-typed: subclassing textmap.Getter would import OpenTelemetry here.
    context = _propagate.extract(properties, getter=cast(Any, _GETTER))
    if not _trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


@contextlib.contextmanager
def continuing(properties: Mapping[str, PropertyValue]) -> Iterator[None]:
    """Make the trace ``properties`` carry (:func:`trace_properties`'s) current for the block.

    For work that belongs to a trace but runs outside it, later or in another
    thread: what the block sends or stamps continues that trace. Nothing
    changes when ``properties`` carry no valid context.
    """
    context = _extract(properties)
    if context is None:
        yield
        return
    token = _context.attach(context)
    try:
        yield
    finally:
        _context.detach(token)


def with_trace_context(message: Message, context: OtelContext | None = None) -> Message:
    """``message`` carrying ``context``'s trace (default: the current one) in its properties.

    A copy whose ``traceparent`` / ``tracestate`` are what the global
    propagator writes for that context; ``message`` itself when there is no
    trace to write (no OpenTelemetry, no span), so a context the message
    already carries is kept. ``send`` does this for every message; call it to
    stamp a message that is stored now and sent later (an outbox) so that its
    send continues this trace.
    """
    fresh = trace_properties(context)
    if not fresh:
        return message
    kept = {k: v for k, v in message.properties.items() if k not in TRACE_PROPERTIES}
    return replace(message, properties={**kept, **fresh})


def trace_properties(context: OtelContext | None = None) -> dict[str, str]:
    """The ``traceparent`` (and ``tracestate``) the global propagator writes for ``context``.

    Default: the current context. Empty without OpenTelemetry or a span.
    """
    if _trace is None:
        return {}
    carrier: dict[str, str] = {}
    _propagate.inject(carrier, context=context)
    fresh = {k: carrier[k] for k in TRACE_PROPERTIES if isinstance(carrier.get(k), str)}
    return fresh if TRACEPARENT in fresh else {}


def message_kind(message: Message) -> str | None:
    """The IRIS kind of an outgoing message from its ``MessageType``, or ``None``.

    Only names of the model's message types count (``order``, ``result``,
    ``grading``, ``event:<ResultObjectType>``): any other value is a caller's
    text and stays out of span attributes.
    """
    name = message.properties.get("MessageType")
    if not isinstance(name, str):
        return None
    if name in _KINDS:
        return _KINDS[name]
    return f"event:{name}" if _known_event(name) else None


def _known_event(name: str) -> bool:
    from iris_cloud.model import EVENT_TYPES

    return name in EVENT_TYPES


# -- spans (what the ports, the consumer and save_result record) -------------------


_TRACER: Any = None


def _tracer() -> Any:
    # A proxy until the application installs an SDK, then the SDK's: safe to keep.
    global _TRACER
    if _TRACER is None:
        _TRACER = _trace.get_tracer(TRACER_NAME)
    return _TRACER


_UNSET_RECHECK_SECONDS = 1.0
_unset_until = 0.0  # time.monotonic() until which "no provider set" is taken as it was


def recording() -> bool:
    """Whether spans are recorded now: OpenTelemetry is installed and an SDK is set.

    Without an SDK (the API's proxy or no-op provider) every span would be
    non-recording, so building attributes and links for one is pure cost.
    Asked per receive and per handled message, as an application may
    install its SDK at any time: it costs a few look-ups.
    """
    global _unset_until
    if _trace is None:
        return False
    # Where set_tracer_provider keeps what it was given: an SDK installed in
    # code is noticed at once. (Should a later API rename it, this reads None
    # and the public call below notices within a second instead.)
    provider = getattr(_trace, "_TRACER_PROVIDER", None)
    if provider is None:
        # Nothing set in code. get_tracer_provider() may still load the one
        # OTEL_PYTHON_TRACER_PROVIDER names, but it reads os.environ on every
        # call: asked at most once a second.
        now = time.monotonic()
        if now < _unset_until:
            return False
        _unset_until = now + _UNSET_RECHECK_SECONDS
        provider = _trace.get_tracer_provider()
    return not isinstance(provider, (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider))


def endpoint_attributes(broker: object | None, operation: str) -> dict[str, str]:
    """``messaging.*`` attributes naming ``broker`` (its system and destination)."""
    attributes = {"messaging.operation.name": operation}
    if broker is None:
        return attributes
    system = getattr(broker, "messaging_system", "") or getattr(broker, "scheme", "")
    attributes["messaging.system"] = str(system or type(broker).__name__)
    destination = getattr(broker, "destination", "")
    if destination:
        attributes["messaging.destination.name"] = str(destination)
    return attributes


def failed(span: Span, error: BaseException) -> None:
    """Mark ``span`` failed with the exception's class only (its text may quote patient data)."""
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(_trace.Status(_trace.StatusCode.ERROR))


class SendSpans:
    """The ``send`` spans of one ``send`` call: one per message, ended as its batch is sent.

    A message's span is a child of the context the message already carries
    (stamped by :func:`with_trace_context` before it was stored in an outbox,
    or a received message sent on), else of the current span, else the root
    of a new trace.
    """

    def __init__(self, broker: object) -> None:
        self._attributes = endpoint_attributes(broker, "send") if _trace is not None else {}
        self._attributes["messaging.operation.type"] = "send"
        self._open: list[Span] = []

    def start(self, message: Message) -> Message:
        """Start ``message``'s span; returns the message carrying that span's context."""
        if _trace is None:
            return message
        parent = trace_context(message)
        attributes = {**self._attributes, "messaging.message.id": clean(message.message_id)}
        kind = message_kind(message)
        if kind is not None:
            attributes["iris.message.kind"] = kind
        span = _tracer().start_span(
            "send", context=parent, kind=_trace.SpanKind.PRODUCER, attributes=attributes
        )
        self._open.append(span)
        return with_trace_context(message, _trace.set_span_in_context(span))

    def sent(self, count: int) -> None:
        """The next ``count`` messages (in the order started) were sent."""
        done, self._open = self._open[:count], self._open[count:]
        for span in done:
            span.end()

    def failed(self, error: BaseException) -> None:
        """The send failed: every message not yet sent failed with ``error``."""
        for span in self._open:
            failed(span, error)
            span.end()
        self._open = []


class ReceiveSpan:
    """The ``receive`` span of one receive call, recorded once its result is known.

    Empty polls leave no span (a consumer polls all day); a span starts at the
    call's start time and links to the context of each message received. Used
    as ``with ReceiveSpan(broker) as span: got = span.received(call())``, while
    :func:`recording`: an exception leaving the block records the failed call.
    """

    __slots__ = ("_broker", "_start")

    def __init__(self, broker: object) -> None:
        self._broker = broker
        self._start = time.time_ns()

    def __enter__(self) -> ReceiveSpan:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: object
    ) -> None:
        if error is not None and isinstance(error, Exception):
            self.failed(error)

    def received(self, messages: M) -> M:
        """The call returned ``messages``; returns them."""
        if messages:
            self._record(messages)
        return messages

    def _record(self, messages: Sequence[Message]) -> None:
        links = []
        for message in messages:
            context = trace_context(message)
            if context is not None:
                links.append(_trace.Link(_trace.get_current_span(context).get_span_context()))
        attributes: dict[str, Any] = {
            **endpoint_attributes(self._broker, "receive"),
            "messaging.operation.type": "receive",
            "messaging.batch.message_count": len(messages),
        }
        if len(messages) == 1:
            attributes["messaging.message.id"] = clean(messages[0].message_id)
        span = _tracer().start_span(
            "receive",
            kind=_trace.SpanKind.CLIENT,
            attributes=attributes,
            links=links,
            start_time=self._start,
        )
        span.end()

    def failed(self, error: BaseException) -> None:
        """The call raised ``error``."""
        if _trace is None:
            return
        span = _tracer().start_span(
            "receive",
            kind=_trace.SpanKind.CLIENT,
            attributes={
                **endpoint_attributes(self._broker, "receive"),
                "messaging.operation.type": "receive",
            },
            start_time=self._start,
        )
        failed(span, error)
        span.end()


@contextlib.contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    consumer: bool = False,
    context: OtelContext | None = None,
) -> Iterator[Span | None]:
    """A span made current for the block (``None`` without OpenTelemetry).

    INTERNAL, or CONSUMER with ``consumer``; a child of ``context`` when
    given, else of the current span. An exception leaving the block marks it
    failed with its class only, and goes on.
    """
    if _trace is None:
        yield None
        return
    with _tracer().start_as_current_span(
        name,
        context=context,
        kind=_trace.SpanKind.CONSUMER if consumer else _trace.SpanKind.INTERNAL,
        attributes=dict(attributes or {}),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            failed(current, exc)
            raise


_NO_SPAN = contextlib.nullcontext()


def handle_span(
    broker: object | None, message: Message, kind: str, attempt: int
) -> contextlib.AbstractContextManager[Span | None]:
    """The consumer's ``handle`` span (CONSUMER), current for the block.

    Its parent is the context ``message`` carries, so the trace runs on from
    the sender; without one, the current context's (a new trace in a handler
    thread). ``None`` without OpenTelemetry.
    """
    # A no-op tracer's span would only repeat the current context: there is
    # nothing to make current. (With a context, its span must still be
    # current, so what the handler sends carries the sender's trace on.)
    # The look-ups that tell come first: nearly every message is such a one.
    if _trace is None or (TRACEPARENT not in message.properties and not recording()):
        return _NO_SPAN
    context = trace_context(message)
    if context is None and not recording():
        return _NO_SPAN
    attributes: dict[str, Any] = {
        **endpoint_attributes(broker, "handle"),
        "messaging.operation.type": "process",
        "messaging.message.id": clean(message.message_id),
        "iris.delivery_count": attempt,
    }
    from iris_cloud.model import shown_kind  # the model (pydantic) only once a message came

    # An event type the model does not know is the sender's text: event:other.
    attributes["iris.message.kind"] = shown_kind(kind)
    return span("handle", attributes, consumer=True, context=context)


_FAILED_OUTCOMES = frozenset({"retried", "dead_lettered"})


class TracingObserver(ConsumerObserver):
    """The consumer's ``handle`` spans: every :class:`~iris_cloud.consumer.Consumer`
    has one while ``opentelemetry-api`` is installed.

    The span is current around the handler run and the settlement after it
    (:meth:`~iris_cloud.observers.ConsumerObserver.handling`), so what the
    handler sends and saves is part of the message's trace; it ends with the
    delivery's outcome in ``iris.outcome``.
    """

    def __init__(self) -> None:
        self._brokers: Mapping[str, object] = {}

    def consumer_started(self, consumer: ObservedConsumer) -> None:
        """Know the brokers, for the spans' ``messaging.system`` and destination."""
        self._brokers = consumer.brokers

    def observes(self, message: Message) -> bool:
        """Whether a delivery of ``message`` gets a span: one carries a trace context
        (passed on even without an SDK), or spans are being recorded."""
        return TRACEPARENT in message.properties or recording()

    def handling(self, delivery: Delivery) -> contextlib.AbstractContextManager[object]:
        """The delivery's ``handle`` span, current in the handler's thread."""
        broker = self._brokers.get(delivery.source)
        return handle_span(broker, delivery.message, delivery.kind, delivery.attempt)

    def handler_finished(self, delivery: Delivery, duration: float, outcome: Outcome) -> None:
        """Put the outcome on the span (still current: this is called inside ``handling``);
        a failed handler marks it failed."""
        if not recording():
            return
        current = _trace.get_current_span()
        current.set_attribute("iris.outcome", outcome)
        if outcome in _FAILED_OUTCOMES:
            current.set_status(_trace.Status(_trace.StatusCode.ERROR))


def default_observers(given: Sequence[ConsumerObserver]) -> list[ConsumerObserver]:
    """What a consumer observes besides ``given``: tracing, when OpenTelemetry is installed."""
    if _trace is None or any(isinstance(o, TracingObserver) for o in given):
        return []
    return [TracingObserver()]
