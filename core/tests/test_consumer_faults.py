"""The consumer under faults: a failing sink, stuck handlers and receives, bounded stops."""

from __future__ import annotations

import errno
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from consumers import Consume
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.dedupe import Dedupe
from iris_cloud.errors import (
    IrisCloudError,
    LockLost,
    NotFound,
    PermissionDenied,
    Timeout,
    Unavailable,
    ValidationError,
    is_transient,
)
from iris_cloud.model import Event
from iris_cloud.ports import Message
from iris_cloud.providers.memory import MemoryBroker
from wfhelpers import PROVIDERS, make_profile, sample

pytestmark = pytest.mark.timeout(60)

FAST = {"backoff_initial": 0.05, "transient_backoff_max": 0.2, "wait": 0.1}


@pytest.fixture(params=PROVIDERS)
def profile(request: pytest.FixtureRequest, tmp_path: Path) -> Profile:
    return make_profile(request.param, tmp_path)


def event() -> bytes:
    data = sample("event-order-graded.json")
    data["TransactionId"] = str(uuid.uuid4())
    return json.dumps(data).encode()


def send(profile: Profile, *bodies: bytes) -> None:
    with profile.open_broker("events") as broker:
        broker.send([Message(body=b) for b in bodies])


def waiting(profile: Profile) -> int:
    with profile.open_broker("events") as broker:
        got = broker.receive(10, wait=0.3)
        for m in got:
            broker.abandon(m)
        return len(got)


def dead_letters(profile: Profile) -> list[Message]:
    with profile.open_broker("events") as broker:
        return broker.receive_dead_letters(10, wait=0.3)


