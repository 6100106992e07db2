"""The consumer engine on mem:// and local://: settlement, retries, poison, locks, stop, dedupe."""

from __future__ import annotations

import itertools
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from consumers import ENGINES, Consume
from iris_cloud.aio import AsyncConsumer
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, Context, IrisApp, poison_reason
from iris_cloud.dedupe import Dedupe
from iris_cloud.errors import ConfigurationError, ValidationError
from iris_cloud.model import (
    Event,
    GenericEvent,
    ImageReceipt,
    OrderGradedEvent,
    OrderRequest,
    OrderResult,
)
from iris_cloud.ports import Message, MessageBroker
from iris_cloud.providers.memory import MemoryBroker
from wfhelpers import PROVIDERS, make_profile, new_order, profile_dict, sample

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=PROVIDERS)
def profile(request: pytest.FixtureRequest, tmp_path: Path) -> Profile:
    return make_profile(request.param, tmp_path)


def event(name: str = "event-order-graded.json", **changes: Any) -> bytes:
    data = sample(name)
    data["TransactionId"] = str(uuid.uuid4())
    data.update(changes)
    return json.dumps(data).encode()


def send(profile: Profile, role: str, *bodies: bytes | Message) -> None:
    with profile.open_broker(role) as broker:
        broker.send([b if isinstance(b, Message) else Message(body=b) for b in bodies])


def remaining(profile: Profile, role: str) -> int:
    with profile.open_broker(role) as broker:
        got = broker.receive(10, wait=0.2)
        for m in got:
            broker.abandon(m)
        return len(got)


def dead_letters(profile: Profile, role: str) -> list[Message]:
    with profile.open_broker(role) as broker:
        got = broker.receive_dead_letters(10, wait=0.5)
        for m in got:
            broker.complete(m)
        return got


