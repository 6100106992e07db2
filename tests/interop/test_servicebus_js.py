"""@azure/service-bus (JavaScript) <-> ServiceBusBroker, on the Service Bus emulator.

Every test has the JavaScript SDK on one side and our broker (on the Python
SDK) on the other, so a difference between the emulator and the service that
only one SDK would notice shows up here.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from iris_cloud.ports import Message
from iris_cloud_azure import ServiceBusBroker
from iris_cloud_azure.testing import LISTEN_KEY, MANAGE_KEY, SEND_KEY

from .helpers import run_node, unique


@pytest.fixture
def queue(sb_server: Any) -> str:
    name = unique("js")
    sb_server.create_queue(name)
    return name


@pytest.fixture
def broker(sb_server: Any, queue: str) -> Iterator[ServiceBusBroker]:
    with ServiceBusBroker.from_url(
        sb_server.url(queue), connection_string=sb_server.connection_string(MANAGE_KEY, queue)
    ) as b:
        yield b


def js(sb_server: Any, *steps: dict[str, Any], key: str = MANAGE_KEY) -> list[dict[str, Any]]:
    """Run ``steps`` with the JavaScript SDK, authenticated with ``key``."""
    plan = {"connectionString": sb_server.connection_string(key), "steps": list(steps)}
    results: list[dict[str, Any]] = run_node("servicebus.mjs", plan)["results"]
    return results


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_js_sends_and_the_broker_receives_every_header_and_property(
    sb_server: Any, queue: str, broker: ServiceBusBroker
) -> None:
    properties = {"ResultObjectType": "OrderResult", "attempt": 3, "ratio": 0.5, "urgent": True}
    [sent] = js(
        sb_server,
        {
            "op": "send",
            "entity": queue,
            "messages": [
                {
                    "bodyBase64": b64(b"\x00binary\xff"),
                    "messageId": "js-1",
                    "correlationId": "order-7",
                    "subject": "OrderResult",
                    "contentType": "application/octet-stream",
                    "applicationProperties": properties,
                    "timeToLiveMs": 60_000,
                },
                # An object body: the JavaScript SDK sends it as JSON in a data section.
                {"body": {"a": 1}, "messageId": "js-2"},
            ],
        },
    )
    assert sent == {}
    got = {m.message_id: m for m in broker.receive(max_messages=2, wait=5)}
    assert set(got) == {"js-1", "js-2"}
    first = got["js-1"]
    assert first.body == b"\x00binary\xff"
    assert (first.correlation_id, first.subject) == ("order-7", "OrderResult")
    assert first.content_type == "application/octet-stream"
    assert first.properties == properties
    assert first.delivery_count == 1
    assert first.enqueued_at is not None
    assert got["js-2"].body == b'{"a":1}'
    for m in got.values():
        broker.complete(m)
    [peeked] = js(sb_server, {"op": "peek", "entity": queue, "max": 5})
    assert peeked == {"messages": []}


def test_the_broker_sends_and_js_receives_every_header_and_property(
    sb_server: Any, queue: str, broker: ServiceBusBroker
) -> None:
    properties = {"ResultObjectType": "OrderResult", "attempt": 3, "ratio": 0.25, "urgent": False}
    broker.send(
        Message(
            body=b"\x00\x01PDF",
            message_id="py-1",
            correlation_id="order-9",
            subject="OrderResult",
            content_type="application/pdf",
            properties=properties,
        )
    )
    [received] = js(sb_server, {"op": "receive", "entity": queue, "max": 1, "settle": "complete"})
    [m] = received["messages"]
    assert base64.b64decode(m["body"]["base64"]) == b"\x00\x01PDF"
    assert (m["messageId"], m["correlationId"]) == ("py-1", "order-9")
    assert (m["subject"], m["contentType"]) == ("OrderResult", "application/pdf")
    assert m["applicationProperties"] == properties
    assert m["deliveryCount"] == 0
    assert sb_server.emulator.message_count(queue) == 0


def test_js_abandons_count_until_the_broker_reads_max_delivery_count_exceeded(
    sb_server: Any, queue: str, broker: ServiceBusBroker
) -> None:
    broker.send(Message(body=b"poison", message_id="p-1"))
    abandon = {"op": "receive", "entity": queue, "max": 1, "settle": "abandon"}
    results = js(
        sb_server, abandon, abandon, abandon, {**abandon, "waitMs": 1000, "settle": "none"}
    )
    counts = [r["messages"][0]["deliveryCount"] for r in results[:3]]
    assert counts == [0, 1, 2]
    assert results[3] == {"messages": []}  # gone from the queue after the third abandon
    [dead] = broker.receive_dead_letters(max_messages=1, wait=5)
    assert (dead.message_id, dead.body) == ("p-1", b"poison")
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    broker.complete(dead)


def test_the_brokers_abandon_is_counted_for_js(
    sb_server: Any, queue: str, broker: ServiceBusBroker
) -> None:
    broker.send(Message(body=b"retry me", message_id="r-1"))
    [first] = broker.receive(wait=5)
    broker.abandon(first)
    [received] = js(sb_server, {"op": "receive", "entity": queue, "max": 1, "settle": "complete"})
    assert [m["deliveryCount"] for m in received["messages"]] == [1]


def test_dead_letter_reason_and_description_cross_both_ways(
    sb_server: Any, queue: str, broker: ServiceBusBroker
) -> None:
    broker.send(Message(body=b"from py", message_id="to-js"))
    js(
        sb_server,
        {
            "op": "receive",
            "entity": queue,
            "max": 1,
            "settle": "deadLetter",
            "reason": "ValidationError",
            "description": "ResultsDocument.Content",
        },
    )
    [dead] = broker.receive_dead_letters(max_messages=1, wait=5)
    assert dead.message_id == "to-js"
    assert dead.dead_letter_reason == "ValidationError"
    assert dead.dead_letter_description == "ResultsDocument.Content"
    broker.complete(dead)

    js(
        sb_server,
        {"op": "send", "entity": queue, "messages": [{"body": "x", "messageId": "to-py"}]},
    )
    [m] = broker.receive(wait=5)
    broker.dead_letter(m, "DecodeError", "body")
    [read] = js(
        sb_server,
        {"op": "receive", "entity": queue, "subQueue": "deadLetter", "settle": "complete"},
    )
    [letter] = read["messages"]
    assert letter["messageId"] == "to-py"
    assert (letter["deadLetterReason"], letter["deadLetterErrorDescription"]) == (
        "DecodeError",
        "body",
    )


def test_js_peek_renew_and_defer_against_the_broker(
    sb_server: Any, queue: str, broker: ServiceBusBroker
) -> None:
    broker.send(
        [Message(body=b"long", message_id="long"), Message(body=b"later", message_id="later")]
    )
    peek, renew, defer, taken = js(
        sb_server,
        {"op": "peek", "entity": queue, "max": 5},
        # Locks last 2 s: renewed twice 1.2 s apart, the complete lands 2.4 s in.
        {"op": "receive", "entity": queue, "settle": "complete", "renewals": 2, "holdMs": 1200},
        {"op": "receive", "entity": queue, "settle": "defer"},
        {"op": "peek", "entity": queue, "max": 5, "fresh": True},
    )
    assert [m["messageId"] for m in peek["messages"]] == ["long", "later"]
    assert [m["deliveryCount"] for m in peek["messages"]] == [0, 0]
    assert [m["messageId"] for m in renew["messages"]] == ["long"]
    assert "error" not in renew, renew
    locked_until = datetime.fromisoformat(renew["messages"][0]["lockedUntilUtc"])
    renewed = [datetime.fromisoformat(t) for t in renew["renewedUntil"]]
    assert locked_until < renewed[0] < renewed[1]
    [deferred] = defer["messages"]
    assert deferred["messageId"] == "later"
    assert [m["state"] for m in taken["messages"]] == ["deferred"]
    assert broker.receive(wait=0.5) == []  # deferred: out of the queue's way
    _, fetched = js(
        sb_server,
        {"op": "peek", "entity": queue, "max": 5},  # learns the deferred message's Long
        {
            "op": "receiveDeferred",
            "entity": queue,
            "sequenceNumbers": [deferred["sequenceNumber"]],
            "settle": "complete",
        },
    )
    assert [m["messageId"] for m in fetched.get("messages", [])] == ["later"], fetched
    assert sb_server.emulator.message_count(queue) == 0


def test_js_schedules_and_cancels_and_the_broker_receives_on_time(
    sb_server: Any, queue: str, broker: ServiceBusBroker
) -> None:
    scheduled, _, cancelled = js(
        sb_server,
        {"op": "schedule", "entity": queue, "inMs": 2500, "messages": [{"body": "due"}]},
        {"op": "schedule", "entity": queue, "inMs": 2500, "messages": [{"body": "dropped"}]},
        {"op": "cancelScheduled", "entity": queue, "sequenceNumbers": "last"},
    )
    assert cancelled == {}
    due = datetime.fromisoformat(scheduled["at"])
    got: list[Message] = []
    until = time.monotonic() + 10
    while not got and time.monotonic() < until:
        got = broker.receive(wait=1)
    assert datetime.now(UTC) >= due
    assert [m.body for m in got] == [b'"due"']  # a string body goes as JSON
    broker.complete(got[0])
    assert broker.receive(wait=1) == []  # the cancelled one never arrives


def test_send_only_and_listen_only_keys_are_refused_what_they_lack(
    sb_server: Any, queue: str, broker: ServiceBusBroker
) -> None:
    sent, refused_receive = js(
        sb_server,
        {"op": "send", "entity": queue, "messages": [{"body": "order", "messageId": "o-1"}]},
        {"op": "receive", "entity": queue, "waitMs": 2000},
        key=SEND_KEY,
    )
    assert sent == {}
    assert refused_receive["error"]["code"] == "UnauthorizedAccess"
    refused_send, received = js(
        sb_server,
        {"op": "send", "entity": queue, "messages": [{"body": "forged", "messageId": "f-1"}]},
        {"op": "receive", "entity": queue, "max": 5, "waitMs": 3000, "settle": "complete"},
        key=LISTEN_KEY,
    )
    assert refused_send["error"]["code"] == "UnauthorizedAccess"
    assert [m["messageId"] for m in received["messages"]] == ["o-1"]
    assert broker.receive(wait=0.5) == []
