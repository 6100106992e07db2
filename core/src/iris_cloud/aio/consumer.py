"""The async consumer: an :class:`~iris_cloud.consumer.IrisApp` on an event loop.

    app = IrisApp()

    @app.on(OrderResult)
    async def result(res, ctx):          # awaited on the loop
        await save_result(res, store)

    @app.on(OrderGradedEvent)
    def graded(event, ctx):              # a sync handler: run in a worker thread
        ...

    async with AsyncConsumer(app, {"results": broker}) as consumer:
        await consumer.run()             # until stop(), cancellation or a signal

It runs the sync :class:`~iris_cloud.consumer.Consumer`'s decisions
(:mod:`iris_cloud.consumelogic`): settle only after handling, poison
dead-lettered at once, retries with backoff then dead-lettering after
``max_attempts``, consumer-side failures retried without counting, dedupe,
the concurrency limit, lock renewal while a handler runs (a task per
message). What differs is how a stop ends:

* :meth:`AsyncConsumer.stop` (or cancelling the task that awaits
  :meth:`~AsyncConsumer.run`) stops receiving; in-flight handlers finish and
  are settled within ``stop_timeout``; then ``run`` returns (a cancelled run
  raises :class:`asyncio.CancelledError` once it has wound up);
* a second stop (or cancellation) while winding up returns at once: running
  handlers are cancelled unsettled and their messages come back after their
  lock, as after a crash.

Sync handlers run in the consumer's own ``concurrency`` worker threads, not in
the loop's default executor, which the thread-backed brokers use for every
call: a slow sync handler never holds up another message's lock renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from iris_cloud._threads import DaemonPool
from iris_cloud.aio.ports import _Closing
from iris_cloud.consumelogic import (
    FATAL_RECEIVE,
    ConsumerBase,
    ConsumerStats,
    ContextBase,
    HandlerTable,
    QuietRun,
    ReceiveHealth,
    completed_steps,
    failed_run_steps,
    handled,
    is_async_handler,
    log_stopped,
    open_consumer_steps,
    processing,
    processing_failed,
    refuse_awaitable,
    renew_steps,
    renewal_interval,
    settle_steps,
)
from iris_cloud.errors import ConfigurationError, LockLost
from iris_cloud.logs import get_logger
from iris_cloud.observers import UNOBSERVED
from iris_cloud.steps import adrive

if TYPE_CHECKING:
    from iris_cloud.aio.ports import AsyncMessageBroker
    from iris_cloud.config import ConsumerSettings, Profile
    from iris_cloud.dedupe import DedupeBackend
    from iris_cloud.messages import Message
    from iris_cloud.model import IrisModel
    from iris_cloud.observers import ConsumerObserver

__all__ = ["AsyncConsumer", "AsyncContext"]

log = get_logger("iris_cloud.consumer")

T = TypeVar("T")


@dataclass(kw_only=True)
class AsyncContext(ContextBase):
    """What a handler run by an :class:`AsyncConsumer` gets besides the parsed message."""

    broker: AsyncMessageBroker
    """The broker it came from (settlement is the consumer's job, not the handler's)."""
    consumer: AsyncConsumer = field(repr=False)

    async def renew_lock(self) -> None:
        """Renew the message's lock now (the consumer also does it periodically)."""
        try:
            await self.broker.renew_lock(self.message)
        except LockLost:
            self.lock_lost = True
            raise


class _Run:
    """The state of one :meth:`AsyncConsumer.run`: tasks of an earlier run never touch it."""

    def __init__(self, concurrency: int) -> None:
        self.stop = asyncio.Event()
        self.abandon = asyncio.Event()
        self.changed = asyncio.Event()
        self.inflight = 0
        self.handlers: set[asyncio.Task[None]] = set()
        self.background: set[asyncio.Task[Any]] = set()
        self.renewals: dict[int, asyncio.Task[None]] = {}
        self.pool = DaemonPool(concurrency, "iris-cloud-async-handler")

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a background task until it is done (the loop keeps weak references)."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)


