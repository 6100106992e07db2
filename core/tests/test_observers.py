"""Consumer observers: what they are told, in which order, and that a failing one costs nothing."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iris_cloud import OUTCOMES, ConsumerObserver, Delivery, Outcome
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.errors import ConfigurationError, LockLost, Unavailable
from iris_cloud.model import Event, OrderResult
from iris_cloud.observers import Observers
from iris_cloud.ports import Message
from iris_cloud.providers.memory import MemoryBroker
from wfhelpers import profile_dict, sample

pytestmark = pytest.mark.timeout(60)


def event_body(**changes: Any) -> bytes:
    data = sample("event-order-graded.json")
    data["TransactionId"] = str(uuid.uuid4())
    data.update(changes)
    return json.dumps(data).encode()


def queue() -> MemoryBroker:
    return MemoryBroker(f"obs-{uuid.uuid4().hex[:8]}", lock_seconds=5.0)


class Recorder(ConsumerObserver):
    """Every call, as (name, details) tuples; the handler's thread's context is visible."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()
        self.inside = threading.local()

    def add(self, *call: Any) -> None:
        with self.lock:
            self.calls.append(call)

    def names(self) -> list[str]:
        with self.lock:
            return [c[0] for c in self.calls]

    def consumer_started(self, consumer: Consumer) -> None:
        self.add("started")

    def consumer_stopping(self, consumer: Consumer) -> None:
        self.add("stopping")

    def consumer_stopped(self, consumer: Consumer) -> None:
        self.add("stopped")

    def endpoint_opened(self, source: str) -> None:
        self.add("opened", source)

    def receive_ok(self, source: str, count: int) -> None:
        if count:
            self.add("receive_ok", source, count)

    def receive_error(self, source: str, error_class: str) -> None:
        self.add("receive_error", source, error_class)

    def message_received(self, delivery: Delivery) -> None:
        self.add("received", delivery.kind, delivery.attempt)

    def claim_check_fetched(self, delivery: Delivery) -> None:
        self.add("claim_check", delivery.kind)

    @contextlib.contextmanager
    def handling(self, delivery: Delivery) -> Iterator[None]:
        self.inside.value = delivery.message_id
        self.add("enter", delivery.kind)
        try:
            yield
        finally:
            self.add("exit", delivery.kind)
            self.inside.value = None

    def handler_started(self, delivery: Delivery) -> None:
        self.add("handler_started", delivery.kind)

    def handler_finished(self, delivery: Delivery, duration: float, outcome: Outcome) -> None:
        assert duration >= 0
        self.add("handler_finished", delivery.kind, outcome)

    def message_finished(self, delivery: Delivery, outcome: Outcome) -> None:
        self.add("finished", delivery.kind, outcome)

    def lock_renewed(self, delivery: Delivery) -> None:
        self.add("renewed", delivery.kind)

    def lock_lost(self, delivery: Delivery) -> None:
        self.add("lock_lost", delivery.kind)

    def result_saved(self, delivery: Delivery) -> None:
        self.add("saved", delivery.kind)


def test_a_completed_delivery_in_order_with_the_handler_inside_handling() -> None:
    broker = queue()
    broker.send(event_body())
    recorder = Recorder()
    seen_inside: list[str | None] = []
    app = IrisApp()

    @app.on(Event)
    def handle(evt: Event, ctx: Context) -> None:
        seen_inside.append(getattr(recorder.inside, "value", None))

    with Consumer(app, {"events": broker}, observers=[recorder], wait=0.1) as consumer:
        consumer.run_until(lambda s: s.completed >= 1, timeout=10)
    kind = "event:OrderGradedEvent"
    assert recorder.names()[:3] == ["started", "opened", "receive_ok"]
    assert [c for c in recorder.calls if c[0] not in ("started", "opened", "receive_ok")] == [
        ("received", kind, 1),
        ("enter", kind),
        ("handler_started", kind),
        ("handler_finished", kind, "completed"),
        ("exit", kind),
        ("finished", kind, "completed"),
        ("stopping",),
        ("stopped",),
    ]
    # The handler ran in the context the observer entered (a span would be current).
    assert seen_inside and seen_inside[0] is not None


