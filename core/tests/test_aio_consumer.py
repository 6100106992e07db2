"""The AsyncConsumer: async and sync handlers in one app, shutdown by stop and cancellation.

The behaviours it shares with the sync Consumer run on both in
test_consumer.py (the ``consume`` fixture); these are what only the async
consumer has, on async mem:// and local://.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iris_cloud import aio
from iris_cloud.aio import AsyncConsumer, AsyncContext
from iris_cloud.config import Profile
from iris_cloud.consumer import IrisApp
from iris_cloud.dedupe import Dedupe
from iris_cloud.model import Event, OrderGradedEvent, OrderResult
from iris_cloud.observers import ConsumerObserver, Delivery
from iris_cloud.ports import Message
from wfhelpers import PROVIDERS, profile_dict, sample

pytestmark = pytest.mark.timeout(60)

FAST = {"wait": 0.1, "backoff_initial": 0.05}


@pytest.fixture(params=PROVIDERS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def event(**changes: Any) -> bytes:
    data = sample("event-order-graded.json")
    data["TransactionId"] = str(uuid.uuid4())
    data.update(changes)
    return json.dumps(data).encode()


def result() -> bytes:
    return json.dumps(sample("result-final.json")).encode()


async def consumer_on(
    kind: str, tmp_path: Path, app: IrisApp, *roles: str, lock_seconds: float = 2, **settings: Any
) -> tuple[AsyncConsumer, dict[str, aio.AsyncMessageBroker]]:
    """An AsyncConsumer on fresh async ``roles`` of ``kind`` (from_profile); it closes them."""
    data = profile_dict(kind, tmp_path, claim_check=None)
    for role in roles:
        data[role]["lock_seconds"] = lock_seconds
    profile = Profile.from_dict(data)
    consumer = await AsyncConsumer.from_profile(app, profile, roles, **{**FAST, **settings})
    return consumer, consumer.brokers


async def waiting(broker: aio.AsyncMessageBroker) -> int:
    got = await broker.receive(10, wait=0.3)
    for m in got:
        await broker.abandon(m)
    return len(got)


def test_an_async_and_a_sync_handler_in_one_app(kind: str, tmp_path: Path) -> None:
    app = IrisApp()
    ran: dict[str, str] = {}

    @app.on(OrderGradedEvent)
    async def graded(evt: OrderGradedEvent, ctx: AsyncContext) -> None:
        await asyncio.sleep(0.05)  # awaited on the loop, not run in a thread
        ran["async"] = threading.current_thread().name

    @app.on(OrderResult)
    def saved(res: OrderResult) -> None:
        time.sleep(0.05)  # blocks its worker thread, not the loop
        ran["sync"] = threading.current_thread().name

    async def main() -> Any:
        consumer, brokers = await consumer_on(kind, tmp_path, app, "events", "results")
        await brokers["events"].send(event())
        await brokers["results"].send(result())
        async with consumer:
            stats = await consumer.run_until(lambda s: s.completed >= 2, timeout=10)
            left = [await waiting(b) for b in brokers.values()]
        return stats, left, threading.current_thread().name

    stats, left, loop_thread = asyncio.run(main())
    assert stats.handled == 2 and stats.completed == 2 and left == [0, 0]
    assert ran["async"] == loop_thread
    assert ran["sync"] != loop_thread and ran["sync"].startswith("iris-cloud-async-handler")


def test_app_async_consumer_and_one_argument_async_handlers() -> None:
    app = IrisApp()
    got: list[str] = []

    @app.on(Event)
    async def one(evt: Event) -> None:
        got.append(type(evt).__name__)

    async def main() -> Any:
        async with aio.open_broker(f"mem://aio-{uuid.uuid4().hex[:8]}") as broker:
            await broker.send(event())
            consumer = app.async_consumer(broker, wait=0.1)
            assert isinstance(consumer, AsyncConsumer)
            async with consumer:
                return await consumer.run_until(lambda s: s.completed >= 1, timeout=10)

    assert asyncio.run(main()).handled == 1 and got == ["OrderGradedEvent"]


def test_a_slow_async_handler_keeps_its_lock(kind: str, tmp_path: Path) -> None:
    # The handler runs until its lock was renewed twice (past the first lock's
    # end), not for a fixed time, so a loaded machine only makes it longer;
    # without renewals it waits out its bound and the lock is lost.
    app = IrisApp()
    runs: list[int] = []
    held: list[AsyncConsumer] = []

    @app.on(Event)
    async def slow(evt: Event, ctx: AsyncContext) -> None:
        runs.append(ctx.attempt)
        deadline = time.monotonic() + 10
        while held[0].snapshot().lock_renewals < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def main() -> Any:
        consumer, brokers = await consumer_on(kind, tmp_path, app, "events", lock_seconds=2.0)
        held.append(consumer)
        await brokers["events"].send(event())
        async with consumer:
            return await consumer.run_until(lambda s: s.completed >= 1, timeout=30)

    stats = asyncio.run(main())
    assert runs == [1], "redelivered while its handler ran"
    assert stats.lock_renewals >= 2 and stats.lock_lost == 0 and stats.completed == 1


class _Gate:
    """A handler that signals it started and finishes when released."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.finished: list[str] = []

    async def __call__(self, evt: Event, ctx: AsyncContext) -> None:
        self.started.set()
        await self.release.wait()
        self.finished.append(ctx.message.message_id)


