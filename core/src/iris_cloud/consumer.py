"""The receive loop: typed handlers, settlement, retries, dead letters, graceful stop.

    from iris_cloud.consumer import Consumer, IrisApp
    from iris_cloud.model import OrderGradedEvent, OrderResult

    app = IrisApp()

    @app.on(OrderGradedEvent)
    def graded(event, ctx):
        print("graded", event.order_local_id)

    @app.on(OrderResult)
    def result(res, ctx):
        save_result(res, "results/")

    @app.fallback
    def other(message, ctx):  # any other type, incl. unknown event types (GenericEvent)
        ...

    Consumer.from_profile(app, profile, roles=("events", "results")).run()

Semantics (the reliability rules of the design):

* at least once: a message is completed only after its handler returned;
* a body that does not parse is dead-lettered at once, the reason naming the
  failing field paths (poison: never retried);
* a handler exception abandons the message with exponential backoff
  (``abandon(delay)`` where ``capabilities.delayed_retry``, else a plain
  abandon); after ``max_attempts`` deliveries it is dead-lettered with the
  exception as the reason;
* a failure of the consumer's own side (:func:`~iris_cloud.errors.is_transient`:
  a full or read-only disk, a store outage) is not the message's: the handler
  is run again with growing backoff (up to ``transient_backoff_max``) while the
  message's lock is renewed, receiving from that broker pauses meanwhile, and
  none of it counts towards ``max_attempts`` (``max_transient_attempts`` is a
  separate budget, unlimited by default);
* while a handler runs its lock is renewed (``capabilities.lock_renewal``);
  a message whose lock was lost is not settled (the receipt is stale): it
  comes back;
* ``run()`` installs SIGINT/SIGTERM handlers: stop receiving, let in-flight
  handlers finish and settle them within ``stop_timeout`` seconds (those still
  running then are left, their messages come back), log the time it took and
  return 0; a second signal exits the process at once without settling;
* optional duplicate suppression by message id / ``TransactionId``
  (:class:`~iris_cloud.dedupe.Dedupe`, or
  :class:`~iris_cloud.dedupestore.StoreDedupe` shared by hosts), claimed in
  the shared store before the handler runs so that two processes do not both
  run it;
* log lines carry message ids, kinds and exception types only: never bodies,
  never exception messages (they may quote patient data).

A message with no matching handler and no fallback is completed and counted
as ``unhandled`` (an events listener interested in one event type ignores
the others).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from iris_cloud._threads import DaemonPool, call_bounded
from iris_cloud.config import ConsumerSettings
from iris_cloud.consumelogic import (
    FATAL_RECEIVE,
    Completion,
    ConsumerBase,
    ConsumerStats,
    ContextBase,
    QuietRun,
    ReceiveHealth,
    check_handler,
    completed_steps,
    completions_settled,
    failed_run_steps,
    handled,
    handler_arity,
    handler_name,
    is_async_handler,
    log_stopped,
    open_consumer_steps,
    poison_reason,
    processing,
    processing_failed,
    refuse_awaitable,
    renew_steps,
    renewal_interval,
    settle_steps,
)
from iris_cloud.dedupe import DedupeBackend
from iris_cloud.errors import ConfigurationError, IrisCloudError, LockLost
from iris_cloud.logs import get_logger
from iris_cloud.model import IrisModel
from iris_cloud.observers import UNOBSERVED, ConsumerObserver
from iris_cloud.steps import drive

if TYPE_CHECKING:
    from iris_cloud.aio.consumer import AsyncConsumer
    from iris_cloud.aio.ports import AsyncMessageBroker
    from iris_cloud.config import Profile
    from iris_cloud.ports import Message, MessageBroker, ObjectStore

__all__ = ["Consumer", "ConsumerStats", "Context", "Handler", "IrisApp", "poison_reason"]

log = get_logger("iris_cloud.consumer")

Handler = Callable[..., object]
"""``handler(message_model, ctx)`` or ``handler(message_model)``; the return value is ignored."""
H = TypeVar("H", bound=Handler)


@dataclass(kw_only=True)
class Context(ContextBase):
    """What a handler gets besides the parsed message."""

    broker: MessageBroker
    """The broker it came from (settlement is the consumer's job, not the handler's)."""
    consumer: Consumer = field(repr=False)

    def renew_lock(self) -> None:
        """Renew the message's lock now (the consumer also does it periodically)."""
        try:
            self.broker.renew_lock(self.message)
        except LockLost:
            self.lock_lost = True
            raise


