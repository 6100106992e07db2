"""SQS through a faulty network: a silent connection is noticed, logged once, and healed."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.errors import Timeout
from iris_cloud.ports import Message
from iris_cloud.testing import FaultProxy
from iris_cloud_aws import SqsBroker
from iris_cloud_aws.testing import MotoServer

pytestmark = pytest.mark.timeout(90)

# Short timeouts make a bounded form of what takes 30 s x 3 attempts by default.
FAST = {"read_timeout": 3, "connect_timeout": 1, "max_attempts": 1}


def through(proxy: FaultProxy, moto: MotoServer, queue: str, **options: Any) -> SqsBroker:
    server = moto.endpoint_url.split("://", 1)[1]
    url = moto.queue_url_form(queue).replace(server, proxy.address)
    return SqsBroker.from_url(
        url, **moto.options(endpoint_url=f"http://{proxy.address}", **FAST, **options)
    )


def proxy_for(moto: MotoServer) -> FaultProxy:
    host, port = moto.endpoint_url.split("://", 1)[1].rsplit(":", 1)
    return FaultProxy(host, int(port))


def test_a_black_holed_receive_times_out_within_the_read_timeout(
    moto: MotoServer, queue: str, broker: SqsBroker
) -> None:
    broker.send(b"waiting")
    with proxy_for(moto) as proxy, through(proxy, moto, queue) as faulty:
        proxy.set_mode("blackhole")
        began = time.monotonic()
        with pytest.raises(Timeout):
            faulty.receive(max_messages=1, wait=10)
        assert time.monotonic() - began < 6  # read_timeout 3 s; the long poll fits in it
        proxy.set_mode("pass")
        got = faulty.receive(max_messages=1, wait=5)
        assert [m.body for m in got] == [b"waiting"]
        faulty.complete(got[0])


def test_a_consumer_rides_out_a_dead_connection_and_loses_nothing(
    moto: MotoServer, queue: str, broker: SqsBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="iris_cloud.consumer")
    seen: set[str] = set()
    lock = threading.Lock()
    app = IrisApp()

    @app.fallback
    def anything(message: Any, ctx: Context) -> None:
        with lock:
            seen.add(ctx.message.message_id)

    body = b'{"not": "an iris message"}'  # poison: dead-lettered, still counted
    with proxy_for(moto) as proxy, through(proxy, moto, queue, lock_seconds=30) as faulty:
        consumer = Consumer(app, faulty, wait=1.0, stop_timeout=2)
        consumer.start()
        proxy.set_mode("blackhole")
        broker.send([Message(body=body, message_id=f"m{i}") for i in range(5)])
        time.sleep(8)  # two read timeouts, at least
        proxy.set_mode("pass")
        deadline = time.monotonic() + 30
        while consumer.snapshot().dead_lettered < 5:
            assert time.monotonic() < deadline, consumer.snapshot()
            time.sleep(0.1)
        began = time.monotonic()
        proxy.set_mode("blackhole")  # and a stop while the network is down
        time.sleep(0.5)
        consumer.stop()
        stats = consumer.join(10)
        assert time.monotonic() - began < 0.5 + 3
    assert stats.receive_errors >= 1 and stats.dead_lettered == 5
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "receiving from" in r.getMessage()
    ]
    failed = [w for w in warnings if "failed" in w]
    # Once per outage, not per attempt. Which transient class comes first depends on
    # where the link was when it died: a pooled connection times out reading, a new
    # one (a busy machine can be between polls) is refused a connection.
    assert len(failed) == 1, failed
    assert "(Timeout)" in failed[0] or "(Unavailable)" in failed[0], failed
    assert any("works again" in w for w in warnings)
