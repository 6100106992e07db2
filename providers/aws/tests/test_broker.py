"""SqsBroker behaviour beyond the contract suite: URLs, limits, FIFO, batches, dead letters."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from iris_cloud.aio.stepped import AsyncSteppedBroker
from iris_cloud.deadletters import replay, select
from iris_cloud.errors import (
    ConfigurationError,
    LockLost,
    MessageTooLarge,
    NotFound,
    Unavailable,
    ValidationError,
)
from iris_cloud.ports import Message
from iris_cloud.stepped import SteppedBroker
from iris_cloud.testing.spans import SpanRecorder
from iris_cloud_aws import S3Store, SqsBroker
from iris_cloud_aws._sqs import SqsCommon
from iris_cloud_aws.broker import ATTRIBUTE_LIMIT, queue_location
from iris_cloud_aws.testing import MotoServer
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState


def _open(moto: MotoServer, queue: str, **options: Any) -> SqsBroker:
    return SqsBroker.from_url(moto.broker_url(queue), **moto.options(**options))


def _receive_all(broker: SqsBroker, count: int, timeout: float = 10) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += broker.receive(max_messages=count - len(got), wait=1)
    return got


# -- URLs and options ------------------------------------------------------------------------------
def test_queue_location_forms() -> None:
    assert queue_location("sqs.eu-west-1.amazonaws.com", "/123456789012/orders") == (
        "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
        None,
        "eu-west-1",
    )
    assert queue_location("orders", "") == (None, "orders", None)
    assert queue_location("127.0.0.1:9", "/1/q/", "http://127.0.0.1:9") == (
        "http://127.0.0.1:9/1/q",
        None,
        None,
    )
    with pytest.raises(ConfigurationError):
        queue_location("", "/x")


@pytest.mark.parametrize("port", [SteppedBroker, AsyncSteppedBroker])
def test_a_broker_without_the_sleep_hook_cannot_be_made(port: type) -> None:
    # Refused when made, not at the first retry that would call the hook.
    class Half(SqsCommon, port):
        pass

    with pytest.raises(TypeError, match=r"abstract method.*\b_sleep\b"):
        Half()


def test_url_form_and_name_form_reach_the_same_queue(moto: MotoServer, queue: str) -> None:
    by_url = SqsBroker.from_url(moto.queue_url_form(queue), **moto.options())
    by_name = _open(moto, queue)
    assert by_url.queue_url == by_name.queue_url
    by_url.send(b"via url form")
    [msg] = _receive_all(by_name, 1)
    assert msg.body == b"via url form"
    by_name.complete(msg)


def test_region_and_endpoint_from_url_query(moto: MotoServer, queue: str) -> None:
    url = f"awssqs://{queue}?region={moto.region}&endpoint_url={moto.endpoint_url}"
    with SqsBroker.from_url(url, **moto.credentials) as broker:
        assert broker.queue_url.endswith(f"/{queue}")


def test_credentials_in_url_refused(moto: MotoServer, queue: str) -> None:
    with pytest.raises(ConfigurationError, match="must be passed as options"):
        SqsBroker.from_url(f"awssqs://{queue}?aws_secret_access_key=x", **moto.options())


def test_unknown_option_refused(moto: MotoServer, queue: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown awssqs option"):
        _open(moto, queue, visibility=5)


def test_missing_queue_is_not_found(moto: MotoServer) -> None:
    with pytest.raises(NotFound):
        _open(moto, "no-such-queue")


def test_repr_hides_credentials(moto: MotoServer, queue: str) -> None:
    broker = _open(moto, queue, aws_session_token="session-token-value")
    text = repr(broker) + repr(broker._aws)
    assert moto.credentials["aws_secret_access_key"] not in text
    assert moto.credentials["aws_access_key_id"] not in text
    assert "session-token-value" not in text


def test_repr_masks_a_password_in_endpoint_url(moto: MotoServer, queue: str) -> None:
    # A proxy or gateway in front of the service may take basic auth in the URL.
    endpoint = moto.options()["endpoint_url"].replace("://", "://admin:Hunter2pw@", 1)
    broker = _open(moto, queue, endpoint_url=endpoint)
    text = repr(broker) + repr(broker._aws)
    assert "Hunter2pw" not in text and "admin:***@" in text


# -- capabilities read from the queue --------------------------------------------------------------
def test_capabilities_come_from_queue_attributes(moto: MotoServer, name: str) -> None:
    moto.create_queue(name, max_message_bytes=2048, dead_letter=True, max_receive_count=4)
    caps = _open(moto, name).capabilities
    assert caps.max_message_bytes == 2048
    assert caps.max_batch == 10 and caps.max_batch_bytes == 2048
    assert caps.native_dead_letter and caps.max_delivery_count == 4
    assert caps.delayed_retry and caps.lock_renewal


def test_queue_without_redrive_policy(moto: MotoServer, name: str) -> None:
    moto.create_queue(name)
    broker = _open(moto, name)
    assert not broker.capabilities.native_dead_letter
    assert broker.capabilities.max_delivery_count is None
    broker.send(b"x")
    [msg] = _receive_all(broker, 1)
    with pytest.raises(ConfigurationError, match="nowhere to dead-letter"):
        broker.dead_letter(msg, "Poison")
    broker.complete(msg)


def test_dead_letter_queue_option(moto: MotoServer, name: str) -> None:
    moto.create_queue(name)
    moto.create_queue(f"{name}-parking")
    broker = _open(moto, name, dead_letter_queue=f"{name}-parking")
    assert broker.capabilities.native_dead_letter
    broker.send(Message(body=b"bad", properties={"k": 1}))
    [msg] = _receive_all(broker, 1)
    broker.dead_letter(msg, "Poison", "unparseable")
    [dead] = broker.receive_dead_letters(wait=1)
    assert (dead.body, dead.properties) == (b"bad", {"k": 1})
    assert (dead.dead_letter_reason, dead.dead_letter_description) == ("Poison", "unparseable")
    broker.complete(dead)


# -- sizes and attributes --------------------------------------------------------------------------
def test_more_than_ten_attributes_refused_before_sending(broker: SqsBroker) -> None:
    props: dict[str, str | int | float | bool] = {f"p{i}": i for i in range(ATTRIBUTE_LIMIT)}
    with pytest.raises(ConfigurationError, match="SQS allows 10"):
        broker.send([b"fine", Message(body=b"x", properties=props)])
    # The whole send is refused up front: not even the first message went.
    assert broker.receive(max_messages=10, wait=0) == []


@pytest.mark.parametrize(("properties", "carried"), [(7, {"traceparent"}), (8, set())])
def test_trace_context_gives_way_to_the_attribute_limit(
    broker: SqsBroker, spans: SpanRecorder, properties: int, carried: set[str]
) -> None:
    # Message id and content type take 2 of the 10: what is left decides.
    props: dict[str, str | int | float | bool] = {f"p{i}": i for i in range(properties)}
    parent = SpanContext(
        0x1, 0x2, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v")])
    )
    with trace.use_span(NonRecordingSpan(parent)):
        broker.send(Message(body=b"x", properties=props))
    [msg] = _receive_all(broker, 1)
    assert {k: msg.properties.pop(k) for k in carried if k in msg.properties}.keys() == carried
    assert msg.properties == props
    broker.complete(msg)


def test_reserved_property_name_refused(broker: SqsBroker) -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        broker.send(Message(body=b"x", properties={"iris_message_id": "mine"}))


def test_wire_size_counts_headers(moto: MotoServer, name: str) -> None:
    # The core's estimate (body + properties) fits 2048 bytes; with our header
    # attributes it does not: refused without a claim check ...
    moto.create_queue(name, max_message_bytes=2048)
    body = b"x" * 2000
    broker = _open(moto, name)
    with pytest.raises(MessageTooLarge, match="on the wire"):
        broker.send(Message(body=body, correlation_id="c" * 30))
    # ... and offloaded with one.
    bucket = moto.create_bucket(f"{name}-cc")
    store = S3Store.from_url(moto.store_url(bucket), **moto.options())
    checked = _open(moto, name, claim_check=store)
    checked.send(Message(body=body, correlation_id="c" * 30))
    [msg] = _receive_all(checked, 1)
    assert msg.body == body and msg.correlation_id == "c" * 30
    assert len(list(store.list())) == 1
    checked.complete(msg)


def test_batches_of_more_than_ten_and_receive_more_than_ten(broker: SqsBroker) -> None:
    ids = broker.send([f"m{i}" for i in range(23)])
    assert len(ids) == 23
    got = _receive_all(broker, 23)
    assert sorted(m.message_id for m in got) == sorted(ids)
    for m in got:
        broker.complete(m)


def test_foreign_message_without_our_attributes(moto: MotoServer, broker: SqsBroker) -> None:
    sqs = moto.client("sqs")
    sent = sqs.send_message(
        QueueUrl=broker.queue_url,
        MessageBody='{"hello": "world"}',
        MessageAttributes={
            "Count": {"DataType": "Number", "StringValue": "3"},
            "Ratio": {"DataType": "Number", "StringValue": "0.5"},
            "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            "Label": {"DataType": "String.custom", "StringValue": "x"},
        },
    )
    [msg] = _receive_all(broker, 1)
    assert msg.message_id == sent["MessageId"]
    assert msg.body == b'{"hello": "world"}'
    assert msg.content_type is None and msg.correlation_id is None
    assert msg.properties == {"Count": 3, "Ratio": 0.5, "Blob": "AAE=", "Label": "x"}
    broker.complete(msg)


def test_attributes_on_the_wire(moto: MotoServer, broker: SqsBroker) -> None:
    broker.send(
        Message(
            body=b"\xff\x00",
            message_id="ours-1",
            subject="S",
            properties={"n": 1, "f": 1.5, "b": True},
        )
    )
    raw = moto.client("sqs").receive_message(
        QueueUrl=broker.queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"][0]
    attrs = raw["MessageAttributes"]
    assert attrs["iris_message_id"]["StringValue"] == "ours-1"
    assert raw["MessageId"] != "ours-1"
    assert attrs["iris_body_encoding"]["StringValue"] == "base64"
    assert (attrs["n"]["DataType"], attrs["n"]["StringValue"]) == ("Number", "1")
    assert attrs["f"]["DataType"] == "Number.float"
    assert attrs["b"]["DataType"] == "String.bool"


# -- locks -----------------------------------------------------------------------------------------
def test_lock_seconds_option_sets_visibility_on_receive(moto: MotoServer, queue: str) -> None:
    broker = _open(moto, queue, lock_seconds=1)
    broker.send(b"short lock")
    [first] = _receive_all(broker, 1)
    assert first.locked_until is not None and first.lock_token
    time.sleep(1.5)
    [again] = _receive_all(broker, 1)
    assert again.message_id == first.message_id and again.delivery_count == 2
    broker.complete(again)


def test_settling_a_deleted_message_loses_the_lock(broker: SqsBroker) -> None:
    broker.send(b"x")
    [msg] = _receive_all(broker, 1)
    broker.complete(msg)
    with pytest.raises(LockLost):
        broker.renew_lock(msg)
    with pytest.raises(LockLost):
        broker.abandon(msg)


def test_lock_seconds_out_of_range(moto: MotoServer, queue: str) -> None:
    with pytest.raises(ConfigurationError):
        _open(moto, queue, lock_seconds=50_000)


# -- dead letters ----------------------------------------------------------------------------------
def test_dead_letter_keeps_all_properties_past_the_attribute_limit(broker: SqsBroker) -> None:
    # 9 properties + our message id = 10 attributes: the reason attributes
    # do not fit beside them, so the overflow travels as JSON.
    props: dict[str, str | int | float | bool] = {f"p{i}": i for i in range(8)}
    props["flag"] = True
    broker.send(Message(body=b"poison", content_type=None, properties=props))
    [msg] = _receive_all(broker, 1)
    broker.dead_letter(msg, "Poison", "x" * 10_000)
    [dead] = broker.receive_dead_letters(wait=1)
    assert dead.properties == props
    assert dead.message_id == msg.message_id
    assert dead.dead_letter_reason == "Poison"
    assert dead.dead_letter_description == "x" * 4096
    broker.complete(dead)
    assert broker.receive_dead_letters(wait=0) == []


def test_redrive_by_max_receive_count(broker: SqsBroker) -> None:
    broker.send(b"always fails")
    for expected in (1, 2, 3):
        [msg] = _receive_all(broker, 1)
        assert msg.delivery_count == expected
        broker.abandon(msg)
    assert broker.receive(max_messages=1, wait=1) == []
    [dead] = broker.receive_dead_letters(wait=1)
    assert dead.body == b"always fails" and dead.dead_letter_reason is None
    broker.complete(dead)


# -- FIFO ------------------------------------------------------------------------------------------
def test_fifo_group_and_deduplication(moto: MotoServer, name: str) -> None:
    fifo = f"{name}.fifo"
    moto.create_queue(fifo, dead_letter=True)
    broker = _open(moto, fifo)
    assert broker.fifo
    broker.send(
        [
            Message(body=b"1", properties={"OrderLocalId": "ORD-1", "TransactionId": "T1"}),
            Message(body=b"dup", properties={"OrderLocalId": "ORD-1", "TransactionId": "T1"}),
            Message(body=b"2", properties={"OrderLocalId": "ORD-1", "TransactionId": "T2"}),
            Message(body=b"other", correlation_id="ORD-2"),
        ]
    )
    got = _receive_all(broker, 3)
    bodies = [m.body for m in got]
    assert sorted(bodies) == [b"1", b"2", b"other"]
    # Order within a group is kept.
    assert bodies.index(b"1") < bodies.index(b"2")
    groups = {m.body: m.raw.message["Attributes"]["MessageGroupId"] for m in got}
    assert groups == {b"1": "ORD-1", b"2": "ORD-1", b"other": "ORD-2"}
    first = next(m for m in got if m.body == b"1")
    broker.dead_letter(first, "Poison")
    [dead] = broker.receive_dead_letters(wait=1)
    assert dead.body == b"1" and dead.dead_letter_reason == "Poison"
    for m in got:
        if m is not first:
            broker.complete(m)
    # A replay gets a deduplication id of its own: SQS drops a send whose id
    # (here TransactionId T1) it saw within five minutes, and the dead letter,
    # completed after that "successful" send, would be lost. moto forgets the
    # id of a deleted message, so a copy of T1 waiting in the queue shows it.
    broker.send(Message(body=b"again", properties={"OrderLocalId": "ORD-1", "TransactionId": "T1"}))
    broker.abandon(dead)
    assert replay(broker, select(everything=True), wait=1).done == 1
    back = _receive_all(broker, 2)
    assert sorted(m.body for m in back) == [b"1", b"again"]
    for m in back:
        broker.complete(m)


# -- partial batch failures ------------------------------------------------------------------------
# moto, like SQS, reports per-entry failures in SendMessageBatch's "Failed"
# list. A sender fault is provoked for real (an entry with DelaySeconds over
# 900, which moto refuses per entry); a transient server-side failure cannot
# be provoked, so botocore's own event hooks withhold one entry from the
# request and report it failed with SenderFault=false, as SQS does when it
# fails an entry internally. Requests still go over the socket to moto.
def _hook(broker: SqsBroker, event: str, handler: Any) -> None:
    broker._sqs.meta.events.register(f"{event}.sqs.SendMessageBatch", handler)


def test_sender_fault_entry_raised_others_sent(broker: SqsBroker) -> None:
    def invalid_delay(params: dict[str, Any], **_: Any) -> None:
        params["Entries"][1]["DelaySeconds"] = 901

    _hook(broker, "provide-client-params", invalid_delay)
    messages = [Message(body=f"m{i}".encode(), message_id=f"id-{i}") for i in range(3)]
    with pytest.raises(ValidationError) as exc:
        broker.send(messages)
    assert [e.path for e in exc.value.errors] == ["id-1"]
    assert "id-1" in str(exc.value)
    got = _receive_all(broker, 2)
    assert sorted(m.message_id for m in got) == ["id-0", "id-2"]


class _TransientFailure:
    """Withholds entry "1" from the first ``times`` batch calls and reports it failed.

    A batch of entry "1" alone (a retry) cannot be emptied, so it is diverted
    to ``scratch_url``, a queue nobody reads: for our queue it did not arrive.
    """

    def __init__(self, times: int, scratch_url: str = "") -> None:
        self.times = times
        self.scratch_url = scratch_url
        self.calls = 0

    def before(self, params: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        if self.calls > self.times:
            return
        kept = [e for e in params["Entries"] if e["Id"] != "1"]
        if kept:
            params["Entries"] = kept
        else:
            params["QueueUrl"] = self.scratch_url

    def after(self, parsed: dict[str, Any], **_: Any) -> None:
        if self.calls <= self.times:
            parsed.setdefault("Failed", []).append(
                {"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "x"}
            )


def test_transient_entry_failure_is_retried(broker: SqsBroker) -> None:
    fault = _TransientFailure(times=1)
    _hook(broker, "provide-client-params", fault.before)
    _hook(broker, "after-call", fault.after)
    ids = broker.send([Message(body=f"m{i}".encode(), message_id=f"id-{i}") for i in range(3)])
    assert ids == ["id-0", "id-1", "id-2"]
    assert fault.calls == 2
    got = _receive_all(broker, 3)
    assert sorted(m.message_id for m in got) == ["id-0", "id-1", "id-2"]


def test_transient_entry_failure_exhausting_retries_raises(moto: MotoServer, queue: str) -> None:
    broker = _open(moto, queue, send_retries=1)
    fault = _TransientFailure(times=10, scratch_url=moto.create_queue(f"{queue}-scratch"))
    _hook(broker, "provide-client-params", fault.before)
    _hook(broker, "after-call", fault.after)
    with pytest.raises(Unavailable, match="id-1"):
        broker.send([Message(body=f"m{i}".encode(), message_id=f"id-{i}") for i in range(3)])
    assert fault.calls == 2
    got = _receive_all(broker, 2)
    assert sorted(m.message_id for m in got) == ["id-0", "id-2"]


def test_unreachable_endpoint_is_unavailable(moto: MotoServer) -> None:
    options = moto.options(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(Unavailable):
        SqsBroker.from_url("awssqs://127.0.0.1:9/123456789012/q", **options)


def test_claim_checked_message_dead_letters_with_its_pointer(moto: MotoServer, name: str) -> None:
    moto.create_queue(name, dead_letter=True, max_message_bytes=1024)
    bucket = moto.create_bucket(f"{name}-cc")
    store = S3Store.from_url(moto.store_url(bucket), **moto.options())
    broker = _open(moto, name, claim_check=store)
    body = json.dumps({"Content": "A" * 5000}).encode()
    broker.send(Message(body=body, properties={"kind": "result"}))
    [msg] = _receive_all(broker, 1)
    assert msg.body == body
    broker.dead_letter(msg, "Poison")
    [dead] = broker.receive_dead_letters(wait=1)
    assert dead.body == body and dead.properties == {"kind": "result"}
    broker.complete(dead)


# -- stale receipts --------------------------------------------------------------------------------
def test_a_receipt_past_its_visibility_is_not_used_to_settle(moto: MotoServer, queue: str) -> None:
    first = _open(moto, queue, lock_seconds=1)
    second = _open(moto, queue, lock_seconds=30)
    first.send(b"one holder at a time")
    [stale] = _receive_all(first, 1)
    time.sleep(1.3)
    [held] = _receive_all(second, 1)  # redelivered to another consumer
    # moto (and SQS after a visibility timeout) would accept the old receipt
    # handle: the broker knows the lock ran out and refuses it itself.
    for settle in (
        first.complete,
        first.abandon,
        first.renew_lock,
        lambda m: first.dead_letter(m, "r"),
    ):
        with pytest.raises(LockLost, match="visibility timeout ran out"):
            settle(stale)
    second.complete(held)  # the current holder settles normally
    assert first.receive(max_messages=1, wait=0) == []