def test_a_delivery_goes_the_quiet_way_only_when_nobody_observes_it(
    consume: Consume,
    profile: Profile,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quiet: list[object] = []
    for cls in (Consumer, AsyncConsumer):
        run_quietly = cls._run_quietly

        def counted(self: Any, run: Any, _run_quietly: Any = run_quietly) -> Any:
            quiet.append(run)
            return _run_quietly(self, run)

        monkeypatch.setattr(cls, "_run_quietly", counted)
    app = IrisApp()
    app.on(OrderGradedEvent)(lambda evt: None)
    send(profile, "events", event(), event())
    with consume(app, profile, roles=("events",)) as consumer:
        stats = consumer.run_until(lambda s: s.completed >= 2, timeout=10)
    assert stats.handled == 2
    _, path = request.node.callspec.params["consume"]
    assert len(quiet) == (2 if path == "quiet" else 0)


def test_typed_dispatch_and_complete_after_handler(consume: Consume, profile: Profile) -> None:
    app = IrisApp()
    seen: list[tuple[str, Any, int, str]] = []

    @app.on(OrderGradedEvent)
    def graded(evt: OrderGradedEvent, ctx: Context) -> None:
        seen.append(("graded", evt.order_local_id, ctx.attempt, ctx.source))

    @app.on(OrderResult)
    def result(res: OrderResult) -> None:  # one-argument handlers are fine too
        seen.append(("result", res.order.local_id if res.order else None, 1, ""))

    send(profile, "events", event())
    send(profile, "results", json.dumps(sample("result-final.json")).encode())
    with consume(app, profile, roles=("events", "results")) as consumer:
        stats = consumer.run_until(lambda s: s.handled >= 2, timeout=10)
    assert stats.handled == 2 and stats.completed == 2
    assert ("graded", "ORD1234", 1, "events") in seen
    assert any(s[0] == "result" for s in seen)
    assert remaining(profile, "events") == 0 and remaining(profile, "results") == 0


def test_message_is_not_completed_before_the_handler_returns(
    consume: Consume, profile: Profile
) -> None:
    app = IrisApp()
    in_handler = threading.Event()
    release = threading.Event()

    @app.on(Event)
    def slow(evt: Event, ctx: Context) -> None:
        in_handler.set()
        release.wait(5)

    send(profile, "events", event())
    consumer = consume(app, profile, roles=("events",))
    runner = threading.Thread(
        target=consumer.run_until, kwargs={"predicate": lambda s: s.handled >= 1, "timeout": 10}
    )
    runner.start()
    assert in_handler.wait(5)
    # While the handler runs, the message is locked, not gone: nothing to receive.
    assert consumer.snapshot().completed == 0
    release.set()
    runner.join()
    consumer.close()
    assert consumer.snapshot().completed == 1


def test_retry_with_exponential_backoff_then_success(consume: Consume, profile: Profile) -> None:
    app = IrisApp()
    times: list[float] = []

    @app.on(OrderGradedEvent)
    def flaky(evt: OrderGradedEvent, ctx: Context) -> None:
        times.append(time.monotonic())
        assert ctx.attempt == len(times)
        if len(times) < 3:
            raise RuntimeError("transient")

    send(profile, "events", event())
    with consume(
        app, profile, roles=("events",), backoff_initial=0.3, backoff_max=5, max_attempts=5
    ) as consumer:
        stats = consumer.run_until(lambda s: s.handled >= 1, timeout=15)
    assert stats.retried == 2 and stats.handled == 1 and stats.dead_lettered == 0
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # mem:// and local:// support abandon(delay): 0.3 s, then 0.6 s.
    assert gaps[0] >= 0.28 and gaps[1] >= 0.58, gaps


def test_dead_letter_after_max_attempts_with_the_exception_as_reason(
    consume: Consume, profile: Profile
) -> None:
    app = IrisApp()
    calls = []

    @app.on(OrderGradedEvent)
    def broken(evt: OrderGradedEvent, ctx: Context) -> None:
        calls.append(ctx.attempt)
        raise KeyError("no such order in our EHR")

    send(profile, "events", event())
    with consume(app, profile, roles=("events",), max_attempts=3) as consumer:
        stats = consumer.run_until(lambda s: s.dead_lettered >= 1, timeout=15)
    assert calls == [1, 2, 3]
    assert stats.retried == 2 and stats.dead_lettered == 1 and stats.poison == 0
    [dead] = dead_letters(profile, "events")
    # The class only: an exception's text may quote the message.
    assert dead.dead_letter_reason == "KeyError"
    assert remaining(profile, "events") == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"this is not json", "invalid message: <root>"),
        (b'{"Hello": 1}', "invalid message: <root>"),
        (
            json.dumps({**new_order(), "ClientGuid": "bad"}).encode(),
            "invalid message: ClientGuid",
        ),
        (
            json.dumps(
                {"ResultObjectType": "OrderGradedEvent", "Version": "2.3.1", "Success": "maybe"}
            ).encode(),
            "invalid message: Success",
        ),
    ],
)
def test_poison_is_dead_lettered_at_once_with_field_paths(
    consume: Consume, profile: Profile, body: bytes, reason: str
) -> None:
    app = IrisApp()
    called = []
    app.on(Event, OrderRequest)(lambda m, ctx: called.append(m))
    app.fallback(lambda m, ctx: called.append(m))
    send(profile, "events", body)
    with consume(app, profile, roles=("events",), max_attempts=5) as consumer:
        stats = consumer.run_until(lambda s: s.poison >= 1, timeout=10)
    assert called == [] and stats.retried == 0
    [dead] = dead_letters(profile, "events")
    assert dead.dead_letter_reason == reason
    assert b"maybe" not in (dead.dead_letter_description or "").encode()


def test_poison_reason_lists_every_path() -> None:
    from iris_cloud.errors import FieldError

    exc = ValidationError("x", [FieldError("A.B", "t", "m"), FieldError("C[0]", "t", "m")])
    assert poison_reason(exc) == "invalid message: A.B, C[0]"


@pytest.mark.parametrize("kind", PROVIDERS)
def test_lock_is_renewed_for_a_slow_handler(consume: Consume, kind: str, tmp_path: Path) -> None:
    data = profile_dict(kind, tmp_path)
    data["events"]["lock_seconds"] = 1.0
    profile = Profile.from_dict(data)
    app = IrisApp()
    calls = []

    @app.on(OrderGradedEvent)
    def slow(evt: OrderGradedEvent, ctx: Context) -> None:
        calls.append(time.monotonic())
        time.sleep(2.2)

    send(profile, "events", event())
    with consume(app, profile, roles=("events",), concurrency=2) as consumer:
        stats = consumer.run_until(lambda s: s.handled >= 1, timeout=15)
    assert len(calls) == 1, "the message was redelivered while its handler ran"
    assert stats.lock_renewals >= 3 and stats.lock_lost == 0 and stats.completed == 1


