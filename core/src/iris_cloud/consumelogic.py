"""What the consumer decides about a message, once for the sync consumer and the async one.

:class:`~iris_cloud.consumer.Consumer` (threads) and
:class:`~iris_cloud.aio.AsyncConsumer` (an event loop) run the same
decisions: parse or dead-letter as poison, dedupe, dispatch to the handler,
run it again while the consumer's own side fails, retry with backoff or
dead-letter after ``max_attempts``, settle only after handling and never with
a stale receipt, renew locks, tally. The decisions around I/O are steps
(:mod:`iris_cloud.steps`): each :class:`~iris_cloud.steps.Call` names a
method of the consumer (``_run_handler``, ``_blocking``, ``_sleep``) or of the
broker, which the sync driver calls and the async driver awaits.

One way is not steps: a delivery that no observer observes, without dedupe,
that has a handler (nearly every message) is a :class:`QuietRun`, which each
consumer runs in a few plain calls of its own (calling or awaiting the
handler); the steps take over when the handler raises or the broker
completes one message at a time.

Reasons and log lines carry field paths, exception classes, message ids and
kinds only: nothing of a body, never an exception's message.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from iris_cloud.config import ConsumerSettings, Profile
from iris_cloud.decoding import failure_text
from iris_cloud.dedupe import Dedupe, DedupeBackend, open_dedupe
from iris_cloud.errors import (
    ConfigurationError,
    IrisCloudError,
    LockLost,
    PermissionDenied,
    ValidationError,
    is_transient,
)
from iris_cloud.logs import get_logger
from iris_cloud.model import IrisModel, kind_of, parse_message, shown_kind
from iris_cloud.observers import UNOBSERVED, ConsumerObserver, Delivery, Observers, Outcome
from iris_cloud.operations import service_observers
from iris_cloud.steps import Call, Steps
from iris_cloud.tracing import default_observers

if TYPE_CHECKING:
    from iris_cloud.capabilities import Capabilities
    from iris_cloud.health import HealthServer
    from iris_cloud.messages import Message
    from iris_cloud.metrics import MetricsObserver

__all__ = [
    "FATAL_RECEIVE",
    "MAX_REASON",
    "Completion",
    "ConsumerBase",
    "ConsumerLike",
    "ConsumerStats",
    "ContextBase",
    "HandlerTable",
    "Ledger",
    "QuietRun",
    "ReceiveHealth",
    "check_handler",
    "completed_steps",
    "completions_settled",
    "dedupe_keys",
    "delivery_of",
    "failed_run_steps",
    "field_errors",
    "handle_steps",
    "handled",
    "handler_arity",
    "handler_name",
    "is_async_handler",
    "lock_was_lost",
    "log_stopped",
    "open_consumer_steps",
    "poison_reason",
    "processing",
    "processing_failed",
    "receive_backoff",
    "refuse_awaitable",
    "renew_steps",
    "renewal_interval",
    "retry_delay",
    "settle_steps",
    "transient_delay",
]

# The consumer's logger: these decisions are the consumer's, whichever runs them.
log = get_logger("iris_cloud.consumer")

MAX_REASON = 1024
"""Longest dead-letter reason the consumer writes."""


@dataclass
class ConsumerStats:
    """Counters of one consumer (updated under its :class:`Ledger`'s lock)."""

    received: int = 0
    handled: int = 0
    completed: int = 0
    unhandled: int = 0
    duplicates: int = 0
    deferred: int = 0
    """Copies given back because another copy was being handled at the time."""
    retried: int = 0
    transient_retries: int = 0
    """Handler runs repeated because the consumer's own side failed (not the message)."""
    dead_lettered: int = 0
    poison: int = 0
    lock_renewals: int = 0
    lock_lost: int = 0
    """Deliveries whose lock ended before they were settled (each counted once)."""
    receive_errors: int = 0
    settle_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- handlers ----------------------------------------------------------------------


def handler_name(fn: Callable[..., object]) -> str:
    """A handler's name for messages: its qualified name, never its repr."""
    return str(getattr(fn, "__qualname__", None) or type(fn).__qualname__)


def handler_arity(fn: Callable[..., object]) -> int:
    """1 for ``handler(message)``, else 2 (``handler(message, ctx)``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return 1 if len(positional) == 1 else 2


def is_async_handler(fn: object) -> bool:
    """Whether calling ``fn`` gives a coroutine or an async generator (``async def``)."""
    # An instance whose __call__ is async is a coroutine function in disguise.
    call = getattr(fn, "__call__", None)  # noqa: B004
    return any(inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f) for f in (fn, call))


def check_handler(fn: Callable[..., object]) -> None:
    """Raise :class:`ConfigurationError` unless ``fn`` can be a handler at all."""
    if not callable(fn):
        raise ConfigurationError(f"handler {fn!r} is not callable")
    call = getattr(fn, "__call__", None)  # noqa: B004
    if any(inspect.isasyncgenfunction(f) for f in (fn, call)):
        raise ConfigurationError(
            f"handler {handler_name(fn)} is async but an async generator: a handler is a "
            "function, or an async def function that returns once the work is done"
        )


def refuse_awaitable(returned: object) -> None:
    """Raise TypeError for what a sync handler returned if it is awaitable.

    A sync callable that hands back a coroutine (a lambda around an async
    function) did not do the work: completing its message would lose it.
    """
    if returned is None:  # what nearly every handler returns
        return
    if inspect.isawaitable(returned):
        if inspect.iscoroutine(returned):
            returned.close()
        raise TypeError("handler returned an awaitable; handlers must do their work")


# -- pure decisions ----------------------------------------------------------------


def poison_reason(exc: ValidationError) -> str:
    """The dead-letter reason for a body that does not parse: its failing field paths."""
    paths = ", ".join(e.path or "<root>" for e in exc.errors) or "<root>"
    return f"invalid message: {paths}"[:MAX_REASON]


def field_errors(exc: ValidationError) -> str:
    """Each failing field path with its error type: no message text, which may quote input."""
    return "; ".join(f"{e.path or '<root>'}: {e.type}" for e in exc.errors)


def dedupe_keys(msg: Message, model: IrisModel) -> list[str]:
    """The keys a message is deduplicated by: its id and its ``TransactionId``."""
    keys = [f"id:{msg.message_id}"] if msg.message_id else []
    txid = getattr(model, "transaction_id", None)
    if txid:
        keys.append(f"tx:{str(txid).lower()}")
    return keys


def renewal_interval(settings: ConsumerSettings, msg: Message) -> float:
    """Seconds between lock renewals of ``msg``: configured, else half its lock."""
    if settings.lock_renewal_interval is not None:
        return settings.lock_renewal_interval
    if msg.locked_until is not None:
        # Timestamps, not datetime arithmetic: asked for every handler run.
        return max((msg.locked_until.timestamp() - time.time()) / 2, 0.05)
    return 10.0


def retry_delay(settings: ConsumerSettings, own_attempt: int) -> float:
    """Backoff before the next delivery after the message's ``own_attempt``-th failure."""
    return min(settings.backoff_initial * 2.0 ** (own_attempt - 1), settings.backoff_max)


def transient_delay(settings: ConsumerSettings, runs: int) -> float:
    """Wait before running a handler again after ``runs`` failures of the consumer's side."""
    return min(
        max(settings.backoff_initial, 0.05) * 2.0 ** (runs - 1), settings.transient_backoff_max
    )


# -- tallies -----------------------------------------------------------------------


@dataclass
class _Tally:
    """What the consumer remembers of one message id across its deliveries."""

    deliveries: int = 0
    transient_runs: int = 0
    """Handler runs that failed on the consumer's own side."""
    transient_deliveries: int = 0
    """Deliveries that ended (given back, lock lost) on such a failure."""


class Ledger:
    """A consumer's counters and per-message tallies, safe from any thread."""

    MAX_TALLIES = 100_000

    def __init__(self) -> None:
        self.stats = ConsumerStats()
        self.lock = threading.Lock()
        self._tallies: dict[str, _Tally] = {}
        # Deliveries already counted in lock_lost (by id of the Message): the
        # renewer and the settle that follows see the same loss.
        self._lost: set[int] = set()
        # What observers know of each delivery being handled (by id of the
        # Message): its Delivery, or the context that makes it when asked.
        self._deliveries: dict[int, Delivery | ContextBase] = {}

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        with self.lock:
            setattr(self.stats, name, getattr(self.stats, name) + n)

    def received(self, n: int) -> None:
        """Count ``n`` messages received (every receive: no counter looked up by name)."""
        with self.lock:
            self.stats.received += n

    def snapshot(self) -> ConsumerStats:
        """A copy of the counters."""
        with self.lock:
            return ConsumerStats(**self.stats.as_dict())

    def _tally(self, msg: Message) -> _Tally:
        # Called with the lock held.
        tally = self._tallies.get(msg.message_id)
        if tally is None:
            if len(self._tallies) > self.MAX_TALLIES:
                # Bound the memory of a long-running consumer; exact counts
                # come from the service where it keeps them.
                self._tallies.clear()
            tally = self._tallies[msg.message_id] = _Tally()
        return tally

    def attempt(self, msg: Message, capabilities: Capabilities) -> int:
        """Count a delivery of ``msg``; its attempt number (the service's when exact)."""
        if capabilities.delivery_count_exact and msg.delivery_count >= 1:
            # The service counts for us: no tally to keep for the message
            # until its handler fails on our side (transient_run).
            return msg.delivery_count
        with self.lock:
            tally = self._tally(msg)
            tally.deliveries += 1
            local = tally.deliveries
        service = msg.delivery_count if capabilities.delivery_count_exact else 0
        return max(service, local)

    def transient_run(self, msg: Message) -> int:
        """Count a handler run that failed on the consumer's side; how many so far."""
        with self.lock:
            tally = self._tally(msg)
            tally.transient_runs += 1
            return tally.transient_runs

    def transient_delivery(self, msg: Message) -> None:
        """Count a delivery of ``msg`` that ended on a failure of the consumer's side."""
        with self.lock:
            self._tally(msg).transient_deliveries += 1

    def own_attempts(self, msg: Message, attempt: int) -> int:
        """The deliveries that failed by the message's fault (not the consumer's side)."""
        with self.lock:
            return max(1, attempt - self._tally(msg).transient_deliveries)

    def handled(self, msg: Message) -> None:
        """Count a handler run that succeeded and drop the message's tally."""
        with self.lock:
            self.stats.handled += 1
            if self._tallies:
                self._tallies.pop(msg.message_id, None)

    def count_all(self, names: Iterable[str], completed: int = 0) -> None:
        """Add one to each counter of ``names`` (a name twice: two), ``completed`` to that one."""
        with self.lock:
            stats = self.stats
            stats.completed += completed
            for name in names:
                setattr(stats, name, getattr(stats, name) + 1)

    def forget(self, msg: Message) -> None:
        """Drop the tally of a message that was settled for good."""
        with self.lock:
            self._tallies.pop(msg.message_id, None)

    def lost_lock(self, msg: Message) -> Delivery | None:
        """Count the loss of ``msg``'s lock; its delivery the first time, then ``None``."""
        with self.lock:
            if id(msg) in self._lost:
                return None
            self._lost.add(id(msg))
            self.stats.lock_lost += 1
            found = self._deliveries.get(id(msg))
            return Delivery("", msg) if found is None else delivery_of(found)

    def delivered(self, delivery: Delivery | ContextBase) -> None:
        """Remember the delivery being handled (what observers are told of it)."""
        # One dict operation is atomic (under the GIL, and per object without
        # it): no lock for what every message does.
        self._deliveries[id(delivery.message)] = delivery

    def outcome(self, msg: Message, settled: bool, outcome: Outcome) -> Outcome:
        """``outcome`` if the settlement went through, else why the message comes back."""
        if settled:
            return outcome
        with self.lock:
            return "lock_lost" if id(msg) in self._lost else "settle_failed"

    def done(self, msg: Message) -> None:
        """The delivery is over: forget its lock loss and its observed delivery."""
        key = id(msg)
        if key in self._lost:
            with self.lock:
                self._lost.discard(key)
        self._deliveries.pop(key, None)


# -- what both consumers are made of ---------------------------------------------


class ConsumerBase:
    """What :class:`~iris_cloud.consumer.Consumer` and :class:`~iris_cloud.aio.AsyncConsumer`
    take and keep alike: brokers by name, settings, dedupe, observers, counters."""

    _running = False
    _context_class: type[ContextBase]

    def _queue_completion(self, broker: Any, done: Completion) -> bool:
        """Queue ``done`` to be completed with others; here never (each completes at once)."""
        return False

    _claim_store: Any = None
    """The claim-check store :meth:`from_profile` opened (closed with the consumer)."""

    def __init__(
        self,
        app: Any,
        brokers: Any,
        *,
        settings: ConsumerSettings | None,
        dedupe: DedupeBackend | str | os.PathLike[str] | bool | None,
        close_brokers: bool,
        observers: Sequence[ConsumerObserver],
        overrides: Mapping[str, Any],
    ) -> None:
        self.app = app
        Observers(observers)  # refuses a non-observer before the health port is bound
        if isinstance(brokers, Mapping):
            named: dict[str, Any] = dict(brokers)
        elif isinstance(brokers, Sequence):
            named = {f"broker{i}": b for i, b in enumerate(brokers)}
        else:
            named = {"broker": brokers}
        if not named:
            raise ConfigurationError(f"a {type(self).__name__} needs at least one broker")
        self.brokers = named
        base = settings or ConsumerSettings()
        if overrides:
            base = ConsumerSettings.model_validate(base.model_copy(update=overrides).model_dump())
        self.settings = base
        self._owns_dedupe = not isinstance(dedupe, DedupeBackend)
        retention = base.dedupe_retention_days
        self.dedupe: DedupeBackend | None
        if isinstance(dedupe, DedupeBackend):
            self.dedupe = dedupe
        elif dedupe is True:
            self.dedupe = Dedupe(None, retention_days=retention)
        elif dedupe is None or dedupe is False:
            spec = base.dedupe if dedupe is None else None
            self.dedupe = open_dedupe(spec, retention_days=retention) if spec else None
        else:
            self.dedupe = open_dedupe(dedupe, retention_days=retention)
        self.close_brokers = close_brokers
        for name, broker in named.items():
            limit = broker.capabilities.max_delivery_count
            if limit is not None and limit < base.max_attempts:
                # The service dead-letters first, with its own reason, not the exception.
                log.warning(
                    "%s dead-letters after %d deliveries, before max_attempts=%d",
                    name,
                    limit,
                    base.max_attempts,
                )
        self._service = service_observers(base)
        self._observers = Observers(
            [*default_observers(observers), *self._service.observers, *observers]
        )
        self._ledger = Ledger()
        self.stats = self._ledger.stats
        # Sources whose receiving is paused, with the handlers waiting out a
        # failure of the consumer's own side there.
        self._paused: dict[str, int] = {}

    @property
    def health(self) -> HealthServer | None:
        """The health endpoint (``health_port`` set), e.g. ``consumer.health.port``."""
        return self._service.server

    @property
    def metrics(self) -> MetricsObserver | None:
        """The Prometheus metrics (``metrics`` set): ``consumer.metrics.registry``."""
        return self._service.metrics

    @property
    def observers(self) -> tuple[ConsumerObserver, ...]:
        """The observers, in the order they are called."""
        return self._observers.observers

    def add_observer(self, observer: ConsumerObserver) -> None:
        """Call ``observer`` too from the next run on (after those given so far)."""
        if self._running:
            raise ConfigurationError("add observers before the consumer runs")
        self._observers = Observers([*self._observers.observers, observer])

    def snapshot(self) -> ConsumerStats:
        """A copy of the counters."""
        return self._ledger.snapshot()

    def _count(self, name: str, n: int = 1) -> None:
        self._ledger.count(name, n)

    def _context(
        self, source: str, msg: Message, kind: str, attempt: int, broker: Any, claim: str | None
    ) -> ContextBase:
        cls = self._context_class
        ctx = cls.__new__(cls)
        # The fields its generated __init__ sets, in one dict: its eight
        # keyword arguments cost a handler run more than the rest of its
        # context. test_a_context_is_made_as_its_class_makes_it holds the
        # two together.
        ctx.__dict__ = {
            "message": msg,
            "source": source,
            "kind": kind,
            "attempt": attempt,
            "consumer": self,
            "lock_lost": False,
            "claim": claim,
            "broker": broker,
        }
        return ctx

    def _count_pause(self, source: str, on: bool) -> None:
        """One more (``on``) or one fewer handler of ``source`` waiting out its own side."""
        if on:
            self._paused[source] = self._paused.get(source, 0) + 1
            if self._paused[source] == 1:
                log.warning("receiving from %s paused: its handlers' own side is failing", source)
            return
        self._paused[source] -= 1
        if not self._paused[source]:
            del self._paused[source]
            log.info("receiving from %s resumed", source)


def open_consumer_steps(
    cls: Any,
    app: Any,
    profile: Profile,
    roles: Iterable[str],
    kwargs: dict[str, Any],
    *,
    open_broker: str,
    open_store: str,
) -> Steps[Any]:
    """``cls.from_profile``: the profile's ``roles`` opened by its ``open_broker`` /
    ``open_store`` methods (sync or async), one claim-check store shared by all,
    everything opened closed again if the consumer cannot be made."""
    names = list(roles)
    profile.require(*names)
    claim = None
    if profile.claim_check is not None:
        claim = yield Call(getattr(profile, open_store), ("claim_check",))
    opened: dict[str, Any] = {}
    kwargs.setdefault("settings", profile.consumer)
    try:
        for role in names:
            opened[role] = yield Call(
                getattr(profile, open_broker), (role,), {"claim_check": claim}
            )
        # Built in the same try: a health port in use must not leak the brokers.
        consumer = cls(app, opened, close_brokers=True, **kwargs)
    except BaseException as exc:
        if isinstance(exc, GeneratorExit):  # the run abandoned: no more steps
            raise
        for broker in opened.values():
            yield Call(broker.close)
        if claim is not None:
            yield Call(claim.close)
        raise
    consumer._claim_store = claim
    return consumer


FATAL_RECEIVE = (PermissionDenied, ConfigurationError)
"""Receive errors that stop the consumer: retrying cannot make them work."""


class ReceiveHealth:
    """One receive loop's run of failures: observers, counters, backoff and log lines."""

    def __init__(self, c: ConsumerBase, source: str) -> None:
        self.c = c
        self.source = source
        self.failures = 0
        self.failing_since = 0.0
        c._observers.endpoint_opened(source)
        # Observers are fixed while a run lasts (add_observer refuses then).
        self._tell_ok = c._observers.tells("receive_ok")

    def fatal(self, exc: Exception) -> None:
        """A receive failed for good (:data:`FATAL_RECEIVE`)."""
        self.c._observers.receive_error(self.source, type(exc).__name__)
        log.error("receiving from %s failed for good: %s", self.source, type(exc).__name__)

    def failed(self, exc: Exception) -> float:
        """A receive failed; the seconds to wait before the next."""
        self.failures += 1
        self.c._count("receive_errors")
        self.c._observers.receive_error(self.source, type(exc).__name__)
        if self.failures == 1:
            self.failing_since = time.monotonic()
        return receive_backoff(self.source, exc, self.failures)

    def ok(self, count: int) -> None:
        """A receive returned ``count`` messages."""
        if self._tell_ok:  # not even a no-op call for every receive otherwise
            self.c._observers.receive_ok(self.source, count)
        if self.failures:
            log.warning(
                "receiving from %s works again after %d failure(s) in %.1fs",
                self.source,
                self.failures,
                time.monotonic() - self.failing_since,
            )
            self.failures = 0


def log_stopped(took: float, left: int, budget: float, polling: int, *, again: bool) -> None:
    """The line that ends a run: how long the stop took, what it left (``again``: a second stop)."""
    if left:
        why = "the consumer was stopped again" if again else f"stop_timeout={budget:.1f}s"
        log.warning(
            "stopped in %.2fs: %d handler(s) still running after %s were left unsettled; "
            "their messages come back after their lock",
            took,
            left,
            why,
        )
    else:
        log.info(
            "stopped in %.2fs (%d receive call(s) in progress give back what they bring)",
            took,
            polling,
        )


def receive_backoff(source: str, exc: Exception, failures: int) -> float:
    """Seconds to wait after the ``failures``-th receive failure in a row (logged)."""
    delay = min(0.5 * 2 ** (failures - 1), 30.0)
    # Once per outage at WARNING: a dead connection is one event, not a line
    # every few seconds for as long as it lasts.
    log.log(
        logging.WARNING if failures == 1 else logging.DEBUG,
        "receiving from %s failed (%s); retrying with backoff, now in %.1fs",
        source,
        type(exc).__name__,
        delay,
    )
    return float(delay)


# -- steps -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Exhausted:
    """``max_transient_attempts`` ran out: dead-letter after all."""

    error: Exception
    description: str


class _Left:
    """The message went back without its failure counting against it."""


_LEFT = _Left()


@dataclass(kw_only=True)
class ContextBase:
    """What a handler gets besides the parsed message (sync and async consumers alike)."""

    message: Message
    """The broker message (ids, properties, delivery count; the body as bytes)."""
    source: str
    """The name the consumer gave that broker (a profile role such as ``events``)."""
    kind: str
    """``order``, ``result``, ``grading`` or ``event:<ResultObjectType>``."""
    attempt: int
    """1 on the first delivery."""
    consumer: Any = field(repr=False)
    lock_lost: bool = False
    """Set when renewing the lock failed: the message will be delivered again."""
    claim: str | None = field(default=None, repr=False)
    """The dedupe claim held for this message (refreshed with each lock renewal)."""

    broker: Any
    """The broker it came from (settlement is the consumer's job, not the handler's)."""

    @property
    def stopping(self) -> bool:
        """Whether the consumer is shutting down (a long handler may wind up early)."""
        return bool(self.consumer.stopping)

    @functools.cached_property
    def delivery(self) -> Delivery:
        """This delivery as the consumer's observers see it."""
        return Delivery(self.source, self.message, self.kind, self.attempt)

    def result_saved(self) -> None:
        """Tell the consumer's observers that this handler saved a result document."""
        self.consumer._observers.result_saved(self.delivery)


class HandlerTable(Protocol):
    """What the steps use of an :class:`~iris_cloud.consumer.IrisApp`."""

    def handler_for(
        self, message: IrisModel, kind: str
    ) -> tuple[Callable[..., object], int] | None:
        """The handler (and how many arguments it takes) for a parsed message, or ``None``."""
        ...


class ConsumerLike(Protocol):
    """What the steps use of a consumer; the methods' results are the driver's to await."""

    @property
    def app(self) -> HandlerTable:
        """The app whose handlers the consumer runs."""
        ...

    settings: ConsumerSettings
    dedupe: DedupeBackend | None
    _ledger: Ledger
    _observers: Observers

    def _context(
        self, source: str, msg: Message, kind: str, attempt: int, broker: Any, claim: str | None
    ) -> ContextBase: ...

    def _renewing(self, ctx: Any, on: bool) -> None:
        """Start (``on``) or stop renewing ``ctx``'s lock while its handler runs."""

    def _pausing(self, source: str, on: bool) -> None:
        """Pause (``on``) or resume receiving from ``source`` for a waiting handler."""

    def _run_handler(self, handler: Any, arity: int, model: IrisModel, ctx: Any) -> object: ...

    def _blocking(self, fn: Callable[..., Any], *args: Any) -> object: ...

    def _sleep(self, delay: float) -> object:
        """Wait ``delay`` s; true when the consumer is stopping."""

    def _queue_completion(self, broker: Any, done: Completion) -> bool:
        """Queue ``done`` to be completed with others (then :func:`completions_settled`);
        ``False`` where the consumer completes each message at once."""


def lock_was_lost(c: ConsumerLike, msg: Message) -> None:
    """Count the loss of ``msg``'s lock and tell the observers, once per delivery."""
    delivery = c._ledger.lost_lock(msg)
    if delivery is not None:
        c._observers.lock_lost(delivery)


def settle_steps(
    c: ConsumerLike, broker: Any, msg: Message, action: str, *args: Any
) -> Steps[bool]:
    """``broker.<action>(msg, *args)``; whether it took (a lost lock or service error: no)."""
    try:
        yield Call(getattr(broker, action), (msg, *args))
    except LockLost:
        lock_was_lost(c, msg)
        log.warning(
            "could not %s message_id=%s: lock lost, it will be redelivered",
            action,
            msg.message_id,
        )
        return False
    except IrisCloudError as exc:
        c._ledger.count("settle_errors")
        log.warning("could not %s message_id=%s: %s", action, msg.message_id, type(exc).__name__)
        return False
    if action == "complete":
        c._ledger.count("completed")
    return True


class Completion(NamedTuple):
    """A delivery whose handling is over, to be completed; what to count and report then.

    A tuple: every handled message makes one, in a third of a dataclass's time.
    """

    of: Delivery | ContextBase
    """The delivery, or the context of its handler run (which makes the
    :class:`~iris_cloud.observers.Delivery` only if it is asked for: see
    :func:`delivery_of`)."""
    outcome: Outcome
    """How it ends once completed: ``completed``, ``duplicate`` or ``unhandled``."""
    observers: Observers
    """Who is told how it ended (:data:`~iris_cloud.observers.UNOBSERVED` if nobody)."""
    counters: tuple[str, ...] = ()
    """Counters of :class:`ConsumerStats` to add to besides ``completed``."""


def delivery_of(of: Delivery | ContextBase) -> Delivery:
    """The :class:`~iris_cloud.observers.Delivery` of a :attr:`Completion.of`."""
    return of.delivery if isinstance(of, ContextBase) else of


def completions_settled(
    c: ConsumerLike, batch: list[Completion], outcomes: list[IrisCloudError | None]
) -> None:
    """After queued completions went in one ``complete_many``: count, log, tell the observers.

    Their handlers may be long done with them, so a lost lock is counted here
    rather than through the ledger's bookkeeping of deliveries in flight.
    """
    ledger, observers = c._ledger, c._observers
    completed = outcomes.count(None)
    ledger.count_all(
        [
            name
            for done, error in zip(batch, outcomes, strict=True)
            if error is None
            for name in done.counters
        ],
        completed=completed,
    )
    # Asked once a batch: the line's arguments cost each message their time.
    announce = log.isEnabledFor(logging.INFO)
    if completed == len(batch) and not announce and not observers.tells("message_finished"):
        return  # nearly every batch: nothing to log or to tell of each message
    for done, error in zip(batch, outcomes, strict=True):
        delivery = delivery_of(done.of)
        ended = done.outcome
        if error is None:
            if announce and ended == "completed":
                log.info(
                    "handled %s message_id=%s from %s",
                    shown_kind(delivery.kind),
                    delivery.message_id,
                    delivery.source,
                )
        elif isinstance(error, LockLost):
            ledger.count("lock_lost")
            observers.lock_lost(delivery)
            log.warning(
                "could not complete message_id=%s: lock lost, it will be redelivered",
                delivery.message_id,
            )
            ended = "lock_lost"
        else:
            ledger.count("settle_errors")
            log.warning(
                "could not complete message_id=%s: %s", delivery.message_id, type(error).__name__
            )
            ended = "settle_failed"
        done.observers.message_finished(delivery, ended)


def _delivered(
    c: ConsumerLike, observers: Observers, source: str, msg: Message, kind: str, attempt: int
) -> Delivery:
    """The delivery as observers see it, once they were told of it."""
    delivery = Delivery(source, msg, kind, attempt)
    c._ledger.delivered(delivery)  # for lock_lost, told whoever observes the delivery
    if observers is not UNOBSERVED:
        observers.message_received(delivery)
        if msg.claim_check_fetched:
            observers.claim_check_fetched(delivery)
    return delivery


def _ended(
    c: ConsumerLike,
    observers: Observers,
    delivery: Delivery,
    settled: bool,
    outcome: Outcome,
    counters: tuple[str, ...],
) -> None:
    """A delivery settled without a handler run: count it, forget it, tell the observers."""
    ledger, msg = c._ledger, delivery.message
    if settled:
        for name in counters:
            ledger.count(name)
    if outcome != "deferred":
        ledger.forget(msg)
    observers.message_finished(delivery, ledger.outcome(msg, settled, outcome))


# A NamedTuple's generated __new__ is a Python frame: what every message
# makes is made as the tuple it is, every field given.
_new_tuple = tuple.__new__


class QuietRun(NamedTuple):
    """A delivery no observer observes, without dedupe, and the handler to run for it.

    The way of nearly every message: the consumer runs it with plain calls
    (run the handler, count it, queue its completion) and takes steps only
    when the handler raises (:func:`failed_run_steps`) or the broker
    completes each message at once (:func:`completed_steps`).
    """

    ctx: ContextBase
    handler: Callable[..., object]
    arity: int
    model: IrisModel


def processing(
    c: ConsumerLike, source: str, broker: Any, msg: Message, live: bool
) -> Steps[Any] | QuietRun:
    """A received message: handled while the run is ``live``, else given back.

    The consumer runs what this returns, logs what it raises (no message
    may stop a consumer) and then tells its ledger the delivery is
    :meth:`~Ledger.done`.
    """
    if live:
        return handle_steps(c, source, broker, msg)
    # Received but not started when the stop came: not worth a handler run
    # the stop would have to wait for.
    return settle_steps(c, broker, msg, "abandon")


def processing_failed(msg: Message) -> None:
    """Log what escaped the steps of ``msg`` (a bug, not the message's fault)."""
    log.exception("unexpected error processing message_id=%s", msg.message_id)


def _complete_steps(c: ConsumerLike, broker: Any, done: Completion) -> Steps[None]:
    """Complete a delivery settled without a handler run, or queue it with others."""
    msg = done.of.message
    if c._queue_completion(broker, done):
        c._ledger.forget(msg)
        return
    settled = yield from settle_steps(c, broker, msg, "complete")
    _ended(c, done.observers, delivery_of(done.of), settled, done.outcome, done.counters)


def handle_steps(c: ConsumerLike, source: str, broker: Any, msg: Message) -> Steps[None] | QuietRun:
    """One delivery, from parsing to settlement (see :mod:`iris_cloud.consumer`).

    The parse and what it decides are plain calls made at once; what is
    returned is the way the message goes from there: steps, or a
    :class:`QuietRun` for the consumer to run with plain calls.
    """
    attempt = c._ledger.attempt(msg, broker.capabilities)
    # Asked once, as the message arrives: a delivery no observer observes
    # (nearly all, with tracing on but no SDK) makes none of their calls.
    observers = c._observers.for_message(msg)
    try:
        model = parse_message(msg.body)
    except ValidationError as exc:
        delivery = _delivered(c, observers, source, msg, "invalid", attempt)
        return _poison_steps(c, observers, delivery, broker, exc)
    kind = kind_of(model)
    if c.dedupe is None and observers is UNOBSERVED:
        found = c.app.handler_for(model, kind)
        if found is not None:
            # No Delivery made: nobody asks for one unless the lock is lost.
            ctx = c._context(source, msg, kind, attempt, broker, None)
            c._ledger.delivered(ctx)
            return _new_tuple(QuietRun, (ctx, *found, model))
    delivery = _delivered(c, observers, source, msg, kind, attempt)
    if c.dedupe is None:
        return _dispatch_steps(c, observers, delivery, broker, model, (), None)
    return _deduped_steps(c, observers, delivery, broker, model, c.dedupe)


def _poison_steps(
    c: ConsumerLike, observers: Observers, delivery: Delivery, broker: Any, exc: ValidationError
) -> Steps[None]:
    msg = delivery.message
    reason = poison_reason(exc)
    log.warning("poison message_id=%s from %s: %s", msg.message_id, delivery.source, reason)
    settled = yield from settle_steps(c, broker, msg, "dead_letter", reason, field_errors(exc))
    _ended(c, observers, delivery, settled, "poison", ("poison", "dead_lettered"))


def _deduped_steps(
    c: ConsumerLike,
    observers: Observers,
    delivery: Delivery,
    broker: Any,
    model: IrisModel,
    dedupe: DedupeBackend,
) -> Steps[None]:
    msg = delivery.message
    keys = dedupe_keys(msg, model)
    if (yield Call(c._blocking, (dedupe.seen, keys))):
        log.info(
            "duplicate %s message_id=%s from %s: completed",
            shown_kind(delivery.kind),
            msg.message_id,
            delivery.source,
        )
        done = Completion(delivery, "duplicate", observers, ("duplicates",))
        yield from _complete_steps(c, broker, done)
        return
    claim = yield Call(c._blocking, (dedupe.claim, keys, c.settings.dedupe_claim_seconds))
    if claim is None:
        # A copy is being handled right now, here or in another process on
        # the same file: give this one back; once the first is done it is
        # recognised as a duplicate (or handled, if the first failed).
        delay = max(c.settings.backoff_initial, 0.1)
        args = (delay,) if broker.capabilities.delayed_retry else ()
        settled = yield from settle_steps(c, broker, msg, "abandon", *args)
        _ended(c, observers, delivery, settled, "deferred", ("deferred",))
        return
    try:
        yield from _dispatch_steps(c, observers, delivery, broker, model, keys, claim)
    except GeneratorExit:
        # The run abandoned takes no more steps: a plain call.
        dedupe.release(claim)
        raise
    except BaseException:
        # A cancel too: a step, which the async consumer takes off its event loop.
        yield Call(c._blocking, (dedupe.release, claim))
        raise
    yield Call(c._blocking, (dedupe.release, claim))


def _dispatch_steps(
    c: ConsumerLike,
    observers: Observers,
    delivery: Delivery,
    broker: Any,
    model: IrisModel,
    keys: Sequence[str],
    claim: str | None,
) -> Steps[None]:
    # The way of almost every message (a handler that returns) takes no
    # steps of its own beyond this one: each costs every message its time.
    msg, kind = delivery.message, delivery.kind
    found = c.app.handler_for(model, kind)
    if found is None:
        log.info("no handler for %s message_id=%s: completed", shown_kind(kind), msg.message_id)
        done = Completion(delivery, "unhandled", observers, ("unhandled",))
        yield from _complete_steps(c, broker, done)
        return
    handler, arity = found
    ctx = c._context(delivery.source, msg, kind, delivery.attempt, broker, claim)
    ctx.__dict__["delivery"] = delivery  # what its cached property would build
    ended: Outcome | None
    with observers.handling(delivery):
        observers.handler_started(delivery)
        began = time.monotonic()
        c._renewing(ctx, True)
        try:
            try:
                yield Call(c._run_handler, (handler, arity, model, ctx))
            except Exception as exc:
                outcome = yield from _rerun_steps(c, ctx, handler, arity, model, exc)
            else:
                outcome = None
        finally:
            c._renewing(ctx, False)
        took = time.monotonic() - began
        ended = yield from _run_over_steps(c, observers, ctx, outcome, keys)
        # None: queued to be completed with others; message_finished comes then.
        observers.handler_finished(delivery, took, ended or "completed")
    if ended is not None:
        observers.message_finished(delivery, ended)


def failed_run_steps(c: ConsumerLike, run: QuietRun, error: Exception) -> Steps[None]:
    """A :class:`QuietRun`'s handler raised ``error``, its lock still renewed: run it again
    while the consumer's own side fails, then stop renewing and settle."""
    ctx = run.ctx
    try:
        outcome = yield from _rerun_steps(c, ctx, run.handler, run.arity, run.model, error)
    finally:
        c._renewing(ctx, False)
    yield from _run_over_steps(c, UNOBSERVED, ctx, outcome, ())


def _run_over_steps(
    c: ConsumerLike,
    observers: Observers,
    ctx: ContextBase,
    outcome: Exception | _Exhausted | _Left | None,
    keys: Sequence[str],
) -> Steps[Outcome | None]:
    """Settle after the handler's runs ended with ``outcome`` (``None``: one succeeded);
    how the delivery ended, ``None`` once its completion is queued with others."""
    if outcome is not None:
        return (yield from _conclude_steps(c, ctx, outcome))
    if c.dedupe is not None:
        yield Call(c._blocking, (c.dedupe.mark, keys, ctx.claim))
    ended = handled(c, observers, ctx)
    if ended == "completed":
        ended = yield from completed_steps(c, ctx)
    return ended


def completed_steps(c: ConsumerLike, ctx: ContextBase) -> Steps[Outcome]:
    """Complete a handled delivery at once (its broker does not complete in batches)."""
    msg = ctx.message
    settled = yield from settle_steps(c, ctx.broker, msg, "complete")
    if settled:
        log.info(
            "handled %s message_id=%s from %s", shown_kind(ctx.kind), msg.message_id, ctx.source
        )
    return c._ledger.outcome(msg, settled, "completed")


def handled(c: ConsumerLike, observers: Observers, ctx: ContextBase) -> Outcome | None:
    """Count a handler run that succeeded; ``completed`` if it is to be completed now,
    ``None`` once queued with others, ``lock_lost`` if it must not be settled."""
    msg = ctx.message
    if ctx.lock_lost:
        c._ledger.count("handled")
        # Its receipt is stale (the renewer was told so, once): settling
        # with it could delete the copy another consumer now holds. It
        # comes back, and dedupe (when on) completes it as a duplicate.
        log.info(
            "handled %s message_id=%s but not settled: lock lost",
            shown_kind(ctx.kind),
            msg.message_id,
        )
        return "lock_lost"
    c._ledger.handled(msg)
    if c._queue_completion(ctx.broker, _new_tuple(Completion, (ctx, "completed", observers, ()))):
        return None
    return "completed"


def _conclude_steps(
    c: ConsumerLike, ctx: ContextBase, outcome: Exception | _Exhausted | _Left
) -> Steps[Outcome]:
    """Settle after the handler failed, ran out of runs, or its message went back."""
    msg, broker, kind = ctx.message, ctx.broker, ctx.kind
    if isinstance(outcome, _Left):
        return "lock_lost" if ctx.lock_lost else "given_back"
    if isinstance(outcome, _Exhausted):
        return (
            yield from _dead_letter_steps(c, broker, msg, kind, outcome.error, outcome.description)
        )
    return (yield from _failed_steps(c, broker, msg, kind, ctx.attempt, outcome))


def _rerun_steps(
    c: ConsumerLike,
    ctx: ContextBase,
    handler: Any,
    arity: int,
    model: IrisModel,
    error: Exception,
) -> Steps[Exception | _Exhausted | _Left | None]:
    """The handler raised ``error``: run it again while it fails on the consumer's own side
    and the lock holds.

    Returns ``None`` once a run succeeds, the message's own error,
    :class:`_Exhausted` when ``max_transient_attempts`` ran out, or ``_LEFT``
    when the message was given back (or its lock lost) without its failure
    counting against it.
    """
    msg, broker = ctx.message, ctx.broker
    pausing = False
    try:
        while True:
            if not is_transient(error):
                return error
            runs = c._ledger.transient_run(msg)
            limit = c.settings.max_transient_attempts
            if limit is not None and runs >= limit:
                return _Exhausted(
                    error, f"the consumer's own side failed {runs} times (max {limit})"
                )
            delay = transient_delay(c.settings, runs)
            log.warning(
                "%s message_id=%s: the consumer's own side failed (%s), run %d; again in "
                "%.1fs, not counted against the message",
                shown_kind(ctx.kind),
                msg.message_id,
                type(error).__name__,
                runs,
                delay,
            )
            if not broker.capabilities.lock_renewal:
                # The lock cannot be held for the wait: give it back with the delay.
                args = (delay,) if broker.capabilities.delayed_retry else ()
                c._ledger.transient_delivery(msg)
                yield from settle_steps(c, broker, msg, "abandon", *args)
                return _LEFT
            if not pausing:
                c._pausing(ctx.source, True)
                pausing = True
            c._ledger.count("transient_retries")
            if (yield Call(c._sleep, (delay,))) or ctx.lock_lost:
                c._ledger.transient_delivery(msg)
                if not ctx.lock_lost:
                    yield from settle_steps(c, broker, msg, "abandon")
                return _LEFT
            try:
                yield Call(c._run_handler, (handler, arity, model, ctx))
                return None
            except Exception as exc:
                error = exc
    finally:
        if pausing:
            c._pausing(ctx.source, False)


def _failed_steps(
    c: ConsumerLike, broker: Any, msg: Message, kind: str, attempt: int, exc: Exception
) -> Steps[Outcome]:
    limit = c.settings.max_attempts
    # Deliveries that ended on a failure of our own side are not the message's.
    own = c._ledger.own_attempts(msg, attempt)
    if own >= limit:
        description = f"handler failed on delivery {own} of at most {limit}"
        return (yield from _dead_letter_steps(c, broker, msg, kind, exc, description))
    delay = retry_delay(c.settings, own)
    log.warning(
        "%s message_id=%s failed on attempt %d (%s); retry in %.1fs",
        shown_kind(kind),
        msg.message_id,
        attempt,
        type(exc).__name__,
        delay if broker.capabilities.delayed_retry else 0.0,
    )
    args = (delay,) if broker.capabilities.delayed_retry else ()
    settled = yield from settle_steps(c, broker, msg, "abandon", *args)
    if settled:
        c._ledger.count("retried")
    return c._ledger.outcome(msg, settled, "retried")


def _dead_letter_steps(
    c: ConsumerLike, broker: Any, msg: Message, kind: str, exc: Exception, description: str
) -> Steps[Outcome]:
    reason = failure_text(exc)[:MAX_REASON]
    log.warning(
        "%s message_id=%s: %s (%s): dead-lettered",
        shown_kind(kind),
        msg.message_id,
        description,
        type(exc).__name__,
    )
    settled = yield from settle_steps(c, broker, msg, "dead_letter", reason, description)
    if settled:
        c._ledger.count("dead_lettered")
    c._ledger.forget(msg)
    return c._ledger.outcome(msg, settled, "dead_lettered")


def renew_steps(c: ConsumerLike, ctx: ContextBase, running: Callable[[], bool]) -> Steps[None]:
    """Renew ``ctx``'s lock (and its dedupe claim); mark the loss unless it already ended.

    ``running()`` says whether the handler still runs: a renewal overtaken by
    the settle finds the lock gone with the settled message, which is no loss.
    """
    try:
        yield Call(ctx.broker.renew_lock, (ctx.message,))
        c._ledger.count("lock_renewals")
        c._observers.lock_renewed(ctx.delivery)
        if ctx.claim is not None and c.dedupe is not None:
            yield Call(c._blocking, (c.dedupe.refresh, ctx.claim, c.settings.dedupe_claim_seconds))
    except LockLost:
        if not running():
            # The handler returned while this renewal was on its way and the
            # message was settled: its lock ended with it, nothing was lost.
            return
        ctx.lock_lost = True
        lock_was_lost(c, ctx.message)
        log.warning("lock lost while handling message_id=%s", ctx.message.message_id)
    except Exception as exc:
        log.warning(
            "renewing the lock of message_id=%s failed: %s",
            ctx.message.message_id,
            type(exc).__name__,
        )
