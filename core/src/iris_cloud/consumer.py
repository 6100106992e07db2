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
* while a handler runs its lock is renewed (``capabilities.lock_renewal``);
* ``run()`` installs SIGINT/SIGTERM handlers: stop receiving, let in-flight
  handlers finish, settle them, return 0;
* optional duplicate suppression by message id / ``TransactionId``
  (:class:`~iris_cloud.dedupe.Dedupe`);
* log lines carry message ids, kinds and exception types only: never bodies,
  never exception messages (they may quote patient data).

A message with no matching handler and no fallback is completed and counted
as ``unhandled`` (an events listener interested in one event type ignores
the others).
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from iris_cloud.config import ConsumerSettings
from iris_cloud.dedupe import Dedupe
from iris_cloud.errors import (
    ConfigurationError,
    IrisCloudError,
    LockLost,
    PermissionDenied,
    ValidationError,
)
from iris_cloud.model import IrisModel, kind_of, parse_message

if TYPE_CHECKING:
    from iris_cloud.config import Profile
    from iris_cloud.ports import Message, MessageBroker, ObjectStore

__all__ = ["Consumer", "ConsumerStats", "Context", "Handler", "IrisApp", "poison_reason"]

log = logging.getLogger("iris_cloud.consumer")

Handler = Callable[..., object]
"""``handler(message_model, ctx)`` or ``handler(message_model)``; the return value is ignored."""
H = TypeVar("H", bound=Handler)

MAX_REASON = 1024


@dataclass
class Context:
    """What a handler gets besides the parsed message."""

    message: Message
    """The broker message (ids, properties, delivery count; the body as bytes)."""
    broker: MessageBroker
    """The broker it came from (settlement is the consumer's job, not the handler's)."""
    source: str
    """The name the consumer gave that broker (a profile role such as ``events``)."""
    kind: str
    """``order``, ``result``, ``grading`` or ``event:<ResultObjectType>``."""
    attempt: int
    """1 on the first delivery."""
    consumer: Consumer = field(repr=False)
    lock_lost: bool = False
    """Set when renewing the lock failed: the message will be delivered again."""

    def renew_lock(self) -> None:
        """Renew the message's lock now (the consumer also does it periodically)."""
        try:
            self.broker.renew_lock(self.message)
        except LockLost:
            self.lock_lost = True
            raise

    @property
    def stopping(self) -> bool:
        """Whether the consumer is shutting down (a long handler may wind up early)."""
        return self.consumer.stopping


@dataclass
class ConsumerStats:
    """Counters of one consumer (thread-safe updates through :meth:`Consumer._count`)."""

    received: int = 0
    handled: int = 0
    completed: int = 0
    unhandled: int = 0
    duplicates: int = 0
    deferred: int = 0
    """Copies given back because another copy was being handled at the time."""
    retried: int = 0
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


