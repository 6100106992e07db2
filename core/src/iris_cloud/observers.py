"""Consumer observers: what a :class:`~iris_cloud.consumer.Consumer` tells metrics, health, traces.

An observer subclasses :class:`ConsumerObserver` and overrides the calls it
cares about (every one is a no-op by default); ``Consumer(...,
observers=[...])`` calls each observer in order. Metrics, health checks and
tracing are observers; so can be an integrator's own::

    from iris_cloud import ConsumerObserver, Delivery

    class SlowHandlers(ConsumerObserver):
        def handler_finished(self, delivery: Delivery, duration: float, outcome: str) -> None:
            if duration > 30:
                print("slow", delivery.kind, delivery.message_id)

Rules an observer can rely on, and must keep:

* calls come from the consumer's threads (receive loops, handler workers,
  the lock renewer) at the same time: an observer guards its own state;
* an observer that raises is logged (its class, the call and the exception's
  class: never its text) and skipped: it never costs a message, never stops
  the consumer, and the other observers are still called;
* a :class:`Delivery` carries ids, the kind and the delivery count; its
  ``message`` (body and properties) is the sender's: hostile, and possibly
  patient data. Never put a body or a property value that is not an id into a
  log line, a metric label or a span attribute.

:meth:`ConsumerObserver.handling` is the one context manager: the consumer
enters it in the handler's thread around the handler run and the settlement
that follows, so a tracing observer can make its span current for whatever
the handler does.

:meth:`ConsumerObserver.observes` is asked as each message arrives: a
delivery that no observer observes is handled without any of the calls
every delivery costs (the tracing observer observes none while no SDK
records spans and the message carries no trace context).

A handled message to be completed may be queued, to be completed with others
in one batch call (the ``settle_batch`` / ``settle_delay`` settings): then
:meth:`~ConsumerObserver.handler_finished` is called with ``"completed"``
when it is queued, inside :meth:`~ConsumerObserver.handling`, and
:meth:`~ConsumerObserver.message_finished` later, outside that delivery's
``handling`` and possibly from another thread, with the real outcome: ``"completed"``, or
``"lock_lost"`` / ``"settle_failed"`` when the batch call failed for it.
``message_finished`` is the call that says how a delivery ended.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, get_args

from iris_cloud.errors import ConfigurationError
from iris_cloud.logs import get_logger

if TYPE_CHECKING:
    from iris_cloud.messages import Message

__all__ = ["OUTCOMES", "ConsumerObserver", "Delivery", "ObservedConsumer", "Outcome"]

log = get_logger("iris_cloud.observers")

Outcome = Literal[
    "completed",
    "retried",
    "dead_lettered",
    "poison",
    "unhandled",
    "duplicate",
    "deferred",
    "given_back",
    "lock_lost",
    "settle_failed",
]
"""How one delivery ended:

* ``completed``: handled and completed;
* ``retried``: the handler failed, the message was abandoned for a retry;
* ``dead_lettered``: the handler failed for the last time (or the consumer's
  own side ran out of ``max_transient_attempts``);