def _target_name(target: type | str) -> str:
    return target.__name__ if isinstance(target, type) else repr(target)


class IrisApp:
    """Handlers by message type, as ``@app.on(OrderGradedEvent)``.

    Types match by class (a handler for :class:`~iris_cloud.model.Event`
    receives every event without a more specific handler); strings match a
    kind (``"result"``, ``"order"``, ``"grading"``, ``"event:X"``) or an event's
    ``ResultObjectType`` (``"X"``), which also catches unknown event types by
    name. :meth:`fallback` handles whatever nothing else matches.
    """

    def __init__(self) -> None:
        self._by_type: dict[type, tuple[Handler, int]] = {}
        self._by_kind: dict[str, tuple[Handler, int]] = {}
        self._fallback: tuple[Handler, int] | None = None

    def on(self, *targets: type | str) -> Callable[[H], H]:
        """Register the decorated function for each of ``targets`` (classes or kind names).

        One handler per target: registering a second one for the same class or
        kind raises :class:`ConfigurationError` (call both from one function to
        chain them). An ``async def`` handler is awaited by the
        :class:`~iris_cloud.aio.AsyncConsumer` (:meth:`async_consumer`); the
        sync :class:`Consumer` refuses an app that has one, when it is made.
        """
        if not targets:
            raise ConfigurationError("app.on() needs at least one message type")
        for target in targets:
            if not isinstance(target, str | type):
                raise ConfigurationError("app.on() takes message classes or kind strings")

        def register(fn: H) -> H:
            check_handler(fn)
            entry = (fn, handler_arity(fn))
            # Every target is checked before any is registered, so a refused
            # decorator leaves the app as it was.
            for target in targets:
                table: dict[Any, tuple[Handler, int]] = (
                    self._by_kind if isinstance(target, str) else self._by_type
                )
                if target in table and table[target][0] != fn:
                    raise ConfigurationError(
                        f"a handler for {_target_name(target)} is already registered "
                        f"({handler_name(table[target][0])}); one handler per type: "
                        "call both from one function to chain them"
                    )
            for target in targets:
                if isinstance(target, str):
                    self._by_kind[target] = entry
                else:
                    self._by_type[target] = entry
            return fn

        return register

    def fallback(self, fn: H) -> H:
        """Register the handler for messages no other handler matches (only one)."""
        check_handler(fn)
        entry = (fn, handler_arity(fn))
        if self._fallback is not None and self._fallback[0] != fn:
            raise ConfigurationError(
                f"a fallback handler is already registered ({handler_name(self._fallback[0])})"
            )
        self._fallback = entry
        return fn

    def handler_for(self, message: IrisModel, kind: str) -> tuple[Handler, int] | None:
        """The handler (and its arity) for a parsed message, or ``None``."""
        if self._by_kind:
            tag = kind.removeprefix("event:")
            for key in (kind, tag):
                if key in self._by_kind:
                    return self._by_kind[key]
        found = self._by_type.get(type(message))
        if found is not None:
            return found
        for cls in type(message).__mro__:
            if cls in self._by_type:
                return self._by_type[cls]
        return self._fallback

    def async_handlers(self) -> list[str]:
        """The names of the ``async def`` handlers (those only an async consumer runs)."""
        entries = [*self._by_type.values(), *self._by_kind.values()]
        if self._fallback is not None:
            entries.append(self._fallback)
        names = {handler_name(fn) for fn, _ in entries if is_async_handler(fn)}
        return sorted(names)

    def consumer(
        self,
        brokers: MessageBroker | Sequence[MessageBroker] | Mapping[str, MessageBroker],
        **kwargs: Any,
    ) -> Consumer:
        """A :class:`Consumer` running this app on ``brokers``."""
        return Consumer(self, brokers, **kwargs)

    def async_consumer(
        self,
        brokers: AsyncMessageBroker | Sequence[AsyncMessageBroker] | Mapping[str, Any],
        **kwargs: Any,
    ) -> AsyncConsumer:
        """An :class:`~iris_cloud.aio.AsyncConsumer` running this app on async ``brokers``."""
        from iris_cloud.aio.consumer import AsyncConsumer

        return AsyncConsumer(self, brokers, **kwargs)