def test_locks_of_different_lengths_are_each_renewed_in_time() -> None:
    """The renewer's one sweep comes forward for a shorter lock that arrives later."""
    from iris_cloud.observers import ConsumerObserver, Delivery

    renewed: dict[str, int] = {}

    class Renewals(ConsumerObserver):
        def lock_renewed(self, delivery: Delivery) -> None:
            renewed[delivery.source] = renewed.get(delivery.source, 0) + 1

    long_lock = MemoryBroker(f"long-{uuid.uuid4().hex[:8]}", lock_seconds=3.0)
    short_lock = MemoryBroker(f"short-{uuid.uuid4().hex[:8]}", lock_seconds=0.6)
    app = IrisApp()
    started = threading.Event()

    @app.on(OrderGradedEvent)
    def held(evt: OrderGradedEvent, ctx: Context) -> None:
        if ctx.source == "long":
            started.set()
        deadline = time.monotonic() + 10
        # Each runs until its own lock was renewed twice: the short one's
        # renewals (every 0.3 s) fall due long before the long one's first (1.5 s).
        while renewed.get(ctx.source, 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)

    long_lock.send(Message(body=event()))
    consumer = Consumer(
        app, {"long": long_lock, "short": short_lock}, concurrency=2, observers=[Renewals()]
    )
    with consumer:
        thread = consumer.start()
        assert started.wait(5)
        short_lock.send(Message(body=event()))
        deadline = time.monotonic() + 15
        while consumer.snapshot().completed < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        consumer.stop()
        thread.join(10)
        stats = consumer.snapshot()
    assert stats.completed == 2 and stats.lock_lost == 0
    assert renewed["short"] >= 2 and renewed["long"] >= 2


def test_messages_of_one_receive_sharing_a_lock_end_are_each_renewed() -> None:
    """The renewer works out an interval once for a lock end the last message had too."""
    from iris_cloud.observers import ConsumerObserver, Delivery

    renewed: dict[str, int] = {}
    ends: dict[str, object] = {}

    class Renewals(ConsumerObserver):
        def lock_renewed(self, delivery: Delivery) -> None:
            renewed[delivery.message_id] = renewed.get(delivery.message_id, 0) + 1

    broker = MemoryBroker(f"shared-{uuid.uuid4().hex[:8]}", lock_seconds=0.6)
    broker.send([Message(body=event(), message_id=f"m{i}") for i in range(2)])
    app = IrisApp()

    @app.on(OrderGradedEvent)
    def held(evt: OrderGradedEvent, ctx: Context) -> None:
        ends[ctx.message.message_id] = ctx.message.locked_until
        deadline = time.monotonic() + 10
        while renewed.get(ctx.message.message_id, 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)

    with Consumer(app, broker, concurrency=2, batch_size=2, observers=[Renewals()]) as consumer:
        stats = consumer.run_until(lambda s: s.completed >= 2, timeout=15)
    assert ends["m0"] is ends["m1"], "one receive: one lock end, the case under test"
    assert stats.completed == 2 and stats.lock_lost == 0
    assert renewed["m0"] >= 2 and renewed["m1"] >= 2


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("concurrency", [1, 2], ids=["in-the-receive-loop", "in-a-worker"])
def test_a_handler_that_ends_its_thread_leaves_no_slot_taken(concurrency: int) -> None:
    """SystemExit is no Exception: the run still winds up at once, not after stop_timeout."""
    broker = MemoryBroker(f"exit-{uuid.uuid4().hex[:8]}", lock_seconds=30)
    broker.send(Message(body=event()))
    app = IrisApp()
    ran = threading.Event()

    @app.on(OrderGradedEvent)
    def leaves(evt: OrderGradedEvent, ctx: Context) -> None:
        ran.set()
        raise SystemExit(3)

    with Consumer(app, broker, concurrency=concurrency, stop_timeout=20) as consumer:
        began = time.monotonic()
        consumer.run_until(lambda s: ran.is_set(), timeout=10)
        took = time.monotonic() - began
        assert consumer.snapshot().completed == 0
    assert ran.is_set() and took < 5, f"the run took {took:.1f} s to wind up"