* ``poison``: the body did not parse, dead-lettered without a handler run;
* ``unhandled``: no handler for its kind, completed;
* ``duplicate``: dedupe had seen it, completed without a handler run;
* ``deferred``: another copy was being handled, given back;
* ``given_back``: abandoned without counting against the message (the
  consumer's own side failed, or the consumer stopped);
* ``lock_lost``: its lock ended before settlement: it comes back;
* ``settle_failed``: settling it failed: it comes back after its lock.
"""

OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)
"""Every :data:`Outcome`, for observers that pre-create a series per value."""


class ObservedConsumer(Protocol):
    """What an observer may ask of the :class:`~iris_cloud.consumer.Consumer` it observes."""

    @property
    def brokers(self) -> Mapping[str, object]:
        """The consumer's brokers by name (the ``source`` of each call)."""

    @property
    def stopping(self) -> bool:
        """Whether the consumer is stopping."""

    def dead_threads(self) -> list[str]:
        """The consumer's threads (receive loops, lock renewer) that ended during a run."""


@dataclass(frozen=True, init=False)
class Delivery:
    """One delivery of one message to the consumer, as observers see it."""

    source: str
    """The consumer's name for the broker (a profile role such as ``results``)."""
    message: Message = field(repr=False)
    """The message itself: ids are safe to show, its body and other properties are not."""
    kind: str = "unknown"
    """``order``, ``result``, ``grading``, ``event:<ResultObjectType>``; ``invalid`` for a
    body that does not parse; ``unknown`` before it was parsed."""
    attempt: int = 1
    """The delivery count: 1 on the first delivery."""

    def __init__(self, source: str, message: Message, kind: str = "unknown", attempt: int = 1):
        # Frozen all the same: the generated __init__ would set each field
        # through object.__setattr__, twice the time of the rest of a
        # delivery's making, and the consumer makes one per message.
        fields = self.__dict__
        fields["source"] = source
        fields["message"] = message
        fields["kind"] = kind
        fields["attempt"] = attempt

    @property
    def message_id(self) -> str:
        """The message's id (a sender's string: log it through the framework's loggers)."""
        return self.message.message_id


class ConsumerObserver:
    """Base class of consumer observers: every call is a no-op until overridden."""

    # -- the run -------------------------------------------------------------
    def consumer_started(self, consumer: ObservedConsumer) -> None:
        """A run began (``run``, ``run_until`` or ``start``): receive loops are starting."""

    def consumer_stopping(self, consumer: ObservedConsumer) -> None:
        """The run is stopping: no more receives, in-flight handlers are finishing."""

    def consumer_stopped(self, consumer: ObservedConsumer) -> None:
        """The run is over (in-flight handlers settled, or left after ``stop_timeout``)."""

    # -- receiving -----------------------------------------------------------
    def endpoint_opened(self, source: str) -> None:
        """The consumer's receive loop on ``source`` started."""

    def receive_ok(self, source: str, count: int) -> None:
        """A receive call on ``source`` returned ``count`` messages (0 after an empty poll)."""

    def receive_error(self, source: str, error_class: str) -> None:
        """A receive call on ``source`` raised an exception of class ``error_class``."""

    # -- each delivery -------------------------------------------------------
    def observes(self, message: Message) -> bool:
        """Whether to tell this observer of a delivery of ``message`` (the default: yes).

        Asked as the message arrives. When no observer observes it, the
        consumer makes none of the calls every delivery costs for it
        (:meth:`message_received`, :meth:`claim_check_fetched`,
        :meth:`handling`, :meth:`handler_started`, :meth:`handler_finished`,
        :meth:`message_finished`), so an observer that only samples, or only
        cares while something is switched on, saves every other message
        their time. The rare calls (:meth:`lock_renewed`, :meth:`lock_lost`,
        :meth:`result_saved`) come all the same. ``message`` is the sender's:
        read its ids and the properties you set, nothing else.
        """
        return True

    def message_received(self, delivery: Delivery) -> None:
        """A delivery was parsed (``kind`` known; ``invalid`` when it did not parse)."""

    def claim_check_fetched(self, delivery: Delivery) -> None:
        """The delivery's body was fetched from a claim-check store on receipt."""

    def handling(self, delivery: Delivery) -> contextlib.AbstractContextManager[object]:
        """A context entered around the handler run and the settlement after it.

        Entered in the handler's thread: a span made current here is the
        parent of what the handler does. Return a context manager (the
        default does nothing); it must not swallow exceptions.
        """
        return contextlib.nullcontext()

    def handler_started(self, delivery: Delivery) -> None:
        """The handler for ``delivery`` is about to run (inside :meth:`handling`)."""

    def handler_finished(self, delivery: Delivery, duration: float, outcome: Outcome) -> None:
        """The handler ran for ``duration`` seconds (transient re-runs included) and the
        delivery was settled as ``outcome`` (inside :meth:`handling`).

        A completion queued for a batch is reported as ``"completed"`` when it is
        queued, before the broker took it: :meth:`message_finished` follows with
        the real outcome once the batch is settled.
        """

    def message_finished(self, delivery: Delivery, outcome: Outcome) -> None:
        """The delivery ended as ``outcome``: called once per delivery the consumer handled,
        with or without a handler run.

        For a completion queued for a batch it comes when the batch is settled,
        outside that delivery's :meth:`handling`, possibly from another thread, with what the
        broker did (``"completed"``, ``"lock_lost"`` or ``"settle_failed"``).
        """

    def lock_renewed(self, delivery: Delivery) -> None:
        """The lock of ``delivery`` was renewed while its handler runs."""

    def lock_lost(self, delivery: Delivery) -> None:
        """The lock of ``delivery`` ended before it was settled (once per delivery)."""

    def result_saved(self, delivery: Delivery) -> None:
        """The handler saved a result document (it called :meth:`Context.result_saved
        <iris_cloud.consumer.Context.result_saved>`)."""


class _Guarded:
    """One observer's :meth:`~ConsumerObserver.handling` context; a failure in it is logged."""

    def __init__(
        self,
        observer: ConsumerObserver,
        delivery: Delivery,
        inner: contextlib.AbstractContextManager[object] | None = None,
    ) -> None:
        self._observer = observer
        self._delivery = delivery
        # What observer.handling(delivery) returned, when it was asked already.
        self._inner = inner

    def __enter__(self) -> None:
        try:
            inner = self._inner
            if inner is None:
                inner = self._observer.handling(self._delivery)
            inner.__enter__()
        except Exception as exc:
            self._inner = None
            _failed(self._observer, "handling", exc)
            return
        self._inner = inner

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if self._inner is not None:
            try:
                self._inner.__exit__(exc_type, exc, tb)
            except Exception as error:
                _failed(self._observer, "handling", error)
        # Never swallow: what the consumer raises is the consumer's to handle.
        return False


def _failed(observer: ConsumerObserver, call: str, exc: Exception) -> None:
    log.warning(
        "observer %s.%s failed (%s); ignored",
        type(observer).__qualname__,
        call,
        type(exc).__name__,
    )


class Observers(ConsumerObserver):
    """Several observers as one: each call goes to each in order; a failing one is skipped.

    A call goes only to the observers that override it, and one that none
    overrides costs nothing: the consumer makes these calls for every message.
    """

    def __init__(self, observers: Sequence[ConsumerObserver] = ()) -> None:
        for observer in observers:
            if not isinstance(observer, ConsumerObserver):
                raise ConfigurationError(
                    f"observers must be ConsumerObserver instances, not {type(observer).__name__}"
                )
        self.observers: tuple[ConsumerObserver, ...] = tuple(observers)
        told_of: set[str] = set()
        for call in _FORWARDED:
            told = tuple(o for o in self.observers if _overrides(o, call))
            if told:
                told_of.add(call)
            # An instance attribute shadows the class's forwarding method.
            setattr(self, call, _forward(call, told) if told else _nothing)
        self._told_of = frozenset(told_of)
        self._handlers = tuple(o for o in self.observers if _overrides(o, "handling"))
        self._watchers = tuple(
            o for o in self.observers if any(_overrides(o, call) for call in _EVERY_DELIVERY)
        )

    def for_message(self, message: Message) -> Observers:
        """These observers for a delivery of ``message``, or none if none of them
        :meth:`~ConsumerObserver.observes` it (each delivery's calls then cost nothing)."""
        for observer in self._watchers:
            try:
                if observer.observes(message):
                    return self
            except Exception as exc:
                _failed(observer, "observes", exc)
                return self  # told after all: an observer's bug must not hide deliveries
        return UNOBSERVED

    def __bool__(self) -> bool:
        return bool(self.observers)

    def tells(self, call: str) -> bool:
        """Whether some observer overrides ``call`` (else the caller may skip what it costs)."""
        return call in self._told_of

    def handling(self, delivery: Delivery) -> contextlib.AbstractContextManager[object]:
        """Each observer's context, nested in order (the first outermost)."""
        if not self._handlers:
            return _NO_CONTEXT
        if len(self._handlers) == 1:
            observer = self._handlers[0]
            try:
                inner = observer.handling(delivery)
            except Exception as exc:
                _failed(observer, "handling", exc)
                return _NO_CONTEXT
            if type(inner) is contextlib.nullcontext:
                # Cannot fail (the tracing observer's without an SDK): no guard needed.
                return inner
            return _Guarded(observer, delivery, inner)
        return _nested(self._handlers, delivery)


@contextlib.contextmanager
def _nested(observers: Sequence[ConsumerObserver], delivery: Delivery) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for observer in observers:
            stack.enter_context(_Guarded(observer, delivery))
        yield


_NO_CONTEXT = contextlib.nullcontext()


def _nothing(*args: Any) -> None:
    """What a call no observer overrides does."""


def _overrides(observer: ConsumerObserver, call: str) -> bool:
    return getattr(type(observer), call) is not getattr(ConsumerObserver, call)


def _forward(call: str, observers: tuple[ConsumerObserver, ...]) -> Callable[..., None]:
    methods = tuple((observer, getattr(observer, call)) for observer in observers)

    def tell(*args: Any) -> None:
        for observer, method in methods:
            try:
                method(*args)
            except Exception as exc:
                _failed(observer, call, exc)

    return tell


_EVERY_DELIVERY = (
    "message_received",
    "claim_check_fetched",
    "handling",
    "handler_started",
    "handler_finished",
    "message_finished",
)
"""The calls each delivery costs, which :meth:`ConsumerObserver.observes` can spare."""

# Every call but handling() (and the question observes()) goes to each
# observer alike; the signatures are ConsumerObserver's (what type checkers
# see), the instances' the observers'.
_FORWARDED = tuple(
    name
    for name in vars(ConsumerObserver)
    if not name.startswith("_") and name not in ("handling", "observes")
)

UNOBSERVED: Final = Observers()
"""What a delivery no observer observes is told through: nothing, at no cost."""