@pytest.mark.parametrize("how", ["stop", "cancel"])
def test_a_stop_lets_the_handler_finish_and_settles_it(kind: str, tmp_path: Path, how: str) -> None:
    # A FastAPI lifespan cancels its consumer task at shutdown: the message in
    # hand is still finished and settled before the task ends (and re-raises).
    gate = _Gate()
    app = IrisApp()
    app.on(Event)(gate)

    async def main() -> Any:
        consumer, brokers = await consumer_on(kind, tmp_path, app, "events")
        await brokers["events"].send(event())
        async with consumer:
            run = asyncio.create_task(consumer.run())
            await asyncio.wait_for(gate.started.wait(), 10)
            (consumer.stop if how == "stop" else run.cancel)()
            await asyncio.sleep(0.2)
            assert not run.done(), "returned before the in-flight handler finished"
            gate.release.set()
            if how == "stop":
                assert await asyncio.wait_for(run, 10) == 0
            else:
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(run, 10)
            return consumer.snapshot(), await waiting(brokers["events"])

    stats, left = asyncio.run(main())
    assert gate.finished and stats.completed == 1 and left == 0


@pytest.mark.parametrize("how", ["stop", "cancel"])
def test_a_second_stop_returns_at_once_and_the_message_comes_back(
    kind: str, tmp_path: Path, how: str
) -> None:
    gate = _Gate()  # never released
    app = IrisApp()
    app.on(Event)(gate)

    async def main() -> Any:
        consumer, brokers = await consumer_on(
            kind, tmp_path, app, "events", lock_seconds=1.0, stop_timeout=30
        )
        await brokers["events"].send(event())
        async with consumer:
            run = asyncio.create_task(consumer.run())
            await asyncio.wait_for(gate.started.wait(), 10)
            (consumer.stop if how == "stop" else run.cancel)()
            await asyncio.sleep(0.2)
            assert not run.done()
            began = time.monotonic()
            (consumer.stop if how == "stop" else run.cancel)()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(run, 5)
            took = time.monotonic() - began
            stats = consumer.snapshot()
            # Not settled: it comes back once its lock (1 s) ends, nothing lost.
            got = await brokers["events"].receive(1, wait=5)
            for m in got:
                await brokers["events"].complete(m)
            return took, stats, got

    took, stats, got = asyncio.run(main())
    assert took < 2 and stats.completed == 0 and gate.finished == []
    assert len(got) == 1 and got[0].delivery_count == 2


def test_hostile_messages_are_dead_lettered_alone(kind: str, tmp_path: Path) -> None:
    app = IrisApp()
    handled: list[str] = []

    @app.on(Event)
    async def handle(evt: Event, ctx: AsyncContext) -> None:
        if ctx.message.message_id == "explodes":
            raise ValueError("patient Zebediah Quixotic not found")
        handled.append(ctx.message.message_id)

    async def main() -> Any:
        consumer, brokers = await consumer_on(
            kind, tmp_path, app, "events", max_attempts=1, concurrency=2
        )
        events = brokers["events"]
        await events.send(
            [
                Message(body=b"\xff\xfe not json Zebediah", message_id="garbage"),
                Message(body=event(Success="Zebediah"), message_id="bad-field"),
                Message(body=event(), message_id="explodes"),
                Message(body=event(), message_id="good-1"),
                Message(body=event(), message_id="good-2"),
            ]
        )
        async with consumer:
            stats = await consumer.run_until(
                lambda s: s.completed >= 2 and s.dead_lettered >= 3, timeout=15
            )
            dead = await events.receive_dead_letters(10, wait=1)
            return stats, dead

    stats, dead = asyncio.run(main())
    assert sorted(handled) == ["good-1", "good-2"]
    assert stats.poison == 2 and stats.dead_lettered == 3 and stats.completed == 2
    reasons = {m.message_id: (m.dead_letter_reason, m.dead_letter_description) for m in dead}
    assert set(reasons) == {"garbage", "bad-field", "explodes"}
    assert reasons["explodes"][0] == "ValueError"
    assert reasons["bad-field"][0] == "invalid message: Success"
    assert "Zebediah" not in repr(reasons)