def test_unhandled_fallback_and_unknown_event_types(consume: Consume, profile: Profile) -> None:
    app = IrisApp()
    got: list[tuple[str, str]] = []
    app.on("BrandNewEvent")(lambda e, ctx: got.append(("by-name", type(e).__name__)))
    app.on(ImageReceipt)(lambda e, ctx: got.append(("image", type(e).__name__)))

    send(
        profile,
        "events",
        event("event-image-receipt.json"),
        event(ResultObjectType="BrandNewEvent"),
        event(ResultObjectType="AnotherNewEvent"),
        event("event-ready-for-grading.json"),
    )
    with consume(app, profile, roles=("events",)) as consumer:
        stats = consumer.run_until(lambda s: s.completed >= 4, timeout=10)
    assert sorted(got) == [("by-name", "GenericEvent"), ("image", "ImageReceipt")]
    assert stats.unhandled == 2 and stats.handled == 2

    fallback_app = IrisApp()
    fell: list[str] = []
    fallback_app.fallback(lambda e, ctx: fell.append(ctx.kind))
    send(profile, "events", event(ResultObjectType="AnotherNewEvent"))
    with consume(fallback_app, profile, roles=("events",)) as consumer:
        consumer.run_until(lambda s: s.handled >= 1, timeout=10)
    assert fell == ["event:AnotherNewEvent"]
    assert isinstance(GenericEvent.from_json(event(ResultObjectType="X")), GenericEvent)


def test_concurrency_limit(consume: Consume, profile: Profile) -> None:
    app = IrisApp()
    lock = threading.Lock()
    running = [0]
    peak = [0]

    @app.on(Event)
    def work(evt: Event, ctx: Context) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1

    send(profile, "events", *[event() for _ in range(6)])
    with consume(app, profile, roles=("events",), concurrency=2, batch_size=10) as consumer:
        stats = consumer.run_until(lambda s: s.handled >= 6, timeout=15)
    assert stats.handled == 6 and peak[0] == 2


def test_dedupe_by_message_id_and_transaction_id(
    consume: Consume, profile: Profile, tmp_path: Path
) -> None:
    app = IrisApp()
    handled: list[str] = []
    app.on(Event)(lambda e, ctx: handled.append(ctx.message.message_id))
    body = event()
    same_tx = json.loads(body)
    send(
        profile,
        "events",
        Message(body=body, message_id="m-1"),
        Message(body=body, message_id="m-1"),  # broker redelivery / duplicate send
        Message(body=json.dumps(same_tx).encode(), message_id="m-2"),  # same TransactionId
    )
    db = tmp_path / "dedupe.sqlite3"
    with consume(app, profile, roles=("events",), dedupe=str(db)) as consumer:
        stats = consumer.run_until(lambda s: s.completed >= 3, timeout=10)
    # Handled once, by whichever copy the concurrent handlers claimed first.
    assert len(handled) == 1 and handled[0] in ("m-1", "m-2") and stats.duplicates == 2
    # Remembered across restarts.
    send(profile, "events", Message(body=body, message_id="m-1"))
    with consume(app, profile, roles=("events",), dedupe=str(db)) as consumer:
        stats = consumer.run_until(lambda s: s.completed >= 1, timeout=10)
    assert len(handled) == 1 and stats.duplicates == 1


def test_failed_handler_is_not_marked_as_handled(tmp_path: Path) -> None:
    d = Dedupe(tmp_path / "d.sqlite3")
    assert not d.seen(["id:a"])
    d.mark(["id:a", "tx:b"])
    assert d.seen(["tx:b"]) and d.seen(["id:zzz", "id:a"]) and len(d) == 2
    d.close()
    old = Dedupe(tmp_path / "d.sqlite3", retention_days=1e-9)
    time.sleep(0.01)
    assert not old.seen(["id:a"])
    old.close()