class AsyncConsumer(ConsumerBase, _Closing):
    """Runs an :class:`~iris_cloud.consumer.IrisApp` on async brokers, on an event loop.

    Args:
        app: the handlers, ``async def`` ones awaited, plain ones run in threads.
        brokers: one :class:`~iris_cloud.aio.AsyncMessageBroker`, a list, or a
            mapping name -> broker (names show in :attr:`AsyncContext.source`).
        settings: as for :class:`~iris_cloud.consumer.Consumer`; keyword
            ``overrides`` replace single fields (``concurrency=8``).
        dedupe: as for :class:`~iris_cloud.consumer.Consumer` (a
            :class:`~iris_cloud.dedupe.DedupeBackend`, a SQLite path or an
            object-store URL, ``True`` or ``None``); its calls run in worker threads.
        close_brokers: close the brokers when the consumer is closed.
        observers: :class:`~iris_cloud.observers.ConsumerObserver` instances, called
            on the loop (their :meth:`~iris_cloud.observers.ConsumerObserver.handling`
            context around each handler run, in the handler's task).
    """

    _context_class = AsyncContext

    def __init__(
        self,
        app: HandlerTable,
        brokers: AsyncMessageBroker | Sequence[AsyncMessageBroker] | Mapping[str, Any],
        *,
        settings: ConsumerSettings | None = None,
        dedupe: DedupeBackend | str | os.PathLike[str] | bool | None = None,
        close_brokers: bool = False,
        observers: Sequence[ConsumerObserver] = (),
        **overrides: Any,
    ) -> None:
        super().__init__(
            app,
            brokers,
            settings=settings,
            dedupe=dedupe,
            close_brokers=close_brokers,
            observers=observers,
            overrides=overrides,
        )
        self.brokers: dict[str, AsyncMessageBroker]
        self._receivers: list[asyncio.Task[None]] = []
        # Receives that were in progress when a run ended, giving back what they bring.
        self._leftover: set[asyncio.Task[Any]] = set()
        self._current: _Run | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # A stop() that comes before the run (or from a signal as it begins) is honoured.
        self._stop_requested = False
        self._fatal: BaseException | None = None

    @classmethod
    async def from_profile(
        cls,
        app: HandlerTable,
        profile: Profile,
        roles: Iterable[str] = ("events", "results"),
        **kwargs: Any,
    ) -> AsyncConsumer:
        """An async consumer on the profile's ``roles`` (opened now, closed with the consumer).

        :meth:`Consumer.from_profile <iris_cloud.consumer.Consumer.from_profile>` on
        :meth:`Profile.open_async_broker <iris_cloud.config.Profile.open_async_broker>`:
        the profile's ``consumer`` settings unless ``settings=`` is given, one async
        claim-check store shared by the brokers.
        """
        consumer: AsyncConsumer = await adrive(
            open_consumer_steps(
                cls,
                app,
                profile,
                roles,
                kwargs,
                open_broker="open_async_broker",
                open_store="open_async_store",
            )
        )
        return consumer

    # -- control -------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (or the run was cancelled)."""
        run = self._current
        return self._stop_requested or (run is not None and run.stop.is_set())

    def stop(self) -> None:
        """Stop receiving; in-flight handlers finish and are settled. Safe from any thread.

        A second call while the run winds up abandons the handlers still
        running (unsettled: their messages come back after their lock) and
        the run returns at once.
        """
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._request_stop)
                return
        self._request_stop()

    def _request_stop(self) -> None:
        run = self._current
        if run is None:
            self._stop_requested = True
            return
        if run.stop.is_set():
            run.abandon.set()
        run.stop.set()
        run.changed.set()

    async def run(self, *, signals: bool = False) -> int:
        """Consume until :meth:`stop` or cancellation; returns 0 after a clean stop.

        ``signals=True`` (a standalone worker in the main thread) makes
        SIGINT/SIGTERM call :meth:`stop`: the first winds up, a second
        returns at once. Leave it off where a server (uvicorn) owns them.
        """
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        try:
            await self._run(None, None)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        return 0

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopping:
            log.warning("signal %s while stopping: returning now, unsettled", sig.name)
        else:
            log.info("signal %s: stopping after in-flight messages", sig.name)
        self.stop()

    async def run_until(
        self,
        predicate: Callable[[ConsumerStats], bool] | None = None,
        timeout: float | None = None,
    ) -> ConsumerStats:
        """Consume until ``predicate(stats)`` is true, ``timeout`` seconds pass or :meth:`stop`.

        In-flight messages are finished and settled before it returns. Raises
        the error that stopped a receiver for good (e.g. PermissionDenied).
        """
        return await self._run(predicate, timeout)

    def dead_threads(self) -> list[str]:
        """Names of this run's receive tasks that ended (``[]`` when well, or not running).

        The async twin of :meth:`Consumer.dead_threads
        <iris_cloud.consumer.Consumer.dead_threads>` (health observers ask it).
        """
        if self._current is None or self.stopping:
            return []
        return [t.get_name() for t in self._receivers if t.done()]

    async def _run(
        self, predicate: Callable[[ConsumerStats], bool] | None, timeout: float | None
    ) -> ConsumerStats:
        if self._current is not None:
            raise ConfigurationError("this consumer is already running")
        run = self._current = _Run(self.settings.concurrency)
        self._running = True
        self._loop = asyncio.get_running_loop()
        self._fatal = None
        if self._stop_requested:
            run.stop.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        self._observers.consumer_started(self)
        receivers = self._receivers = [
            asyncio.create_task(
                self._receive_loop(run, name, broker), name=f"iris-cloud-receive-{name}"
            )
            for name, broker in self.brokers.items()
        ]
        cancelled = False
        try:
            while not run.stop.is_set():
                if predicate is not None and predicate(self.snapshot()):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.stop.wait(), 0.02)
        except asyncio.CancelledError:
            cancelled = True
        finally:
            run.stop.set()
            run.changed.set()
            self._observers.consumer_stopping(self)
            try:
                cancelled = await self._wind_up(run, receivers) or cancelled
            finally:
                self._observers.consumer_stopped(self)
                self._current = None
                self._leftover |= run.background
                self._running = False
                self._stop_requested = False
        if cancelled:
            raise asyncio.CancelledError
        if self._fatal is not None:
            raise self._fatal
        return self.snapshot()

    async def _wind_up(self, run: _Run, receivers: list[asyncio.Task[None]]) -> bool:
        """Wait for in-flight handlers up to ``stop_timeout`` or an abandon; whether cancelled.

        A receive call in progress is not waited for (what it brings is given back).
        """
        began = time.monotonic()
        budget = self.settings.stop_timeout
        cancelled = False
        abandon = asyncio.ensure_future(run.abandon.wait())
        try:
            while run.handlers and not run.abandon.is_set():
                remaining = budget - (time.monotonic() - began)
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait(
                        {*run.handlers, abandon},
                        timeout=remaining,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                except asyncio.CancelledError:
                    cancelled = True  # cancelled again while winding up: abandon
                    break
        finally:
            abandon.cancel()
        left = list(run.handlers)
        for task in left:
            task.cancel()
        for task in run.renewals.values():
            task.cancel()
        run.pool.shutdown(0)
        polling = sum(not r.done() for r in receivers)
        again = cancelled or run.abandon.is_set()
        log_stopped(time.monotonic() - began, len(left), budget, polling, again=again)
        return cancelled

    # -- receiving -----------------------------------------------------------
    async def _receive_loop(self, run: _Run, name: str, broker: AsyncMessageBroker) -> None:
        health = ReceiveHealth(self, name)
        limit = self.settings.concurrency
        while not run.stop.is_set():
            while (run.inflight >= limit or self._paused.get(name)) and not run.stop.is_set():
                run.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.changed.wait(), 0.5)
            if run.stop.is_set():
                return
            batch = min(self.settings.batch_size, limit - run.inflight)
            call = asyncio.ensure_future(
                broker.receive(max_messages=batch, wait=self.settings.wait)
            )
            stopped = asyncio.ensure_future(run.stop.wait())
            try:
                await asyncio.wait({call, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            if not call.done():
                # Not waited for: what it brings is given back when it comes.
                run.keep(asyncio.ensure_future(self._give_back_when(broker, call)))
                return
            try:
                messages = call.result()
            except FATAL_RECEIVE as exc:
                if run.stop.is_set():
                    return
                health.fatal(exc)
                self._fatal = exc
                self._request_stop()
                return
            except Exception as exc:
                if run.stop.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.stop.wait(), health.failed(exc))
                continue
            health.ok(len(messages))
            if not messages:
                continue
            if run.stop.is_set():
                await self._give_back(broker, messages)
                return
            self._ledger.received(len(messages))
            run.inflight += len(messages)
            for msg in messages:
                task = asyncio.create_task(self._process(run, name, broker, msg))
                run.handlers.add(task)
                task.add_done_callback(run.handlers.discard)

    async def _give_back_when(
        self, broker: AsyncMessageBroker, call: asyncio.Future[list[Message]]
    ) -> None:
        with contextlib.suppress(Exception):
            await self._give_back(broker, await call)

    async def _give_back(self, broker: AsyncMessageBroker, messages: Iterable[Message]) -> None:
        """Abandon messages the stopping consumer took but will not handle."""
        for msg in messages:
            await adrive(settle_steps(self, broker, msg, "abandon"))

    async def _process(
        self, run: _Run, name: str, broker: AsyncMessageBroker, msg: Message
    ) -> None:
        try:
            work = processing(self, name, broker, msg, not run.stop.is_set())
            if isinstance(work, QuietRun):
                await self._run_quietly(work)
            else:
                await adrive(work)
        except Exception:
            processing_failed(msg)
        finally:
            self._ledger.done(msg)
            run.inflight -= 1
            run.changed.set()

    async def _run_quietly(self, run: QuietRun) -> None:
        """Run a :class:`~iris_cloud.consumelogic.QuietRun` awaiting only its I/O (see
        :meth:`iris_cloud.consumer.Consumer._run_quietly`, its twin)."""
        ctx: AsyncContext = run.ctx  # type: ignore[assignment]  # the class it makes; cast() is a call
        self._renewing(ctx, True)
        try:
            await self._run_handler(run.handler, run.arity, run.model, ctx)
        except Exception as exc:
            await adrive(failed_run_steps(self, run, exc))  # stops renewing before it settles
            return
        finally:
            self._renewing(ctx, False)
        if handled(self, UNOBSERVED, ctx) == "completed":
            await adrive(completed_steps(self, ctx))

    # -- what the steps call (consumelogic.ConsumerLike) ------------------------
    def _state(self) -> _Run:
        run = self._current
        if run is None:  # steps run only inside a run
            raise RuntimeError("the consumer is not running")
        return run

    def _renewing(self, ctx: AsyncContext, on: bool) -> None:
        run = self._state()
        if not on:
            task = run.renewals.pop(id(ctx), None)
            if task is not None:
                task.cancel()
            return
        if ctx.broker.capabilities.lock_renewal:
            run.renewals[id(ctx)] = asyncio.get_running_loop().create_task(
                self._renew_loop(run, ctx)
            )

    async def _renew_loop(self, run: _Run, ctx: AsyncContext) -> None:
        every = renewal_interval(self.settings, ctx.message)
        running = functools.partial(run.renewals.__contains__, id(ctx))
        while not ctx.lock_lost:
            await asyncio.sleep(every)
            await adrive(renew_steps(self, ctx, running))

    def _pausing(self, source: str, on: bool) -> None:
        """Receiving from ``source`` pauses while a handler waits out a consumer-side failure."""
        self._count_pause(source, on)
        self._state().changed.set()

    async def _run_handler(
        self, handler: Callable[..., object], arity: int, model: IrisModel, ctx: AsyncContext
    ) -> None:
        args = (model,) if arity == 1 else (model, ctx)
        if is_async_handler(handler):
            await handler(*args)  # type: ignore[misc]
            return
        refuse_awaitable(await self._in_thread(self._state().pool, handler, *args))

    async def _in_thread(self, pool: DaemonPool, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on one of the handler threads, in a copy of this task's context."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        context = contextvars.copy_context()

        def settle(result: T | None, error: BaseException | None) -> None:
            if future.done():  # cancelled meanwhile (abandoned)
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]

        def work() -> None:
            try:
                result = context.run(fn, *args)
            except BaseException as exc:  # handed to the awaiting task
                loop.call_soon_threadsafe(settle, None, exc)
            else:
                loop.call_soon_threadsafe(settle, result, None)

        pool.submit(work)
        return await future

    @staticmethod
    async def _blocking(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def _sleep(self, delay: float) -> bool:
        run = self._state()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.stop.wait(), delay)
        return run.stop.is_set()

    # -- lifecycle -----------------------------------------------------------
    async def close(self) -> None:
        """Stop, then close what it owns (the brokers when ``close_brokers``, its dedupe).

        A receive that was still in progress when a run ended is given up to
        ``wait`` + 1 s to bring what it took, which is given back before the
        brokers close (else it would come back only after its lock).
        """
        self.stop()
        if self._leftover:
            # A receive still in progress may bring a message the stop just gave
            # back: let it give that back too before its broker closes (bounded).
            await asyncio.wait(self._leftover, timeout=self.settings.wait + 1.0)
            self._leftover = {t for t in self._leftover if not t.done()}
        if self.close_brokers:
            for name, broker in self.brokers.items():
                try:
                    await asyncio.wait_for(broker.close(), max(self.settings.stop_timeout, 1.0))
                except Exception as exc:
                    log.warning("closing %s failed: %s", name, type(exc).__name__)
            if self._claim_store is not None:
                await self._claim_store.close()
        if self.dedupe is not None and self._owns_dedupe:
            self.dedupe.close()
        self._service.close()