def test_outcomes_retried_dead_lettered_poison_unhandled() -> None:
    broker = queue()
    broker.send([event_body(), b"{not json", json.dumps(sample("result-final.json")).encode()])
    recorder = Recorder()
    app = IrisApp()

    @app.on(Event)
    def fail(evt: Event) -> None:
        raise RuntimeError("patient Jane Doe")  # its text must go nowhere

    with Consumer(
        app, {"events": broker}, observers=[recorder], wait=0.1, max_attempts=2, backoff_initial=0
    ) as consumer:
        consumer.run_until(lambda s: s.dead_lettered >= 2 and s.unhandled >= 1, timeout=15)
    finished = [c[1:] for c in recorder.calls if c[0] == "finished"]
    kind = "event:OrderGradedEvent"
    assert (kind, "retried") in finished
    assert (kind, "dead_lettered") in finished
    assert ("invalid", "poison") in finished
    assert ("result", "unhandled") in finished
    attempts = [c[2] for c in recorder.calls if c[0] == "received" and c[1] == kind]
    assert attempts == [1, 2]
    assert {o for _, o in finished} <= set(OUTCOMES)


def test_several_observers_compose_and_a_failing_one_costs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(ConsumerObserver):
        def message_received(self, delivery: Delivery) -> None:
            raise ValueError(f"echoing {delivery.message.body!r}")

        def handling(self, delivery: Delivery) -> contextlib.AbstractContextManager[object]:
            raise ValueError("patient Jane Doe")

        def handler_finished(self, delivery: Delivery, duration: float, outcome: str) -> None:
            raise KeyError("Jane")

    class BrokenExit(ConsumerObserver):
        @contextlib.contextmanager
        def handling(self, delivery: Delivery) -> Iterator[None]:
            yield
            raise RuntimeError("Jane Doe on the way out")

    broker = queue()
    marker = "Zarathustra-Phi"
    broker.send([event_body(OrderLocalId=marker) for _ in range(3)])
    first, last = Recorder(), Recorder()
    handled: list[str] = []
    app = IrisApp()
    app.on(Event)(lambda evt: handled.append(evt.order_local_id))
    caplog.set_level(logging.DEBUG)
    observers = [first, Broken(), BrokenExit(), last]
    with Consumer(app, {"events": broker}, observers=observers, wait=0.1) as consumer:
        stats = consumer.run_until(lambda s: s.completed >= 3, timeout=10)
    assert stats.completed == 3 and stats.dead_lettered == 0 and len(handled) == 3
    for recorder in (first, last):
        assert recorder.names().count("finished") == 3
        assert recorder.names().count("enter") == recorder.names().count("exit") == 3
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "observer" in text and "Broken.message_received failed (ValueError)" in text
    assert "BrokenExit.handling failed (RuntimeError)" in text
    assert "Jane" not in text and marker not in text