_current: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="")


class _Tracing(ConsumerObserver):
    """An observer whose handling() context makes a value current for the handler."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def handling(self, delivery: Delivery) -> Iterator[None]:
        token = _current.set(f"span-{delivery.message_id}")
        try:
            yield
        finally:
            _current.reset(token)

    def message_finished(self, delivery: Delivery, outcome: str) -> None:
        self.finished.append((delivery.message_id, outcome))


def test_observers_contexts_reach_async_and_sync_handlers() -> None:
    app = IrisApp()
    seen: dict[str, str] = {}

    @app.on(OrderGradedEvent)
    async def graded(evt: OrderGradedEvent, ctx: AsyncContext) -> None:
        seen["async"] = _current.get()

    @app.on(OrderResult)
    def saved(res: OrderResult, ctx: AsyncContext) -> None:
        seen["sync"] = _current.get()

    tracing = _Tracing()

    async def main() -> Any:
        async with aio.open_broker(f"mem://obs-{uuid.uuid4().hex[:8]}") as broker:
            await broker.send(
                [Message(body=event(), message_id="e"), Message(body=result(), message_id="r")]
            )
            async with AsyncConsumer(app, broker, observers=[tracing], wait=0.1) as consumer:
                return await consumer.run_until(lambda s: s.completed >= 2, timeout=10)

    assert asyncio.run(main()).completed == 2
    assert seen == {"async": "span-e", "sync": "span-r"}
    assert sorted(tracing.finished) == [("e", "completed"), ("r", "completed")]


def test_health_and_metrics_observe_the_async_consumer() -> None:
    pytest.importorskip("prometheus_client")
    app = IrisApp()

    @app.on(Event)
    async def handle(evt: Event) -> None:
        await asyncio.sleep(0)

    def get(url: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    async def main() -> Any:
        async with aio.open_broker(f"mem://health-{uuid.uuid4().hex[:8]}") as broker:
            await broker.send(event())
            consumer = AsyncConsumer(app, {"events": broker}, health_port=0, metrics=True, wait=0.1)
            assert consumer.health is not None and consumer.metrics is not None
            url = consumer.health.url
            async with consumer:
                run = asyncio.create_task(consumer.run())
                for _ in range(200):
                    if (await asyncio.to_thread(get, url + "/readyz"))[0] == 200:
                        break
                    await asyncio.sleep(0.05)
                ready = await asyncio.to_thread(get, url + "/readyz")
                while consumer.snapshot().completed < 1:
                    await asyncio.sleep(0.05)
                metrics = await asyncio.to_thread(get, url + "/metrics")
                consumer.stop()
                await run
                after = await asyncio.to_thread(get, url + "/healthz")
            return ready, metrics, after

    ready, metrics, after = asyncio.run(main())
    assert ready[0] == 200 and after[0] == 503
    assert metrics[0] == 200 and "completed" in metrics[1]


def test_a_cancelled_handler_releases_its_claim_off_the_event_loop(
    kind: str, tmp_path: Path
) -> None:
    # The claim's release may block (a SQLite file, a store): never on the loop.
    gate = _Gate()  # never released
    app = IrisApp()
    app.on(Event)(gate)
    released: list[bool] = []

    class Recording(Dedupe):
        def release(self, token: str) -> None:
            released.append(on_loop.is_set() and threading.get_ident() == loop_thread)
            super().release(token)

    on_loop = threading.Event()
    loop_thread = threading.get_ident()  # asyncio.run runs the loop on this thread

    async def main() -> None:
        on_loop.set()
        consumer, brokers = await consumer_on(
            kind, tmp_path, app, "events", dedupe=Recording(), stop_timeout=30
        )
        await brokers["events"].send(event())
        async with consumer:
            run = asyncio.create_task(consumer.run())
            await asyncio.wait_for(gate.started.wait(), 10)
            run.cancel()
            await asyncio.sleep(0.2)
            run.cancel()  # the second cancels the handler
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(run, 5)

    asyncio.run(main())
    assert released == [False], "the claim was released on the event loop (or not at all)"