def _arity(fn: Callable[..., object]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return 1 if len(positional) == 1 else 2


def _handler_name(fn: Callable[..., object]) -> str:
    return str(getattr(fn, "__qualname__", None) or type(fn).__qualname__)


def _target_name(target: type | str) -> str:
    return target.__name__ if isinstance(target, type) else repr(target)


def _check_sync(fn: H) -> H:
    """``fn`` if it is a plain callable; :class:`ConfigurationError` for coroutine functions."""
    # An instance whose __call__ is async is a coroutine function in disguise.
    call = getattr(fn, "__call__", None)  # noqa: B004
    if any(inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f) for f in (fn, call)):
        raise ConfigurationError(
            f"handler {_handler_name(fn)} is async; handlers run in threads and must be "
            "plain functions (wrap it: def handler(m, ctx): asyncio.run(coro(m, ctx)))"
        )
    if not callable(fn):
        raise ConfigurationError(f"handler {fn!r} is not callable")
    return fn


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
        chain them). ``async def`` handlers are refused too: the consumer runs
        handlers in threads and would complete the message without awaiting.
        """
        if not targets:
            raise ConfigurationError("app.on() needs at least one message type")
        for target in targets:
            if not isinstance(target, str | type):
                raise ConfigurationError("app.on() takes message classes or kind strings")

        def register(fn: H) -> H:
            entry = (fn, _arity(_check_sync(fn)))
            # Every target is checked before any is registered, so a refused
            # decorator leaves the app as it was.
            for target in targets:
                table: dict[Any, tuple[Handler, int]] = (
                    self._by_kind if isinstance(target, str) else self._by_type
                )
                if target in table and table[target][0] != fn:
                    raise ConfigurationError(
                        f"a handler for {_target_name(target)} is already registered "
                        f"({_handler_name(table[target][0])}); one handler per type: "
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
        entry = (fn, _arity(_check_sync(fn)))
        if self._fallback is not None and self._fallback[0] != fn:
            raise ConfigurationError(
                f"a fallback handler is already registered ({_handler_name(self._fallback[0])})"
            )
        self._fallback = entry
        return fn

    def handler_for(self, message: IrisModel, kind: str) -> tuple[Handler, int] | None:
        """The handler (and its arity) for a parsed message, or ``None``."""
        tag = kind.removeprefix("event:")
        for key in (kind, tag):
            if key in self._by_kind:
                return self._by_kind[key]
        for cls in type(message).__mro__:
            if cls in self._by_type:
                return self._by_type[cls]
        return self._fallback

    def consumer(
        self,
        brokers: MessageBroker | Sequence[MessageBroker] | Mapping[str, MessageBroker],
        **kwargs: Any,
    ) -> Consumer:
        """A :class:`Consumer` running this app on ``brokers``."""
        return Consumer(self, brokers, **kwargs)


def poison_reason(exc: ValidationError) -> str:
    """The dead-letter reason for a body that does not parse: its failing field paths."""
    paths = ", ".join(e.path or "<root>" for e in exc.errors) or "<root>"
    return f"invalid message: {paths}"[:MAX_REASON]


class _Renewer:
    """One thread renewing the locks of running handlers' messages when due."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self._lock = threading.Lock()
        self._due: dict[int, tuple[float, float, Context]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="iris-cloud-renewer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def interval(self, msg: Message) -> float:
        configured = self.consumer.settings.lock_renewal_interval
        if configured is not None:
            return configured
        if msg.locked_until is not None:
            remaining = (msg.locked_until - datetime.now(UTC)).total_seconds()
            return max(remaining / 2, 0.05)
        return 10.0

    def add(self, ctx: Context) -> None:
        if not ctx.broker.capabilities.lock_renewal:
            return
        every = self.interval(ctx.message)
        with self._lock:
            self._due[id(ctx)] = (time.monotonic() + every, every, ctx)
        self._wake.set()

    def remove(self, ctx: Context) -> None:
        with self._lock:
            self._due.pop(id(ctx), None)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                due = [(k, e) for k, e in self._due.items() if e[0] <= now]
                upcoming = min((e[0] for e in self._due.values()), default=now + 1.0)
            for key, (_, every, ctx) in due:
                self._renew(ctx)
                with self._lock:
                    if key in self._due and not ctx.lock_lost:
                        self._due[key] = (time.monotonic() + every, every, ctx)
                    else:
                        self._due.pop(key, None)
            self._wake.wait(max(0.01, min(upcoming - time.monotonic(), 1.0)))
            self._wake.clear()

    def _renew(self, ctx: Context) -> None:
        try:
            ctx.broker.renew_lock(ctx.message)
            self.consumer._count("lock_renewals")
        except LockLost:
            with self._lock:
                running = id(ctx) in self._due
            if not running:
                # The handler returned while this renewal was on its way and the
                # message was settled: its lock ended with it, nothing was lost.
                return
            ctx.lock_lost = True
            self.consumer._lost_lock(ctx.message)
            log.warning("lock lost while handling message_id=%s", ctx.message.message_id)
        except Exception as exc:
            log.warning(
                "renewing the lock of message_id=%s failed: %s",
                ctx.message.message_id,
                type(exc).__name__,
            )


class Consumer:
    """Runs an :class:`IrisApp` on one or more brokers.

    Args:
        app: the handlers.
        brokers: one broker, a list, or a mapping name -> broker (names show
            in :attr:`Context.source` and logs).
        settings: batch size, wait, concurrency, retries, lock renewal, dedupe
            (default: :class:`~iris_cloud.config.ConsumerSettings`); keyword
            ``overrides`` replace single fields (``concurrency=8``).
        dedupe: a :class:`~iris_cloud.dedupe.Dedupe`, a SQLite path, ``True``
            (in memory) or ``None`` (``settings.dedupe``, off when unset).
        close_brokers: close the brokers when the consumer is closed (what
            :meth:`from_profile` sets).
    """

    def __init__(
        self,
        app: IrisApp,
        brokers: MessageBroker | Sequence[MessageBroker] | Mapping[str, MessageBroker],
        *,
        settings: ConsumerSettings | None = None,
        dedupe: Dedupe | str | os.PathLike[str] | bool | None = None,
        close_brokers: bool = False,
        **overrides: Any,
    ) -> None:
        self.app = app
        if isinstance(brokers, Mapping):
            self.brokers: dict[str, MessageBroker] = dict(brokers)
        elif isinstance(brokers, Sequence):
            self.brokers = {f"broker{i}": b for i, b in enumerate(brokers)}
        else:
            self.brokers = {"broker": brokers}
        if not self.brokers:
            raise ConfigurationError("a Consumer needs at least one broker")
        base = settings or ConsumerSettings()
        self.settings = base.model_copy(update=overrides) if overrides else base
        if overrides:
            self.settings = ConsumerSettings.model_validate(self.settings.model_dump())
        self._owns_dedupe = not isinstance(dedupe, Dedupe)
        if isinstance(dedupe, Dedupe):
            self.dedupe: Dedupe | None = dedupe
        elif dedupe is True:
            self.dedupe = Dedupe(None, retention_days=self.settings.dedupe_retention_days)
        elif dedupe is None or dedupe is False:
            path = self.settings.dedupe if dedupe is None else None
            self.dedupe = (
                Dedupe(path, retention_days=self.settings.dedupe_retention_days) if path else None
            )
        else:
            self.dedupe = Dedupe(dedupe, retention_days=self.settings.dedupe_retention_days)
        self.close_brokers = close_brokers
        for broker_name, broker in self.brokers.items():
            limit = broker.capabilities.max_delivery_count
            if limit is not None and limit < self.settings.max_attempts:
                # The service dead-letters first, with its own reason, not the exception.
                log.warning(
                    "%s dead-letters after %d deliveries, before max_attempts=%d",
                    broker_name,
                    limit,
                    self.settings.max_attempts,
                )
        self.stats = ConsumerStats()
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._slots = threading.Condition()
        self._inflight = 0
        self._attempts: dict[str, int] = {}
        # Deliveries already counted in lock_lost (by id of the Message): the
        # renewer and the settle that follows see the same loss.
        self._lost: set[int] = set()
        self._busy_keys: set[str] = set()
        self._renewer = _Renewer(self)
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
        names = list(roles)
        profile.require(*names)
        claim: ObjectStore | None = (
            profile.open_store("claim_check") if profile.claim_check else None
        )
        opened: dict[str, MessageBroker] = {}
        try:
            for role in names:
                opened[role] = profile.open_broker(role, claim_check=claim)
        except BaseException:
            for broker in opened.values():
                broker.close()
            if claim is not None:
                claim.close()
            raise
        kwargs.setdefault("settings", profile.consumer)
        consumer = cls(app, opened, close_brokers=True, **kwargs)
        consumer._claim_store = claim
        return consumer

    _claim_store: ObjectStore | None = None

    # -- control -------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (or a signal arrived)."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop receiving; in-flight handlers finish and are settled. Safe from any thread."""
        self._stop.set()
        with self._slots:
            self._slots.notify_all()

    def run(self) -> int:
        """Consume until SIGINT/SIGTERM (or :meth:`stop`); returns 0 after a clean stop.

        Signal handlers are installed only when called from the main thread
        and restored afterwards. A second signal while stopping restores the
        default handlers, so a third one kills the process.
        """
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def on_signal(signum: int, frame: FrameType | None) -> None:
                log.info("signal %s: stopping after in-flight messages", signum)
                if self.stopping:
                    for sig, handler in previous.items():
                        signal.signal(sig, handler)
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
        self._fatal = None
        deadline = None if timeout is None else time.monotonic() + timeout
        pool = ThreadPoolExecutor(
            max_workers=self.settings.concurrency, thread_name_prefix="iris-cloud-handler"
        )
        self._renewer.start()
        receivers = [
            threading.Thread(
                target=self._receive_loop,
                args=(name, broker, pool),
                name=f"iris-cloud-receive-{name}",
                daemon=True,
            )
            for name, broker in self.brokers.items()
        ]
        for t in receivers:
            t.start()
        try:
            while not self._stop.is_set():
                if predicate is not None and predicate(self.snapshot()):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self._stop.wait(0.02)
        finally:
            self.stop()
            for t in receivers:
                t.join()
            pool.shutdown(wait=True)
            self._renewer.stop()
            # Cleared when a run ends, not when one starts: a stop() (or a
            # signal) that comes before or as the run begins is honoured, and
            # the consumer can run again afterwards.
            self._stop.clear()
            self._running = False
        if self._fatal is not None:
            raise self._fatal
        return self.snapshot()

    def start(self) -> threading.Thread:
        """Run in a background thread (the demo, embedding); :meth:`stop` then :meth:`join`."""
        thread = threading.Thread(
            target=self._run_in_background, name="iris-cloud-consumer", daemon=True
        )
        self._thread = thread
        thread.start()
        return thread

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

    def snapshot(self) -> ConsumerStats:
        """A copy of the counters."""
        with self._stats_lock:
            return ConsumerStats(**self.stats.as_dict())

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + n)

    def _lost_lock(self, msg: Message) -> None:
        with self._stats_lock:
            if id(msg) not in self._lost:
                self._lost.add(id(msg))
                self.stats.lock_lost += 1

    # -- receiving -----------------------------------------------------------
    def _receive_loop(self, name: str, broker: MessageBroker, pool: ThreadPoolExecutor) -> None:
        failures = 0
        while not self._stop.is_set():
            with self._slots:
                while self._inflight >= self.settings.concurrency and not self._stop.is_set():
                    self._slots.wait(0.5)
                if self._stop.is_set():
                    return
                free = self.settings.concurrency - self._inflight
            try:
                messages = broker.receive(
                    max_messages=min(self.settings.batch_size, free), wait=self.settings.wait
                )
                failures = 0
            except (PermissionDenied, ConfigurationError) as exc:
                log.error("receiving from %s failed for good: %s", name, type(exc).__name__)
                self._fatal = exc
                self.stop()
                return
            except Exception as exc:
                failures += 1
                self._count("receive_errors")
                delay = min(0.5 * 2 ** (failures - 1), 30.0)
                log.warning(
                    "receiving from %s failed (%s); retrying in %.1fs",
                    name,
                    type(exc).__name__,
                    delay,
                )
                self._stop.wait(delay)
                continue
            if not messages:
                continue
            self._count("received", len(messages))
            with self._slots:
                self._inflight += len(messages)
            for msg in messages:
                # Received messages are always processed, even when a stop
                # arrives meanwhile: they are in flight and get settled.
                pool.submit(self._process, name, broker, msg)

    def _attempt(self, msg: Message, broker: MessageBroker) -> int:
        with self._stats_lock:
            local = self._attempts.get(msg.message_id, 0) + 1
            self._attempts[msg.message_id] = local
            if len(self._attempts) > 100_000:
                # Bound the memory of a long-running consumer; exact counts
                # come from the service where it keeps them.
                self._attempts.clear()
        service = msg.delivery_count if broker.capabilities.delivery_count_exact else 0
        return max(service, local)

    def _forget(self, msg: Message) -> None:
        with self._stats_lock:
            self._attempts.pop(msg.message_id, None)

    def _process(self, name: str, broker: MessageBroker, msg: Message) -> None:
        try:
            self._handle(name, broker, msg)
        except Exception:
            log.exception("unexpected error processing message_id=%s", msg.message_id)
        finally:
            with self._stats_lock:
                self._lost.discard(id(msg))
            with self._slots:
                self._inflight -= 1
                self._slots.notify_all()

    def _handle(self, name: str, broker: MessageBroker, msg: Message) -> None:
        attempt = self._attempt(msg, broker)
        try:
            model = parse_message(msg.body)
        except ValidationError as exc:
            reason = poison_reason(exc)
            log.warning("poison message_id=%s from %s: %s", msg.message_id, name, reason)
            if self._settle(broker, msg, "dead_letter", reason, str(exc)):
                self._count("poison")
                self._count("dead_lettered")
            self._forget(msg)
            return
        kind = kind_of(model)
        keys = self._dedupe_keys(msg, model)
        if self.dedupe is not None:
            if self.dedupe.seen(keys):
                log.info(
                    "duplicate %s message_id=%s from %s: completed", kind, msg.message_id, name
                )
                if self._settle(broker, msg, "complete"):
                    self._count("duplicates")
                self._forget(msg)
                return
            if not self._claim_keys(keys):
                # A copy is being handled right now: give this one back; once the
                # first is done it is recognised as a duplicate (or handled, if
                # the first failed).
                delay = max(self.settings.backoff_initial, 0.1)
                args = (delay,) if broker.capabilities.delayed_retry else ()
                if self._settle(broker, msg, "abandon", *args):
                    self._count("deferred")
                return
            try:
                self._dispatch(name, broker, msg, model, kind, keys, attempt)
            finally:
                self._release_keys(keys)
            return
        self._dispatch(name, broker, msg, model, kind, keys, attempt)

    def _claim_keys(self, keys: list[str]) -> bool:
        with self._stats_lock:
            if any(k in self._busy_keys for k in keys):
                return False
            self._busy_keys.update(keys)
            return True

    def _release_keys(self, keys: list[str]) -> None:
        with self._stats_lock:
            self._busy_keys.difference_update(keys)

    def _dispatch(
        self,
        name: str,
        broker: MessageBroker,
        msg: Message,
        model: IrisModel,
        kind: str,
        keys: list[str],
        attempt: int,
    ) -> None:
        found = self.app.handler_for(model, kind)
        if found is None:
            log.info("no handler for %s message_id=%s: completed", kind, msg.message_id)
            if self._settle(broker, msg, "complete"):
                self._count("unhandled")
            self._forget(msg)
            return
        handler, arity = found
        ctx = Context(
            message=msg, broker=broker, source=name, kind=kind, attempt=attempt, consumer=self
        )
        self._renewer.add(ctx)
        try:
            returned = handler(model) if arity == 1 else handler(model, ctx)
            if inspect.isawaitable(returned):
                # A sync callable that hands back a coroutine (a lambda around an
                # async function) did not do the work: completing would lose it.
                if inspect.iscoroutine(returned):
                    returned.close()
                raise TypeError("handler returned an awaitable; handlers must do their work")
        except Exception as exc:
            self._failed(name, broker, msg, kind, attempt, exc)
            return
        finally:
            self._renewer.remove(ctx)
        if self.dedupe is not None:
            self.dedupe.mark(keys)
        self._count("handled")
        if self._settle(broker, msg, "complete"):
            log.info("handled %s message_id=%s from %s", kind, msg.message_id, name)
        self._forget(msg)

    def _failed(
        self,
        name: str,
        broker: MessageBroker,
        msg: Message,
        kind: str,
        attempt: int,
        exc: Exception,
    ) -> None:
        limit = self.settings.max_attempts
        if attempt >= limit:
            reason = f"{type(exc).__name__}: {exc}"[:MAX_REASON]
            log.warning(
                "%s message_id=%s failed %d times (%s): dead-lettered",
                kind,
                msg.message_id,
                attempt,
                type(exc).__name__,
            )
            description = f"handler failed on delivery {attempt} of at most {limit}"
            if self._settle(broker, msg, "dead_letter", reason, description):
                self._count("dead_lettered")
            self._forget(msg)
            return
        delay = min(self.settings.backoff_initial * 2 ** (attempt - 1), self.settings.backoff_max)
        log.warning(
            "%s message_id=%s failed on attempt %d (%s); retry in %.1fs",
            kind,
            msg.message_id,
            attempt,
            type(exc).__name__,
            delay if broker.capabilities.delayed_retry else 0.0,
        )
        if broker.capabilities.delayed_retry:
            settled = self._settle(broker, msg, "abandon", delay)
        else:
            settled = self._settle(broker, msg, "abandon")
        if settled:
            self._count("retried")

    @staticmethod
    def _dedupe_keys(msg: Message, model: IrisModel) -> list[str]:
        keys = [f"id:{msg.message_id}"] if msg.message_id else []
        txid = getattr(model, "transaction_id", None)
        if txid:
            keys.append(f"tx:{str(txid).lower()}")
        return keys

    def _settle(self, broker: MessageBroker, msg: Message, action: str, *args: Any) -> bool:
        try:
            getattr(broker, action)(msg, *args)
            if action == "complete":
                self._count("completed")
            return True
        except LockLost:
            self._lost_lock(msg)
            log.warning(
                "could not %s message_id=%s: lock lost, it will be redelivered",
                action,
                msg.message_id,
            )
        except IrisCloudError as exc:
            self._count("settle_errors")
            log.warning(
                "could not %s message_id=%s: %s", action, msg.message_id, type(exc).__name__
            )
        return False

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        """Stop (and join a started consumer), then close what it owns."""
        self.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.close_brokers:
            for broker in self.brokers.values():
                broker.close()
            if self._claim_store is not None:
                self._claim_store.close()
        if self.dedupe is not None and self._owns_dedupe:
            self.dedupe.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