def test_one_observers_handling_is_guarded_unless_it_cannot_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Raises(ConsumerObserver):
        def handling(self, delivery: Delivery) -> contextlib.AbstractContextManager[object]:
            raise ValueError("patient Jane Doe")

    class FailsOnEnter(ConsumerObserver):
        @contextlib.contextmanager
        def handling(self, delivery: Delivery) -> Iterator[None]:
            raise RuntimeError("Jane Doe on the way in")
            yield

    class FailsOnExit(ConsumerObserver):
        @contextlib.contextmanager
        def handling(self, delivery: Delivery) -> Iterator[None]:
            yield
            raise RuntimeError("Jane Doe on the way out")

    null = contextlib.nullcontext()

    class Null(ConsumerObserver):
        def handling(self, delivery: Delivery) -> contextlib.AbstractContextManager[object]:
            return null

    delivery = Delivery("events", Message(body=b"{}"), "order")
    caplog.set_level(logging.DEBUG)
    ran = 0
    for observer in (Raises(), FailsOnEnter(), FailsOnExit(), Null()):
        with Observers([observer]).handling(delivery):
            ran += 1
    assert ran == 4
    # What cannot fail is handed on as it is: no guard for every message to pay.
    assert Observers([Null()]).handling(delivery) is null
    with pytest.raises(KeyError), Observers([FailsOnExit()]).handling(delivery):
        raise KeyError("the handler's own error is not swallowed")
    text = "\n".join(r.getMessage() for r in caplog.records)
    for name, error in [
        ("Raises", "ValueError"),
        ("FailsOnEnter", "RuntimeError"),
        ("FailsOnExit", "RuntimeError"),
    ]:
        assert f"{name}.handling failed ({error})" in text
    assert "Jane" not in text


def test_a_handler_error_passes_through_handling_without_being_swallowed() -> None:
    class Swallower(ConsumerObserver):
        @contextlib.contextmanager
        def handling(self, delivery: Delivery) -> Iterator[None]:
            with contextlib.suppress(Exception):
                yield

    broker = queue()
    broker.send(event_body())
    recorder = Recorder()
    app = IrisApp()
    app.on(Event)(lambda evt: 1 / 0)
    with Consumer(
        app, {"events": broker}, observers=[Swallower(), recorder], wait=0.1, max_attempts=1
    ) as consumer:
        stats = consumer.run_until(lambda s: s.dead_lettered >= 1, timeout=10)
    assert stats.dead_lettered == 1
    assert ("finished", "event:OrderGradedEvent", "dead_lettered") in recorder.calls


class FailingReceive(MemoryBroker):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.fails = 2

    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        if self.fails:
            self.fails -= 1
            raise Unavailable("the service is down")
        return super()._receive(max_messages, wait)


def test_receive_errors_by_class_then_receive_ok() -> None:
    broker = FailingReceive(f"obs-{uuid.uuid4().hex[:8]}")
    broker.send(event_body())
    recorder = Recorder()
    app = IrisApp()
    app.on(Event)(lambda evt: None)
    with Consumer(app, {"events": broker}, observers=[recorder], wait=0.1) as consumer:
        consumer.run_until(lambda s: s.completed >= 1, timeout=15)
    errors = [c for c in recorder.calls if c[0] == "receive_error"]
    assert errors == [("receive_error", "events", "Unavailable")] * 2
    assert ("receive_ok", "events", 1) in recorder.calls


class LosesLock(MemoryBroker):
    """The first renewal works, the next find the lock gone."""

    renewals = 0

    def renew_lock(self, message: Message) -> Any:
        self.renewals += 1
        if self.renewals > 1:
            raise LockLost("the lock expired")
        return super().renew_lock(message)


def test_lock_renewals_and_a_lost_lock_are_told_once() -> None:
    broker = LosesLock(f"obs-{uuid.uuid4().hex[:8]}", lock_seconds=5.0)
    broker.send(event_body())
    recorder = Recorder()
    app = IrisApp()

    @app.on(Event)
    def slow(evt: Event, ctx: Context) -> None:
        deadline = time.monotonic() + 10
        while not ctx.lock_lost and time.monotonic() < deadline:
            time.sleep(0.01)

    with Consumer(
        app, {"events": broker}, observers=[recorder], wait=0.1, lock_renewal_interval=0.05
    ) as consumer:
        consumer.run_until(lambda s: s.lock_lost >= 1 and s.handled >= 1, timeout=15)
    names = recorder.names()
    assert names.count("renewed") == 1
    assert names.count("lock_lost") == 1
    assert ("finished", "event:OrderGradedEvent", "lock_lost") in recorder.calls


