"""Service Bus through a faulty network: a silent connection is found, dropped and reopened."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.ports import Message
from iris_cloud.testing import FaultProxy, cut_and_heal
from iris_cloud_azure.broker import ServiceBusBroker
from iris_cloud_azure.testing import ServiceBusServer

pytestmark = pytest.mark.timeout(120)


def test_a_silent_connection_is_probed_dropped_and_reopened(
    sb_server: ServiceBusServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    sb_server.create_queue(queue)
    app = IrisApp()

    @app.fallback
    def anything(message: Any, ctx: Context) -> None:
        pass

    poison = b'{"not": "an iris message"}'  # dead-lettered at once: counted all the same
    with FaultProxy(sb_server.host, sb_server.port) as proxy:
        conn = sb_server.connection_string(entity=queue).replace(
            f":{sb_server.port}", f":{proxy.port}"
        )
        faulty = ServiceBusBroker.from_url(
            f"azuresb://{proxy.address}/{queue}",
            connection_string=conn,
            probe_interval=1,
            probe_timeout=1,
            retry_total=0,
        )
        sender = ServiceBusBroker.from_url(
            sb_server.url(queue), connection_string=sb_server.connection_string(entity=queue)
        )
        consumer = Consumer(app, faulty, wait=0.5, stop_timeout=2, close_brokers=True)
        consumer.start()
        time.sleep(1.0)  # connected and polling
        # The probe is what notices: receives alone would only come back empty.
        cut_and_heal(
            consumer,
            proxy,
            lambda: sender.send([Message(body=poison, message_id=f"m{i}") for i in range(5)]),
            expect_dead_letters=5,
            notice_within=20,
        )
        began = time.monotonic()
        consumer.stop()
        stats = consumer.join(10)
        consumer.close()
        assert time.monotonic() - began < 5
        sender.close()
    assert stats.dead_lettered == 5 and proxy.connections >= 2  # it reconnected
    assert any("did not answer" in r.getMessage() for r in caplog.records)