def test_no_patient_data_in_logs(
    consume: Consume, profile: Profile, caplog: pytest.LogCaptureFixture
) -> None:
    app = IrisApp()

    @app.on(OrderRequest)
    def fail(order: OrderRequest, ctx: Context) -> None:
        assert order.patient is not None and order.patient.name is not None
        raise RuntimeError(f"cannot place {order.patient.name.first} {order.patient.name.last}")

    order = new_order("LOG-1")
    order["Patient"]["Name"] = {"First": "Zebediah", "Last": "Quixotic"}
    send(profile, "orders", json.dumps(order).encode(), b"garbage Zebediah")
    with (
        caplog.at_level(logging.DEBUG, "iris_cloud"),
        consume(app, profile, roles=("orders",), max_attempts=2) as consumer,
    ):
        consumer.run_until(lambda s: s.dead_lettered >= 2, timeout=15)
    assert "Zebediah" not in caplog.text and "Quixotic" not in caplog.text
    assert "RuntimeError" in caplog.text


def test_run_returns_zero_after_stop(profile: Profile) -> None:
    app = IrisApp()
    app.on(Event)(lambda e, ctx: None)
    before = signal.getsignal(signal.SIGTERM)
    with Consumer.from_profile(app, profile, roles=("events",)) as consumer:
        threading.Timer(0.3, consumer.stop).start()
        assert consumer.run() == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_before_the_run_is_honoured_and_it_can_run_again(
    consume: Consume, profile: Profile
) -> None:
    app = IrisApp()
    app.on(Event)(lambda e, ctx: None)
    send(profile, "events", event())
    with consume(app, profile, roles=("events",)) as consumer:
        consumer.stop()
        started = time.monotonic()
        first = consumer.run_until(timeout=10)
        assert time.monotonic() - started < 5
        assert not consumer.stopping
        second = consumer.run_until(lambda s: s.completed >= 1, timeout=10)
    assert first.completed == 0
    assert second.completed == 1


def test_fatal_receive_error_is_raised(consume: Consume, tmp_path: Path) -> None:
    data = make_profile("mem", tmp_path).events
    assert data is not None
    profile = Profile.from_dict({"events": {"url": data.url, "access": "w"}})
    app = IrisApp()
    app.fallback(lambda m, ctx: None)
    from iris_cloud.errors import PermissionDenied

    with (
        consume(app, profile, roles=("events",)) as consumer,
        pytest.raises(PermissionDenied),
    ):
        consumer.run_until(timeout=5)


def test_consumer_needs_brokers_and_valid_settings() -> None:
    with pytest.raises(ConfigurationError):
        Consumer(IrisApp(), {})
    from iris_cloud.providers.memory import MemoryBroker

    broker: MessageBroker = MemoryBroker.from_url("mem://settings-check")
    from pydantic import ValidationError as PydanticError

    with pytest.raises(PydanticError):
        Consumer(IrisApp(), broker, concurrency=0)


SIGTERM_SCRIPT = r"""
import sys, time, json
from pathlib import Path
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.model import Event

state = Path(sys.argv[1])
profile = Profile.from_dict(json.loads(sys.argv[2]))
app = IrisApp()

@app.on(Event)
def slow(evt, ctx):
    (state / f"started-{ctx.message.message_id}").touch()
    time.sleep(1.5)
    (state / f"finished-{ctx.message.message_id}").touch()

consumer = Consumer.from_profile(app, profile, roles=("events",), concurrency=1, batch_size=1)
code = consumer.run()
consumer.close()
(state / "stats.json").write_text(json.dumps(consumer.snapshot().as_dict()))
sys.exit(code)
"""


ASYNC_SIGTERM_SCRIPT = r"""
import asyncio, json, sys
from pathlib import Path
from iris_cloud.aio import AsyncConsumer
from iris_cloud.config import Profile
from iris_cloud.consumer import IrisApp
from iris_cloud.model import Event

state = Path(sys.argv[1])
profile = Profile.from_dict(json.loads(sys.argv[2]))
app = IrisApp()

@app.on(Event)
async def slow(evt, ctx):
    (state / f"started-{ctx.message.message_id}").touch()
    await asyncio.sleep(1.5)
    (state / f"finished-{ctx.message.message_id}").touch()

async def main():
    consumer = await AsyncConsumer.from_profile(
        app, profile, ("events",), concurrency=1, batch_size=1
    )
    async with consumer:
        code = await consumer.run(signals=True)
    (state / "stats.json").write_text(json.dumps(consumer.snapshot().as_dict()))
    return code

sys.exit(asyncio.run(main()))
"""
"""The same, on an AsyncConsumer whose run(signals=True) makes SIGTERM a stop."""


