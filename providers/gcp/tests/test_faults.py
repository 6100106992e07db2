"""Pub/Sub through a faulty network: keepalive notices a silent connection; nothing is lost."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.ports import Message
from iris_cloud.testing import FaultProxy, cut_and_heal
from iris_cloud_gcp.broker import PubSubBroker
from iris_cloud_gcp.testing import PubSubAdmin

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def admin(pubsub_host: str) -> Iterator[PubSubAdmin]:
    a = PubSubAdmin(pubsub_host)
    yield a
    a.close()


def url_of(path: str) -> str:
    return f"gcppubsub://{path}"


def test_a_silent_connection_is_noticed_by_keepalive_and_healed(
    admin: PubSubAdmin, pubsub_host: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="iris_cloud.consumer")
    topic, sub = admin.queue(f"faults-{os.urandom(4).hex()}", ack_deadline=10)
    host, port = pubsub_host.rsplit(":", 1)
    seen: set[str] = set()
    lock = threading.Lock()
    app = IrisApp()

    @app.fallback
    def anything(message: Any, ctx: Context) -> None:
        with lock:
            seen.add(ctx.message.message_id)

    poison = b'{"not": "an iris message"}'  # dead-lettered at once: counted all the same
    with (
        FaultProxy(host, int(port)) as proxy,
        PubSubBroker.from_url(url_of(topic), emulator_host=pubsub_host) as sender,
        PubSubBroker.from_url(
            url_of(sub), emulator_host=proxy.address, keepalive=1, timeout=10
        ) as faulty,
    ):
        consumer = Consumer(app, faulty, wait=1.0, stop_timeout=2)
        consumer.start()
        time.sleep(1.5)  # connected and polling
        # Keepalive is what notices: pulls alone would only time out.
        cut_and_heal(
            consumer,
            proxy,
            lambda: sender.send([Message(body=poison, message_id=f"m{i}") for i in range(5)]),
            expect_dead_letters=5,
            notice_within=30,
        )
        consumer.stop()
        stats = consumer.join(10)
    assert stats.dead_lettered == 5 and proxy.connections >= 2  # it redialled
    failed = [r for r in caplog.records if "receiving from" in r.getMessage()]
    assert failed and all("failed" in r.getMessage() or "again" in r.getMessage() for r in failed)