class _Timer:
    """One thread running callbacks when they fall due, from a heap of due times.

    It sleeps until the earliest due time (at most :data:`_IDLE` seconds) and
    is woken only for an entry due before then: a lock renewal due in seconds
    costs the handler that adds it no wakeup of this thread. Cancelled
    entries are dropped when they surface, or all at once when they pile up.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, Callable[[], object]] = {}
        self._seq = itertools.count()
        self._next_wake = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # A new event each run: a timer of an earlier run still inside a
        # renewal on a dead connection must not come back to life.
        with self._lock:
            self._heap.clear()
            self._live.clear()
            self._next_wake = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name=self.name, daemon=True
        )
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def add(self, due: float, callback: Callable[[], object]) -> int:
        """Run ``callback`` in the timer thread at monotonic time ``due``; returns its key."""
        with self._lock:
            key = next(self._seq)
            self._live[key] = callback
            heapq.heappush(self._heap, (due, key))
            if len(self._heap) > 2 * len(self._live) + 64:
                self._heap = [e for e in self._heap if e[1] in self._live]
                heapq.heapify(self._heap)
            wake = due < self._next_wake
        if wake:
            self._wake.set()
        return key

    def cancel(self, key: int) -> None:
        with self._lock:
            self._live.pop(key, None)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                now = time.monotonic()
                due: list[Callable[[], object]] = []
                while self._heap and self._heap[0][0] <= now:
                    callback = self._live.pop(heapq.heappop(self._heap)[1], None)
                    if callback is not None:
                        due.append(callback)
                self._next_wake = min(self._heap[0][0] if self._heap else now + _IDLE, now + _IDLE)
                # Cleared under the lock that add() sets it after: no wakeup is lost.
                self._wake.clear()
            for callback in due:
                try:
                    callback()
                except Exception:
                    log.exception("a consumer timer failed")
            if not due:
                self._wake.wait(max(0.0, self._next_wake - time.monotonic()))


_IDLE = 1.0
"""Longest the timer thread sleeps with nothing due."""

_RUN_POLL = 0.5
"""Longest a run without a predicate waits between looks at its deadline."""


class _Renewer:
    """Renews the locks of running handlers' messages when due, on its own timer thread.

    Each running handler's message is in a table with its next renewal time,
    and one sweep, on the timer at the earliest of those, renews what is due
    and schedules the next. A message whose renewal is not the earliest (with
    locks of seconds and handlers of milliseconds, nearly every one) is added
    and removed without the timer hearing of it.
    """

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.timer = _Timer("iris-cloud-renewer")
        self._lock = threading.Lock()
        # id(ctx) -> [next renewal (monotonic), seconds between renewals, ctx]
        self._table: dict[int, list[Any]] = {}
        self._sweep_at = math.inf
        self._sweep_key = -1
        # The lock end, first renewal and interval of the last message added.
        self._last: tuple[datetime | None, float, float] = (None, 0.0, 0.0)

    def start(self) -> None:
        with self._lock:
            self._table.clear()
            self._sweep_at = math.inf
            self._last = (None, 0.0, 0.0)
        self.timer.start()

    def alive(self) -> bool:
        return self.timer.alive()

    def stop(self, timeout: float) -> None:
        self.timer.stop(timeout)

    def renewing(self, ctx: Context, on: bool) -> None:
        """Renew ``ctx``'s lock from now on (``on``), or no longer."""
        if not on:
            self._table.pop(id(ctx), None)
            return
        if not ctx.broker.capabilities.lock_renewal:
            return
        # A lock that ends when the last one added did (the messages of one
        # receive share their end) is renewed when that one is: a little
        # early at worst, and no interval worked out again.
        until = ctx.message.locked_until
        last_until, due, every = self._last
        if until is None or until is not last_until:
            every = renewal_interval(self.consumer.settings, ctx.message)
            due = time.monotonic() + every
            self._last = (until, due, every)
        # Single dict operations are atomic: the table takes no lock, only a
        # change of the sweep's time does. The entry goes in before the sweep
        # time is read, so a sweep in progress either sees it or is rescheduled.
        self._table[id(ctx)] = [due, every, ctx]
        if due < self._sweep_at:
            with self._lock:
                if due < self._sweep_at:
                    self._schedule(due)

    def _schedule(self, at: float) -> None:
        # With self._lock held: the one sweep to come is at ``at``.
        if self._sweep_at < math.inf:
            self.timer.cancel(self._sweep_key)
        self._sweep_at = at
        self._sweep_key = self.timer.add(at, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._sweep_at = math.inf
        due = [entry for entry in list(self._table.values()) if entry[0] <= now]
        for entry in due:
            ctx = entry[2]
            if not self._running(ctx):
                continue
            self._renew(ctx)
            # A lost lock is not renewed again; the handler still runs.
            entry[0] = math.inf if ctx.lock_lost else time.monotonic() + entry[1]
        with self._lock:
            soonest = min((entry[0] for entry in list(self._table.values())), default=math.inf)
            if soonest < self._sweep_at:
                self._schedule(soonest)

    def _renew(self, ctx: Context) -> None:
        drive(renew_steps(self.consumer, ctx, functools.partial(self._running, ctx)))

    def _running(self, ctx: Context) -> bool:
        entry = self._table.get(id(ctx))
        return entry is not None and entry[2] is ctx


class _Completions:
    """Completions of one broker settled together by ``complete_many``.

    A batch goes when it holds ``settle_batch`` messages (by the handler that
    filled it) or at most ``settle_delay`` seconds after its first (by the
    timer), and when the run winds up. Only handled messages enter it, so a crash before
    it goes loses nothing: their locks run out and they come back.
    """

    def __init__(self, consumer: Consumer, broker: MessageBroker) -> None:
        self.consumer = consumer
        self.broker = broker
        # A run's settings do not change while it lasts, and each run has its own.
        self._batch = consumer.settings.settle_batch
        self._delay = consumer.settings.settle_delay
        self._lock = threading.Lock()
        self._items: list[Completion] = []
        self._armed = False
        self._closed = False

    def add(self, done: Completion) -> bool:
        """Queue ``done``; ``False`` once the run wound up (the caller settles it now)."""
        with self._lock:
            if self._closed:
                return False
            items = self._items
            items.append(done)
            full = len(items) >= self._batch
            if self._armed and not full:
                return True  # nearly every completion: the batch goes later
            # Armed once for the batches of the next settle_delay, full ones
            # included: under load the timer thread wakes once in that time,
            # not twice a batch, and a batch started after a full one waits
            # no longer than it would have.
            arm = not self._armed
            self._armed = True
        if arm:
            self.consumer._settle_timer.add(time.monotonic() + self._delay, self._on_time)
        if full:
            self.flush()
        return True

    def _on_time(self) -> None:
        with self._lock:
            self._armed = False
        self.flush()

    def flush(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        if items:
            self.consumer._complete_batch(self.broker, items)

    def close(self) -> None:
        """Settle what is queued; later completions of this run's handlers go one by one."""
        with self._lock:
            self._closed = True
        self.flush()


class Consumer(ConsumerBase):
    """Runs an :class:`IrisApp` on one or more brokers.

    Args:
        app: the handlers.
        brokers: one broker, a list, or a mapping name -> broker (names show
            in :attr:`Context.source` and logs).
        settings: batch size, wait, concurrency, retries, lock renewal, dedupe
            (default: :class:`~iris_cloud.config.ConsumerSettings`); keyword
            ``overrides`` replace single fields (``concurrency=8``).
        dedupe: a :class:`~iris_cloud.dedupe.DedupeBackend` (``Dedupe``,
            ``StoreDedupe``), a SQLite path or an object-store URL (see
            :func:`~iris_cloud.dedupe.open_dedupe`), ``True`` (in memory) or
            ``None`` (``settings.dedupe``, off when unset).
        close_brokers: close the brokers when the consumer is closed (what
            :meth:`from_profile` sets).
        observers: :class:`~iris_cloud.observers.ConsumerObserver` instances
            told of each receive, delivery, handler run, settlement and lock
            renewal (metrics, health, tracing); one that raises is logged and
            skipped. While ``opentelemetry-api`` is installed a
            :class:`~iris_cloud.tracing.TracingObserver` comes first, its span
            around the others, unless one is given.
    """

    _context_class = Context

    def __init__(
        self,
        app: IrisApp,
        brokers: MessageBroker | Sequence[MessageBroker] | Mapping[str, MessageBroker],
        *,
        settings: ConsumerSettings | None = None,
        dedupe: DedupeBackend | str | os.PathLike[str] | bool | None = None,
        close_brokers: bool = False,
        observers: Sequence[ConsumerObserver] = (),
        **overrides: Any,
    ) -> None:
        refused = app.async_handlers()
        if refused:
            raise ConfigurationError(
                f"handler {refused[0]} is async; this Consumer runs handlers in threads: "
                "run the app on an AsyncConsumer (app.async_consumer(...), iris_cloud.aio)"
            )
        super().__init__(
            app,
            brokers,
            settings=settings,
            dedupe=dedupe,
            close_brokers=close_brokers,
            observers=observers,
            overrides=overrides,
        )
        self.brokers: dict[str, MessageBroker]
        self._stop = threading.Event()
        # The lock itself, not the condition, for what every message does:
        # taken without a Python frame, and the condition is told only when
        # a thread waits on it.
        self._slot_lock = threading.Lock()
        self._slots = threading.Condition(self._slot_lock)
        self._inflight = 0
        self._waiting = 0  # threads in self._slots.wait (under self._slot_lock)
        # Each run has its own number: threads of an earlier run left in a
        # call on a dead connection see that their run is over.
        self._generation = 0
        # The running generation's number while it is not stopping, else -1:
        # one comparison tells a thread whether its run goes on.
        self._live_generation = -1
        self._renewer = _Renewer(self)
        # What the steps call twice for every message: the renewer's own method.
        self._renewing: Callable[[Context, bool], None] = self._renewer.renewing
        # Its own thread: a renewal stuck on a dead connection must not hold
        # up completions, nor a slow complete_many the renewals.
        self._settle_timer = _Timer("iris-cloud-settler")
        self._completions: dict[str, _Completions] = {}
        self._fatal: BaseException | None = None
        self._running = False

    @classmethod
    def from_profile(
        cls,
        app: IrisApp,
        profile: Profile,
        roles: Iterable[str] = ("events", "results"),
        **kwargs: Any,
    ) -> Consumer:
        """A consumer on the profile's ``roles`` (opened now, closed with the consumer).

        The profile's ``consumer`` settings apply unless ``settings=`` is given;
        one claim-check store is shared by all the brokers.
        """
        consumer: Consumer = drive(
            open_consumer_steps(
                cls, app, profile, roles, kwargs, open_broker="open_broker", open_store="open_store"
            )
        )
        return consumer

    _claim_store: ObjectStore | None = None

    # -- control -------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (or a signal arrived)."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop receiving; in-flight handlers finish and are settled. Safe from any thread.

        The run returns once they have, or after ``stop_timeout`` seconds; a
        receive call in progress is not waited for (what it brings is given back).
        """
        self._stop.set()
        self._live_generation = -1
        with self._slots:
            self._slots.notify_all()

    def run(self) -> int:
        """Consume until SIGINT/SIGTERM (or :meth:`stop`); returns 0 after a clean stop.

        Signal handlers are installed only when called from the main thread
        and restored afterwards. A second signal while stopping exits the
        process at once (status 128 + the signal) without settling: the
        in-flight messages come back after their lock.
        """
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def on_signal(signum: int, frame: FrameType | None) -> None:
                if self.stopping:
                    log.warning("signal %s while stopping: exiting now, unsettled", signum)
                    for handler in logging.getLogger().handlers + log.logger.handlers:
                        handler.flush()
                    os._exit(128 + signum)
                log.info("signal %s: stopping after in-flight messages", signum)
                self.stop()

            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self._run(None, None)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def run_until(
        self,
        predicate: Callable[[ConsumerStats], bool] | None = None,
        timeout: float | None = None,
    ) -> ConsumerStats:
        """Consume until ``predicate(stats)`` is true, ``timeout`` seconds pass or :meth:`stop`.

        In-flight messages are finished and settled before it returns. Raises
        the error that stopped a receiver for good (e.g. PermissionDenied).
        """
        return self._run(predicate, timeout)

    def _run(
        self, predicate: Callable[[ConsumerStats], bool] | None, timeout: float | None
    ) -> ConsumerStats:
        if self._running:
            raise ConfigurationError("this consumer is already running")
        self._running = True
        self._receivers = []
        self._fatal = None
        self._generation += 1
        generation = self._generation
        # Set before the stop event is read: a stop() in between is seen either way.
        self._live_generation = generation
        if self._stop.is_set():
            self._live_generation = -1
        deadline = None if timeout is None else time.monotonic() + timeout
        # One handler on one broker: the receive loop runs it itself, so a
        # message never changes threads between its receive and its settle.
        inline = self.settings.concurrency == 1 and len(self.brokers) == 1
        pool = DaemonPool(0 if inline else self.settings.concurrency, "iris-cloud-handler")
        self._renewer.start()
        self._completions = {
            name: _Completions(self, broker)
            for name, broker in self.brokers.items()
            if broker.capabilities.batch_settle
            and self.settings.settle_batch > 1
            and self.settings.settle_delay > 0
        }
        if self._completions:
            self._settle_timer.start()
        self._observers.consumer_started(self)
        receivers = [
            threading.Thread(
                target=self._receive_loop,
                args=(name, broker, pool, generation),
                name=f"iris-cloud-receive-{name}",
                daemon=True,
            )
            for name, broker in self.brokers.items()
        ]
        for t in receivers:
            t.start()
        # Published once started: a thread not started yet is not alive either.
        self._receivers = receivers
        try:
            while not self._stop.is_set():
                if predicate is not None and predicate(self.snapshot()):
                    break
                left = math.inf if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    break
                # Only a predicate is looked at every 20 ms: a stop wakes the
                # wait, and each needless wakeup costs the receive loop a
                # change of hands of the GIL.
                self._stop.wait(min(left, 0.02 if predicate is not None else _RUN_POLL))
        finally:
            self.stop()
            self._observers.consumer_stopping(self)
            self._wind_up(pool, receivers)
            self._observers.consumer_stopped(self)
            # Cleared when a run ends, not when one starts: a stop() (or a
            # signal) that comes before or as the run begins is honoured, and
            # the consumer can run again afterwards.
            self._generation += 1
            self._stop.clear()
            self._running = False
        if self._fatal is not None:
            raise self._fatal
        return self.snapshot()

    def _wind_up(self, pool: DaemonPool, receivers: list[threading.Thread]) -> None:
        """Wait for in-flight handlers up to ``stop_timeout``; a receive call is not waited for."""
        began = time.monotonic()
        budget = self.settings.stop_timeout
        left = pool.shutdown(budget)
        with self._slots:
            # Handlers the receive loops run themselves (concurrency 1) end here.
            while self._inflight and (remaining := began + budget - time.monotonic()) > 0:
                self._wait_for_slots(remaining)
            left = max(left, self._inflight)
        for completions in self._completions.values():
            completions.close()
        left_over = max(0.0, budget - (time.monotonic() - began))
        self._settle_timer.stop(left_over)
        self._renewer.stop(left_over)
        polling = sum(t.is_alive() for t in receivers)
        log_stopped(time.monotonic() - began, left, budget, polling, again=False)

    def start(self) -> threading.Thread:
        """Run in a background thread (the demo, embedding); :meth:`stop` then :meth:`join`."""
        thread = threading.Thread(
            target=self._run_in_background, name="iris-cloud-consumer", daemon=True
        )
        self._thread = thread
        thread.start()
        return thread

    _receivers: list[threading.Thread] = []

    def dead_threads(self) -> list[str]:
        """Names of this run's receive loops and lock renewer that ended (``[]`` when well).

        Outside a run, and once a stop began, nothing is expected to run: ``[]``.
        """
        if not self._running or self.stopping:
            return []
        dead = [t.name for t in self._receivers if not t.is_alive()]
        if not self._renewer.alive():
            dead.append("iris-cloud-renewer")
        return dead

    def _run_in_background(self) -> None:
        try:
            self._run(None, None)
        except BaseException as exc:  # kept for join() to re-raise in the caller's thread
            self._background_error = exc

    def join(self, timeout: float | None = None) -> ConsumerStats:
        """Wait for a :meth:`start`-ed consumer to finish; re-raises what stopped it."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("the consumer did not stop in time")
            self._thread = None
        error, self._background_error = self._background_error, None
        if error is not None:
            raise error
        return self.snapshot()

    _thread: threading.Thread | None = None
    _background_error: BaseException | None = None

    # -- receiving -----------------------------------------------------------
    def _receive_loop(
        self, name: str, broker: MessageBroker, pool: DaemonPool, generation: int
    ) -> None:
        health = ReceiveHealth(self, name)
        concurrency, batch, wait = (
            self.settings.concurrency,
            self.settings.batch_size,
            self.settings.wait,
        )
        # Slots of the messages this thread handled itself, given back at its
        # next look at the slots: one lock section a message fewer.
        held = 0
        while True:
            with self._slot_lock:
                if held:
                    self._released(held)
                    held = 0
                while self._live_generation == generation and (
                    self._inflight >= concurrency or (self._paused and self._paused.get(name))
                ):
                    self._wait_for_slots(0.5)
                if self._live_generation != generation:
                    return
                free = concurrency - self._inflight
            try:
                messages = broker.receive(min(batch, free), wait)
            except FATAL_RECEIVE as exc:
                if not self._live(generation):
                    return
                health.fatal(exc)
                self._fatal = exc
                self.stop()
                return
            except Exception as exc:
                if not self._live(generation):
                    return
                self._stop.wait(health.failed(exc))
                continue
            health.ok(len(messages))
            if not messages:
                continue
            if self._live_generation != generation:
                # The run ended while this call waited: they come back now.
                self._give_back(broker, messages)
                return
            self._ledger.received(len(messages))
            with self._slot_lock:
                self._inflight += len(messages)
            if pool.workers:
                for msg in messages:
                    pool.submit(functools.partial(self._process, name, broker, msg, generation))
                continue
            try:
                for msg in messages:
                    self._handle(name, broker, msg, generation)
            except BaseException:  # the thread ends: its slots must not stay taken
                self._release(len(messages))
                raise
            held = len(messages)

    def _live(self, generation: int) -> bool:
        return self._live_generation == generation

    def _wait_for_slots(self, timeout: float) -> None:
        # With self._slot_lock held; counted, so that a freed slot tells only a waiter.
        self._waiting += 1
        try:
            self._slots.wait(timeout)
        finally:
            self._waiting -= 1

    def _give_back(self, broker: MessageBroker, messages: Iterable[Message]) -> None:
        """Abandon messages the stopping consumer took but will not handle."""
        for msg in messages:
            drive(settle_steps(self, broker, msg, "abandon"))

    def _process(self, name: str, broker: MessageBroker, msg: Message, generation: int) -> None:
        """Handle ``msg`` in a worker of the pool and give its slot back."""
        try:
            self._handle(name, broker, msg, generation)
        finally:
            self._release(1)

    def _handle(self, name: str, broker: MessageBroker, msg: Message, generation: int) -> None:
        try:
            work = processing(self, name, broker, msg, self._live_generation == generation)
            if isinstance(work, QuietRun):
                self._run_quietly(work)
            else:
                drive(work)
        except Exception:
            processing_failed(msg)
        finally:
            self._ledger.done(msg)

    def _release(self, slots: int) -> None:
        with self._slot_lock:
            self._released(slots)

    def _released(self, slots: int) -> None:
        # With self._slot_lock held.
        self._inflight -= slots
        if self._waiting:
            self._slots.notify_all()

    def _run_quietly(self, run: QuietRun) -> None:
        """Run a :class:`~iris_cloud.consumelogic.QuietRun` (nearly every delivery) in plain calls.

        What the steps would do, without a generator and a driver per
        message; the async consumer's twin awaits the same calls, and both
        hand the rare ways (a failed run, a completion one by one) to the
        shared steps.
        """
        ctx: Context = run.ctx  # type: ignore[assignment]  # the class it makes; cast() is a call
        self._renewing(ctx, True)
        try:
            self._run_handler(run.handler, run.arity, run.model, ctx)
        except Exception as exc:
            drive(failed_run_steps(self, run, exc))  # stops renewing before it settles
            return
        finally:
            self._renewing(ctx, False)
        if handled(self, UNOBSERVED, ctx) == "completed":
            drive(completed_steps(self, ctx))

    # -- what the steps call (consumelogic.ConsumerLike) ------------------------
    def _pausing(self, source: str, on: bool) -> None:
        """Receiving from ``source`` pauses while a handler waits out a consumer-side failure."""
        with self._slots:
            self._count_pause(source, on)
            self._slots.notify_all()

    @staticmethod
    def _run_handler(handler: Handler, arity: int, model: IrisModel, ctx: Context) -> None:
        returned = handler(model) if arity == 1 else handler(model, ctx)
        if returned is not None:  # nearly every handler's: not worth a call
            refuse_awaitable(returned)

    @staticmethod
    def _blocking(fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    def _sleep(self, delay: float) -> bool:
        return self._stop.wait(delay)

    def _queue_completion(self, broker: MessageBroker, done: Completion) -> bool:
        completions = self._completions.get(done.of.source)
        return completions is not None and completions.add(done)

    def _complete_batch(self, broker: MessageBroker, batch: list[Completion]) -> None:
        """Complete queued deliveries by one ``complete_many``."""
        try:
            outcomes = broker.complete_many([d.of.message for d in batch])
        except Exception as exc:  # a provider's bug: the messages come back after their locks
            log.error("completing %d messages failed: %s", len(batch), type(exc).__name__)
            outcomes = [IrisCloudError(type(exc).__name__)] * len(batch)
        completions_settled(self, batch, outcomes)

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        """Stop (and join a started consumer), then close what it owns."""
        self.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.close_brokers:
            # A close on a dead connection can block in the SDK: bounded, so
            # that a stop stays within its time whatever the network does.
            budget = max(self.settings.stop_timeout, 1.0)
            for name, broker in self.brokers.items():
                call_bounded(broker.close, budget, f"closing {name}")
            if self._claim_store is not None:
                call_bounded(self._claim_store.close, budget, "closing the claim-check store")
        if self.dedupe is not None and self._owns_dedupe:
            self.dedupe.close()
        self._service.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