@pytest.mark.parametrize("script", [SIGTERM_SCRIPT, ASYNC_SIGTERM_SCRIPT], ids=ENGINES)
def test_sigterm_finishes_in_flight_and_exits_zero(tmp_path: Path, script: str) -> None:
    profile = make_profile("local", tmp_path)
    assert profile.events is not None
    send(profile, "events", *[Message(body=event(), message_id=f"m{i}") for i in range(3)])
    state = tmp_path / "state"
    state.mkdir()
    path = tmp_path / "consume.py"
    path.write_text(script)
    profile_json = json.dumps(
        {"events": {"url": profile.events.url, "lock_seconds": 5}, "consumer": {"wait": 0.1}}
    )
    proc = subprocess.Popen([sys.executable, str(path), str(state), profile_json])
    try:
        deadline = time.monotonic() + 30
        while not list(state.glob("started-*")):
            assert time.monotonic() < deadline, "the consumer never started a handler"
            assert proc.poll() is None, "the consumer died"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    started = sorted(p.name.removeprefix("started-") for p in state.glob("started-*"))
    finished = sorted(p.name.removeprefix("finished-") for p in state.glob("finished-*"))
    assert started == finished == ["m0"]
    stats = json.loads((state / "stats.json").read_text())
    assert stats["completed"] == 1 and stats["received"] == 1
    # The in-flight message was settled; the others wait, unlocked, for the next run.
    assert remaining(profile, "events") == 2


@pytest.mark.parametrize("kind", PROVIDERS)
def test_claim_checked_result_reaches_the_handler_whole(
    consume: Consume, kind: str, tmp_path: Path
) -> None:
    import base64

    data = profile_dict(kind, tmp_path)
    data["results"]["max_message_bytes"] = 4096
    profile = Profile.from_dict(data)
    pdf = b"%PDF-" + bytes(range(256)) * 100
    result = sample("result-final.json")
    result["ResultsDocument"]["Content"] = base64.b64encode(pdf).decode()
    send(profile, "results", json.dumps(result).encode())
    with profile.open_store("claim_check") as claims:
        assert len(list(claims.list())) == 1  # the body went through the claim check
    got: list[bytes] = []
    app = IrisApp()

    @app.on(OrderResult)
    def on_result(res: OrderResult, ctx: Context) -> None:
        assert res.results_document is not None
        got.append(res.results_document.decode())

    with consume(app, profile, roles=("results",)) as consumer:
        consumer.run_until(lambda s: s.handled >= 1, timeout=10)
    assert got == [pdf]


def test_start_stop_join_in_background(profile: Profile) -> None:
    app = IrisApp()
    got = threading.Event()
    app.on(Event)(lambda e, ctx: got.set())
    with Consumer.from_profile(app, profile, roles=("events",)) as consumer:
        consumer.start()
        send(profile, "events", event())
        assert got.wait(10)
        consumer.stop()
        stats = consumer.join(10)
    assert stats.handled == 1 and stats.completed == 1


class _LateRenewalBroker(MemoryBroker):
    """A renewal that reaches the service only after the handler's message was completed."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.completed = threading.Event()
        self.renewing = threading.Event()

    def complete_many(self, messages: Any) -> Any:
        # complete() is complete_many() of one on mem://: either way it comes here.
        outcomes = super().complete_many(messages)
        self.completed.set()
        return outcomes

    def renew_lock(self, message: Message) -> Any:
        self.renewing.set()
        self.completed.wait(10)
        return super().renew_lock(message)  # raises LockLost: the message is gone


def test_a_renewal_overtaken_by_the_settle_is_not_a_lost_lock() -> None:
    broker = _LateRenewalBroker(f"late-{uuid.uuid4().hex[:8]}", lock_seconds=1.0)
    broker.send(event())
    app = IrisApp()

    @app.on(Event)
    def handle(evt: Event, ctx: Context) -> None:
        # Return once the renewer has started a renewal, so the settle overtakes it.
        assert broker.renewing.wait(10)

    with Consumer(app, broker) as consumer:
        stats = consumer.run_until(lambda s: s.completed >= 1, timeout=15)
        time.sleep(0.2)  # the overtaken renewal has come back by now
        stats = consumer.snapshot()
    assert stats.completed == 1
    assert stats.lock_lost == 0 and stats.settle_errors == 0
