"""google-cloud-pubsub's streaming ``subscribe()`` with flow control, fed by PubSubBroker.

The subscriber is the library as an application uses it (``PUBSUB_EMULATOR_HOST``,
a callback, ``FlowControl``), not the pull loop our broker runs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from google.cloud import pubsub_v1
from iris_cloud.ports import Message
from iris_cloud_gcp import PubSubBroker

from .helpers import unique

COUNT = 1000
MAX_OUTSTANDING = 50


def test_subscribe_with_flow_control_acks_a_thousand_messages_once_and_shuts_down(
    pubsub: Any, pubsub_admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = pubsub_admin.topic(unique("flow"))
    sub = pubsub_admin.subscription(unique("flow-sub"), topic, ack_deadline=10)
    with PubSubBroker.from_url(f"gcppubsub://{topic}", emulator_host=pubsub.host_port) as broker:
        broker.send([Message(body=f"m{i}".encode(), properties={"i": i}) for i in range(COUNT)])

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub.host_port)
    subscriber = pubsub_v1.SubscriberClient()
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    in_flight = peak = 0
    everything = threading.Event()

    def callback(message: Any) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.002)  # some work, so that flow control has something to hold back
        with lock:
            seen[message.attributes["i"]] += 1
            in_flight -= 1
            if len(seen) == COUNT:
                everything.set()
        message.ack()

    future = subscriber.subscribe(
        sub,
        callback,
        flow_control=pubsub_v1.types.FlowControl(max_messages=MAX_OUTSTANDING),
    )
    try:
        assert everything.wait(90), f"{len(seen)} of {COUNT} delivered"
        # Acks reached the server: nothing left to deliver, nothing redelivered.
        until = time.monotonic() + 15
        while pubsub.num_undelivered_messages(sub) and time.monotonic() < until:
            time.sleep(0.1)
        assert pubsub.num_undelivered_messages(sub) == 0
    finally:
        future.cancel()
        started = time.monotonic()
        future.result(timeout=30)  # a clean shutdown: no error, and soon
        stopped_in = time.monotonic() - started
        subscriber.close()
    assert sorted(seen, key=int) == [str(i) for i in range(COUNT)]
    assert set(seen.values()) == {1}, "a message was delivered twice"
    assert peak <= MAX_OUTSTANDING
    assert stopped_in < 30