def full_disk_cause() -> IrisCloudError:
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as exc:
        try:
            raise IrisCloudError("saving failed") from exc
        except IrisCloudError as wrapped:
            return wrapped


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "full"),
        OSError(errno.EROFS, "read-only"),
        OSError(errno.EIO, "i/o"),
        OSError(errno.EDQUOT, "quota"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        TimeoutError("timed out"),
        Unavailable("store down"),
        Timeout("slow"),
        full_disk_cause(),
        sqlite3.OperationalError("database or disk is full"),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(getattr(e, "errno", "")),
)
def test_consumer_side_failures_are_transient(exc: BaseException) -> None:
    if isinstance(exc, sqlite3.OperationalError):
        # A real one, with its result code (SQLITE_READONLY) as SQLite sets it.
        db = sqlite3.connect("file::memory:?mode=ro", uri=True)
        with pytest.raises(sqlite3.OperationalError) as info:
            db.execute("CREATE TABLE t (x)")
        exc = info.value
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        KeyError("x"),
        PermissionDenied("no", right="write"),
        NotFound("gone"),
        ValidationError("doc", []),
        OSError(errno.EACCES, "denied"),
        FileNotFoundError(errno.ENOENT, "missing"),
        IrisCloudError("plain"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_the_message_own_failures_are_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


class Sink:
    """A result sink that fails with ``error`` until :meth:`repair`, like a full disk."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.broken = True
        self.saved: list[str] = []
        self.failures = 0
        self.lock = threading.Lock()

    def save(self, message_id: str) -> None:
        with self.lock:
            if self.broken:
                self.failures += 1
                raise self.error
            self.saved.append(message_id)

    def repair(self) -> None:
        with self.lock:
            self.broken = False


@pytest.mark.parametrize(
    "error",
    [OSError(errno.ENOSPC, "No space left on device"), Unavailable("results store unreachable")],
    ids=["full-disk", "store-outage"],
)
def test_a_sink_outage_loses_nothing_to_the_dead_letter_queue(
    profile: Profile, error: Exception
) -> None:
    send(profile, *[event() for _ in range(6)])
    sink = Sink(error)
    app = IrisApp()
    app.on(Event)(lambda evt, ctx: sink.save(ctx.message.message_id))
    # max_attempts=2: an outage longer than two tries would dead-letter every
    # message if consumer-side failures counted against them.
    with Consumer.from_profile(
        app, profile, roles=("events",), max_attempts=2, concurrency=2, batch_size=1, **FAST
    ) as consumer:
        consumer.start()
        deadline = time.monotonic() + 10
        while sink.failures < 8:
            assert time.monotonic() < deadline, "the handlers were not retried"
            time.sleep(0.02)
        during = consumer.snapshot()
        sink.repair()
        deadline = time.monotonic() + 15
        while consumer.snapshot().completed < 6:
            assert time.monotonic() < deadline, consumer.snapshot()
            time.sleep(0.02)
        consumer.stop()
        stats = consumer.join(10)
    # Receiving paused while the sink was down: no more taken than handlers held.
    assert during.received <= 2
    assert stats.dead_lettered == 0 and stats.retried == 0
    assert stats.transient_retries >= 6
    assert len(sink.saved) == 6
    assert dead_letters(profile) == []


def test_max_transient_attempts_is_a_separate_budget(consume: Consume, profile: Profile) -> None:
    send(profile, event())
    sink = Sink(OSError(errno.EIO, "Input/output error"))
    app = IrisApp()
    app.on(Event)(lambda evt, ctx: sink.save(ctx.message.message_id))
    with consume(
        app, profile, roles=("events",), max_attempts=1, max_transient_attempts=4, **FAST
    ) as consumer:
        stats = consumer.run_until(lambda s: s.dead_lettered >= 1, timeout=15)
    assert sink.failures == 4 and stats.dead_lettered == 1
    (dead,) = dead_letters(profile)
    assert dead.dead_letter_reason is not None and dead.dead_letter_reason.startswith("OSError")
    assert dead.dead_letter_description == "the consumer's own side failed 4 times (max 4)"


def test_a_stop_during_an_outage_gives_the_message_back_uncounted(
    consume: Consume, profile: Profile
) -> None:
    send(profile, event())
    sink = Sink(OSError(errno.EROFS, "Read-only file system"))
    app = IrisApp()
    app.on(Event)(lambda evt, ctx: sink.save(ctx.message.message_id))
    settings = {**FAST, "transient_backoff_max": 30.0, "backoff_initial": 30.0}
    with consume(app, profile, roles=("events",), max_attempts=1, **settings) as c:
        began = time.monotonic()
        stats = c.run_until(lambda s: sink.failures >= 1, timeout=10)
        took = time.monotonic() - began
    # Stopped in the middle of a 30 s backoff: given back at once, not dead-lettered.
    assert took < 5 and stats.dead_lettered == 0
    assert waiting(profile) == 1
    sink.repair()
    with consume(app, profile, roles=("events",), max_attempts=1, **FAST) as c:
        stats = c.run_until(lambda s: s.completed >= 1, timeout=10)
    assert sink.saved and stats.dead_lettered == 0


def test_the_message_own_failure_still_dead_letters(consume: Consume, profile: Profile) -> None:
    send(profile, event())
    app = IrisApp()

    @app.on(Event)
    def fails(evt: Event, ctx: Context) -> None:
        raise ValueError("the document is wrong")

    with consume(app, profile, roles=("events",), max_attempts=2, **FAST) as c:
        stats = c.run_until(lambda s: s.dead_lettered >= 1, timeout=15)
    assert stats.transient_retries == 0 and stats.retried == 1


class HangingBroker(MemoryBroker):
    """Receives block until released, like a long poll on a connection that went silent."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.release = threading.Event()
        self.hanging = threading.Event()

    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        self.hanging.set()
        self.release.wait(30)
        return super()._receive(max_messages, 0.0)


def test_stop_does_not_wait_for_a_receive_that_hangs() -> None:
    broker = HangingBroker(f"hang-{uuid.uuid4().hex[:8]}", lock_seconds=30)
    broker.send(event())
    consumer = Consumer(IrisApp(), broker)
    consumer.start()
    assert broker.hanging.wait(10)
    began = time.monotonic()
    consumer.stop()
    consumer.join(5)
    assert time.monotonic() - began < 1.0
    # What the hung receive brings after the stop is given back, not handled.
    broker.release.set()
    time.sleep(0.3)
    assert consumer.snapshot().received == 0
    got = MemoryBroker(broker.name).receive(1, wait=1)
    assert len(got) == 1 and got[0].delivery_count == 2


def test_an_idle_consumer_stops_within_a_second_despite_a_long_poll(profile: Profile) -> None:
    with Consumer.from_profile(IrisApp(), profile, roles=("events",), wait=5.0) as consumer:
        consumer.start()
        time.sleep(0.5)  # inside its first 5 s poll
        began = time.monotonic()
        consumer.stop()
        consumer.join(5)
        assert time.monotonic() - began < 1.0


def test_a_handler_that_cannot_finish_is_left_after_stop_timeout(
    consume: Consume, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    profile = make_profile("local", tmp_path)
    assert profile.events is not None
    data = {"events": {"url": profile.events.url, "lock_seconds": 1}}
    profile = Profile.from_dict(data)
    send(profile, event())
    stuck = threading.Event()
    release = threading.Event()
    app = IrisApp()

    @app.on(Event)
    def never_returns(evt: Event, ctx: Context) -> None:
        stuck.set()
        release.wait(30)

    caplog.set_level("INFO", logger="iris_cloud.consumer")
    consumer = consume(app, profile, roles=("events",), stop_timeout=0.5, wait=0.1)
    try:
        began = time.monotonic()
        stats = consumer.run_until(lambda s: stuck.is_set(), timeout=10)
        took = time.monotonic() - began
        assert took < 5 and stats.completed == 0
        assert any("left unsettled" in r.getMessage() for r in caplog.records)
        # Its lock is no longer renewed: the message comes back.
        time.sleep(1.5)
        assert waiting(profile) == 1
    finally:
        release.set()
        consumer.close()


SIGNAL_SCRIPT = """
import json, logging, sys, threading
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.model import Event
from pathlib import Path

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
state = Path(sys.argv[1])
profile = Profile.from_dict(json.loads(sys.argv[2]))
app = IrisApp()

@app.on(Event)
def stuck(evt, ctx):
    (state / "started").touch()
    threading.Event().wait(60)

consumer = Consumer.from_profile(app, profile, roles=("events",), stop_timeout=30)
sys.exit(consumer.run())
"""


def test_a_second_signal_exits_at_once_and_the_message_comes_back(tmp_path: Path) -> None:
    profile = make_profile("local", tmp_path)
    assert profile.events is not None
    send(profile, event())
    state = tmp_path / "state"
    state.mkdir()
    script = tmp_path / "consume.py"
    script.write_text(SIGNAL_SCRIPT)
    data = {"events": {"url": profile.events.url, "lock_seconds": 1}, "consumer": {"wait": 0.1}}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(state), json.dumps(data)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (state / "started").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None  # waiting for the handler, up to stop_timeout
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        assert time.monotonic() - began < 3
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 128 + signal.SIGINT
    assert proc.stderr is not None and "exiting now, unsettled" in proc.stderr.read()
    time.sleep(1.2)
    assert waiting(profile) == 1


def test_two_processes_sharing_a_dedupe_file_claim_before_handling(tmp_path: Path) -> None:
    path = tmp_path / "dedupe.sqlite3"
    first, second = Dedupe(path), Dedupe(path)
    try:
        claim = first.claim(["id:m1", "tx:t1"], ttl=30)
        assert claim is not None
        assert second.claim(["tx:t1"], ttl=30) is None  # the other process defers it
        first.release(claim)
        again = second.claim(["id:m1"], ttl=30)
        assert again is not None
        second.mark(["id:m1"], again)
        assert first.claim(["id:m1"], ttl=30) is None  # handled: never claimed again
        assert first.seen(["id:m1"])
        # A crashed claimant's claim lapses after its ttl.
        assert first.claim(["id:m2"], ttl=0.2) is not None
        assert second.claim(["id:m2"], ttl=30) is None
        time.sleep(0.3)
        assert second.claim(["id:m2"], ttl=30) is not None
    finally:
        first.close()
        second.close()


class LosingBroker(MemoryBroker):
    """Every renewal is refused, as when another consumer took the message over."""

    def renew_lock(self, message: Message) -> Any:
        raise LockLost("taken over")


def test_a_message_whose_lock_was_lost_is_not_settled_and_comes_back() -> None:
    broker = LosingBroker(f"lost-{uuid.uuid4().hex[:8]}", lock_seconds=0.5)
    broker.send(event())
    runs: list[int] = []
    app = IrisApp()

    @app.on(Event)
    def slow(evt: Event, ctx: Context) -> None:
        runs.append(ctx.attempt)
        deadline = time.monotonic() + 5
        while not ctx.lock_lost and len(runs) == 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)

    with Consumer(app, broker, dedupe=True, lock_renewal_interval=0.05, wait=0.1) as consumer:
        stats = consumer.run_until(lambda s: s.duplicates >= 1, timeout=15)
    # Handled once; not completed with the stale lock; the copy that came
    # back was recognised as a duplicate and completed.
    assert runs == [1] and stats.handled == 1 and stats.lock_lost == 1
    assert stats.completed == 1 and stats.duplicates == 1 and stats.settle_errors == 0


DEDUPE_SCRIPT = """
import json, os, sys, time
from pathlib import Path
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.model import Event

state, profile = Path(sys.argv[1]), Profile.from_dict(json.loads(sys.argv[2]))
app = IrisApp()

@app.on(Event)
def side_effect(evt, ctx):
    with open(state / "effects", "a") as out:
        out.write(f"{os.getpid()}\\n")
    time.sleep(1.5)  # the other process holds its copy meanwhile

consumer = Consumer.from_profile(
    app, profile, roles=("events",), dedupe=str(state / "dedupe.sqlite3"),
    concurrency=1, batch_size=1, wait=0.1, backoff_initial=0.2,
)
consumer.start()
(state / f"ready-{os.getpid()}").touch()
deadline = time.monotonic() + 20
while consumer.snapshot().handled + consumer.snapshot().duplicates < 1:
    if time.monotonic() > deadline:
        break
    time.sleep(0.05)
consumer.stop()
stats = consumer.join(10)
consumer.close()
(state / f"stats-{os.getpid()}.json").write_text(json.dumps(stats.as_dict()))
"""


def test_two_processes_on_one_dedupe_file_run_the_side_effect_once(tmp_path: Path) -> None:
    profile = make_profile("local", tmp_path)
    assert profile.events is not None
    state = tmp_path / "state"
    state.mkdir()
    script = tmp_path / "consume.py"
    script.write_text(DEDUPE_SCRIPT)
    data = json.dumps({"events": {"url": profile.events.url, "lock_seconds": 10}})
    procs = [subprocess.Popen([sys.executable, str(script), str(state), data]) for _ in range(2)]
    try:
        deadline = time.monotonic() + 30
        while len(list(state.glob("ready-*"))) < 2:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.05)
        body = event()  # one event, delivered twice (a redelivery, or IRIS sending it again)
        send(profile, body, body)
        for proc in procs:
            assert proc.wait(timeout=40) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert len((state / "effects").read_text().split()) == 1
    stats = [json.loads(p.read_text()) for p in state.glob("stats-*.json")]
    assert sum(s["handled"] for s in stats) == 1 and sum(s["duplicates"] for s in stats) == 1
    assert sum(s["deferred"] for s in stats) >= 1  # the second copy waited for the first