def claim_checked_result(tmp_path: Path) -> Profile:
    """A mem:// profile with one result waiting whose body went through the claim check."""
    data = profile_dict("mem", tmp_path)
    data["results"]["max_message_bytes"] = 4096
    profile = Profile.from_dict(data)
    result = sample("result-final.json")
    result["ResultsDocument"]["Content"] = base64.b64encode(b"%PDF-" + b"x" * 9000).decode()
    with profile.open_broker("results") as broker:
        broker.send(json.dumps(result).encode())
    return profile


def test_claim_check_fetched_and_result_saved(tmp_path: Path) -> None:
    profile = claim_checked_result(tmp_path)
    recorder = Recorder()
    app = IrisApp()

    @app.on(OrderResult)
    def on_result(res: OrderResult, ctx: Context) -> None:
        ctx.result_saved()

    with Consumer.from_profile(app, profile, roles=("results",), observers=[recorder]) as consumer:
        consumer.run_until(lambda s: s.completed >= 1, timeout=10)
    assert ("claim_check", "result") in recorder.calls
    assert ("saved", "result") in recorder.calls


class Sampling(Recorder):
    """Observes only the deliveries whose sender set ``watch``."""

    def observes(self, message: Message) -> bool:
        return "watch" in message.properties


@pytest.fixture
def untraced(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracing observer: it observes every message once an earlier test set an SDK."""
    monkeypatch.setattr("iris_cloud.consumelogic.default_observers", lambda given: [])


@pytest.mark.usefixtures("untraced")
def test_a_delivery_no_observer_observes_costs_none_of_its_calls_but_the_rare_ones() -> None:
    broker = queue()
    broker.send(
        [
            Message(body=event_body()),
            Message(body=event_body(), properties={"watch": "1"}),
            Message(body=b"not json"),
        ]
    )
    sampling = Sampling()
    app = IrisApp()

    @app.on(Event)
    def handle(evt: Event, ctx: Context) -> None:
        ctx.result_saved()

    with Consumer(app, broker, observers=[sampling], wait=0.1, settle_delay=0) as consumer:
        consumer.run_until(lambda s: s.completed >= 2 and s.poison >= 1, timeout=10)
    per_delivery = [c for c in sampling.calls if c[0] not in ("started", "opened", "receive_ok")]
    kind = "event:OrderGradedEvent"
    # The watched one is told in full, the other two not at all (the poison
    # one neither); result_saved, a rare call, comes for both handled ones.
    assert per_delivery == [
        ("saved", kind),
        ("received", kind, 1),
        ("enter", kind),
        ("handler_started", kind),
        ("saved", kind),
        ("handler_finished", kind, "completed"),
        ("exit", kind),
        ("finished", kind, "completed"),
        ("stopping",),
        ("stopped",),
    ]

    # Beside an observer that observes everything, every delivery is told to both.
    broker.send([Message(body=event_body()), Message(body=b"not json")])
    everything = Recorder()
    sampling = Sampling()
    with Consumer(app, broker, observers=[sampling, everything], wait=0.1) as consumer:
        consumer.run_until(lambda s: s.completed >= 1 and s.poison >= 1, timeout=10)
    for recorder in (sampling, everything):
        assert ("finished", kind, "completed") in recorder.calls
        assert ("finished", "invalid", "poison") in recorder.calls


class BrokenObserves(Recorder):
    def observes(self, message: Message) -> bool:
        raise RuntimeError(message.body.decode())


@pytest.mark.usefixtures("untraced")
def test_an_observes_that_raises_is_logged_and_the_delivery_observed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = queue()
    broker.send(event_body(PatientName="SECRET-NAME"))
    recorder = BrokenObserves()
    app = IrisApp()
    app.on(Event)(lambda evt, ctx: None)
    with (
        caplog.at_level(logging.DEBUG),
        Consumer(app, broker, observers=[recorder], wait=0.1) as consumer,
    ):
        consumer.run_until(lambda s: s.completed >= 1, timeout=10)
    assert ("finished", "event:OrderGradedEvent", "completed") in recorder.calls
    assert "BrokenObserves.observes failed (RuntimeError)" in caplog.text
    assert "SECRET" not in caplog.text


def test_observers_must_be_observers() -> None:
    with pytest.raises(ConfigurationError, match="ConsumerObserver"):
        Consumer(IrisApp(), queue(), observers=[object()])  # type: ignore[list-item]


def test_add_observer_before_a_run() -> None:
    broker = queue()
    broker.send(event_body())
    recorder = Recorder()
    app = IrisApp()
    app.on(Event)(lambda evt: None)
    with Consumer(app, {"events": broker}, wait=0.1) as consumer:
        consumer.add_observer(recorder)
        assert consumer.observers[-1] is recorder  # after the built-in ones (tracing)
        consumer.run_until(lambda s: s.completed >= 1, timeout=10)
    assert ("finished", "event:OrderGradedEvent", "completed") in recorder.calls


def test_dead_threads_names_a_receive_loop_that_ended() -> None:
    broker = queue()
    app = IrisApp()
    with Consumer(app, {"events": broker}, wait=0.1) as consumer:
        assert consumer.dead_threads() == []
        consumer.start()
        deadline = time.monotonic() + 5
        while not consumer._receivers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert consumer.dead_threads() == []
        # A receive loop ends when its run is no longer current.
        live, consumer._live_generation = consumer._live_generation, -1
        consumer._receivers[0].join(5)
        assert consumer.dead_threads() == ["iris-cloud-receive-events"]
        consumer._live_generation = live
        consumer.stop()
        consumer.join(10)
        assert consumer.dead_threads() == []


def test_a_delivery_is_a_frozen_dataclass_made_as_its_fields_say() -> None:
    # Its __init__ is written out (the generated one is slow): it must still
    # set every field, in order, keep the defaults and refuse changes.
    msg = Message(body=b"{}")
    delivery = Delivery("events", msg, "order", 3)
    assert [f.name for f in dataclasses.fields(Delivery)] == [
        "source",
        "message",
        "kind",
        "attempt",
    ]
    assert dataclasses.astuple(delivery)[::2] == ("events", "order")
    assert (delivery.source, delivery.message, delivery.kind, delivery.attempt) == (
        "events",
        msg,
        "order",
        3,
    )
    assert Delivery(source="events", message=msg) == Delivery("events", msg, "unknown", 1)
    assert dataclasses.replace(delivery, kind="result").kind == "result"
    with pytest.raises(dataclasses.FrozenInstanceError):
        delivery.kind = "result"  # type: ignore[misc]
    assert "body" not in repr(delivery) and repr(delivery).startswith("Delivery(source='events'")


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_context_is_made_as_its_class_makes_it(asynchronous: bool) -> None:
    # The consumers fill a context's __dict__ by hand (nine keyword arguments
    # cost more than the rest): every field its class's __init__ sets, alike.
    from iris_cloud.aio import AsyncContext
    from iris_cloud.aio.builtin import AsyncMemoryBroker

    app = IrisApp()
    broker: Any
    if asynchronous:
        broker = AsyncMemoryBroker(queue())
        consumer: Any = app.async_consumer(broker)
        cls: Any = AsyncContext
    else:
        broker = queue()
        consumer = Consumer(app, broker)
        cls = Context
    msg = Message(body=b"{}")
    made = consumer._context("events", msg, "order", 2, broker, "a-claim")
    expected = cls(
        message=msg,
        broker=broker,
        source="events",
        kind="order",
        attempt=2,
        consumer=consumer,
        claim="a-claim",
    )
    assert type(made) is cls
    assert made == expected
    assert vars(made) == vars(expected)
    # Its Delivery is made when asked for, once.
    assert made.delivery == Delivery("events", msg, "order", 2)
    assert made.delivery is made.delivery
