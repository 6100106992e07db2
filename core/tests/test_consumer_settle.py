"""The consumer's batched completions: by count, by time, at the stop, and after a crash."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.errors import IrisCloudError
from iris_cloud.model import Event
from iris_cloud.ports import Message
from iris_cloud.providers.local import LocalBroker
from iris_cloud.providers.memory import MemoryBroker
from wfhelpers import sample


def event() -> bytes:
    return json.dumps(sample("event-order-graded.json")).encode()


class CountingBroker(MemoryBroker):
    """A mem:// broker that records the batches ``complete_many`` is given."""

    batches: list[int]

    def complete_many(self, messages: Any) -> list[IrisCloudError | None]:
        batch = list(messages)
        self.batches.append(len(batch))
        return super().complete_many(batch)


def counting_broker() -> CountingBroker:
    broker = CountingBroker(f"settle-{uuid.uuid4().hex}")
    broker.batches = []
    return broker


def app_handling(seen: list[str]) -> IrisApp:
    app = IrisApp()

    @app.on(Event)
    def handle(evt: Event, ctx: Any) -> None:
        seen.append(ctx.message.message_id)

    return app


def consumer_on(count: int, **settings: Any) -> tuple[CountingBroker, Consumer, list[str]]:
    """A counting broker holding ``count`` events, and a consumer of them recording ids."""
    broker = counting_broker()
    broker.send([Message(body=event()) for _ in range(count)])
    seen: list[str] = []
    return broker, Consumer(app_handling(seen), broker, **settings), seen


def test_a_full_batch_is_completed_in_one_call() -> None:
    broker, consumer, _ = consumer_on(
        6, settle_batch=3, settle_delay=1.0, concurrency=3, batch_size=3
    )
    stats = consumer.run_until(lambda s: s.completed == 6, timeout=10)
    assert stats.completed == stats.handled == 6
    assert broker.batches == [3, 3]
    assert broker.receive(max_messages=10) == []


def test_a_partial_batch_goes_after_settle_delay() -> None:
    broker, consumer, _ = consumer_on(2, settle_batch=50, settle_delay=0.05, wait=0.1)
    start = time.monotonic()
    stats = consumer.run_until(lambda s: s.completed == 2, timeout=10)
    # Completed while running, by the timer: not by the stop (timeout 10 s).
    assert time.monotonic() - start < 5
    assert stats.completed == 2
    assert sum(broker.batches) == 2


def test_the_stop_completes_what_waits() -> None:
    broker, consumer, seen = consumer_on(
        4, settle_batch=100, settle_delay=1.0, concurrency=4, wait=0.1
    )
    stats = consumer.run_until(lambda s: s.handled == 4, timeout=10)
    assert len(seen) == 4
    assert stats.completed == 4
    assert broker.receive(max_messages=10) == []


def test_without_batches_each_message_is_completed_alone() -> None:
    broker, consumer, _ = consumer_on(3, settle_batch=1, wait=0.1)
    stats = consumer.run_until(lambda s: s.completed == 3, timeout=10)
    assert stats.completed == 3
    assert broker.batches == [1, 1, 1]  # complete() is complete_many() of one on mem://


def test_a_lost_lock_in_a_batch_costs_no_other_message() -> None:
    broker = counting_broker()
    broker.send([Message(body=event(), message_id=f"m{i}") for i in range(3)])
    app = IrisApp()

    @app.on(Event)
    def handle(evt: Event, ctx: Any) -> None:
        if ctx.message.message_id == "m1":
            # Settled behind the consumer's back: its completion finds no lock.
            MemoryBroker.complete(broker, ctx.message)

    consumer = Consumer(app, broker, settle_batch=3, settle_delay=1.0, concurrency=3, batch_size=3)
    stats = consumer.run_until(lambda s: s.handled == 3, timeout=10)
    assert stats.completed == 2 and stats.lock_lost == 1
    assert broker.receive(max_messages=10) == []


KILLED = r"""
import sys, json
from pathlib import Path
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.model import Event
from iris_cloud.providers.local import LocalBroker

state = Path(sys.argv[1])
broker = LocalBroker(sys.argv[2], "events", lock_seconds=2.0)
app = IrisApp()

@app.on(Event)
def handle(evt, ctx):
    (state / f"handled-{ctx.message.message_id}").touch()

# Completions wait up to a second for more: the kill comes while they wait.
Consumer(app, broker, settle_batch=100, settle_delay=1.0, concurrency=5, batch_size=5).run()
"""


def test_a_kill_with_completions_waiting_loses_nothing(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    ids = [f"m{i}" for i in range(5)]
    with LocalBroker(queue, "events") as broker:
        broker.send([Message(body=event(), message_id=i) for i in ids])
    state = tmp_path / "state"
    state.mkdir()
    script = tmp_path / "consume.py"
    script.write_text(KILLED)
    proc = subprocess.Popen([sys.executable, str(script), str(state), str(queue)])
    try:
        deadline = time.monotonic() + 30
        while len(list(state.glob("handled-*"))) < len(ids):
            assert time.monotonic() < deadline, "the consumer did not handle the messages"
            assert proc.poll() is None, "the consumer died"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # Handled, never completed: every one comes back once its lock runs out.
    with LocalBroker(queue, "events") as broker:
        back: dict[str, int] = {}
        deadline = time.monotonic() + 15
        while len(back) < len(ids) and time.monotonic() < deadline:
            for msg in broker.receive(max_messages=10, wait=1.0):
                back[msg.message_id] = msg.delivery_count
                broker.complete(msg)
    assert back == dict.fromkeys(ids, 2)


def test_settle_delay_zero_completes_at_once() -> None:
    broker, consumer, _ = consumer_on(1, settle_delay=0.0, wait=0.1)
    stats = consumer.run_until(lambda s: s.completed == 1, timeout=10)
    assert stats.completed == 1 and broker.batches == [1]
