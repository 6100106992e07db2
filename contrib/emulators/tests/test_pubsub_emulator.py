"""The Pub/Sub test server, driven by the real google-cloud-pubsub client over a socket.

One emulator serves the module (``min_ack_deadline=1`` so that deadlines expire in
about a second); each test gets fresh state through ``reset()`` and its own names.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import google.pubsub_v1 as gapic
import grpc
import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.protobuf import field_mask_pb2
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport
from iris_cloud_emulators.pubsub import PubSubEmulator

PROJECT = "projects/iris-test"
PULL_WAIT = 0.3  # how long the emulator holds an empty Pull in these tests
RPC_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def emulator() -> Iterator[PubSubEmulator]:
    with PubSubEmulator(min_ack_deadline=1, pull_wait=PULL_WAIT) as server:
        yield server


@pytest.fixture(scope="module")
def clients(
    emulator: PubSubEmulator,
) -> Iterator[tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]]:
    # The client reads PUBSUB_EMULATOR_HOST when it is built and then opens a
    # plain insecure channel with anonymous credentials, as against gcloud's emulator.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PUBSUB_EMULATOR_HOST", emulator.host_port)
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
    yield publisher, subscriber
    subscriber.close()
    publisher.stop()


@pytest.fixture
def publisher(
    clients: tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient],
    emulator: PubSubEmulator,
) -> pubsub_v1.PublisherClient:
    emulator.reset()
    return clients[0]


@pytest.fixture
def subscriber(
    clients: tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient],
) -> pubsub_v1.SubscriberClient:
    return clients[1]


def topic_path(name: str) -> str:
    return f"{PROJECT}/topics/{name}"


def sub_path(name: str) -> str:
    return f"{PROJECT}/subscriptions/{name}"


def make_pair(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    name: str,
    **subscription: object,
) -> tuple[str, str]:
    topic = publisher.create_topic(name=topic_path(name)).name
    sub = subscriber.create_subscription(
        request={"name": sub_path(name + "-sub"), "topic": topic, **subscription}
    ).name
    return topic, sub


def pull(subscriber: pubsub_v1.SubscriberClient, sub: str, max_messages: int = 10) -> list:
    response = subscriber.pull(
        request={"subscription": sub, "max_messages": max_messages}, timeout=RPC_TIMEOUT
    )
    return list(response.received_messages)


def pull_until(
    subscriber: pubsub_v1.SubscriberClient, sub: str, count: int = 1, within: float = 5.0
) -> list:
    """Pull until ``count`` messages arrived or ``within`` seconds passed."""
    received: list = []
    until = time.monotonic() + within
    while len(received) < count and time.monotonic() < until:
        received += pull(subscriber, sub, count - len(received))
    return received


def wait_for(condition, within: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``within`` seconds passed."""
    until = time.monotonic() + within
    while not condition():
        if time.monotonic() > until:
            return False
        time.sleep(0.02)
    return True


def test_topic_and_subscription_lifecycle(publisher, subscriber):
    topic = publisher.create_topic(
        request={"name": topic_path("orders"), "labels": {"team": "iris"}}
    )
    assert topic.name == topic_path("orders")
    assert publisher.get_topic(topic=topic.name).labels["team"] == "iris"
    relabelled = publisher.update_topic(
        request={
            "topic": {"name": topic.name, "labels": {"team": "grading"}},
            "update_mask": field_mask_pb2.FieldMask(paths=["labels"]),
        }
    )
    assert dict(relabelled.labels) == {"team": "grading"}

    sub = subscriber.create_subscription(name=sub_path("orders-sub"), topic=topic.name)
    assert sub.topic == topic.name
    assert sub.ack_deadline_seconds == 10  # real Pub/Sub's default when none is given
    assert subscriber.get_subscription(subscription=sub.name).name == sub.name

    assert [t.name for t in publisher.list_topics(project=PROJECT)] == [topic.name]
    assert list(publisher.list_topic_subscriptions(topic=topic.name)) == [sub.name]
    assert [s.name for s in subscriber.list_subscriptions(project=PROJECT)] == [sub.name]
    assert list(publisher.list_topics(project="projects/elsewhere")) == []

    # A subscription outlives its topic, pointing at "_deleted-topic_" as on GCP.
    publisher.delete_topic(topic=topic.name)
    with pytest.raises(exceptions.NotFound):
        publisher.get_topic(topic=topic.name)
    assert subscriber.get_subscription(subscription=sub.name).topic == "_deleted-topic_"

    subscriber.delete_subscription(subscription=sub.name)
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=sub.name)


def test_list_pagination(publisher):
    names = sorted(topic_path(f"topic-{i}") for i in range(5))
    for name in names:
        publisher.create_topic(name=name)
    pages = list(publisher.list_topics(request={"project": PROJECT, "page_size": 2}).pages)
    # The pager follows next_page_token across three pages.
    assert [len(page.topics) for page in pages] == [2, 2, 1]
    assert [t.name for page in pages for t in page.topics] == names
    assert pages[-1].next_page_token == ""


def test_errors_match_real_status_codes(publisher, subscriber):
    topic, sub = make_pair(publisher, subscriber, "dupes")
    with pytest.raises(exceptions.AlreadyExists):
        publisher.create_topic(name=topic)
    with pytest.raises(exceptions.AlreadyExists):
        subscriber.create_subscription(name=sub, topic=topic)
    with pytest.raises(exceptions.NotFound):
        subscriber.create_subscription(name=sub_path("orphan"), topic=topic_path("missing"))
    with pytest.raises(exceptions.NotFound):
        publisher.get_topic(topic=topic_path("missing"))
    with pytest.raises(exceptions.NotFound):
        pull(subscriber, sub_path("missing"))
    with pytest.raises(exceptions.NotFound):
        subscriber.acknowledge(subscription=sub_path("missing"), ack_ids=["1-1-1"])
    with pytest.raises(exceptions.InvalidArgument):
        publisher.create_topic(name="topics/no-project")
    with pytest.raises(exceptions.InvalidArgument):
        publisher.create_topic(name=topic_path("goog-reserved"))
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.acknowledge(subscription=sub, ack_ids=["not-an-ack-id"])

    # What the server does not implement is refused, never approximated.
    with pytest.raises(exceptions.MethodNotImplemented):
        subscriber.create_subscription(
            request={"name": sub_path("filtered"), "topic": topic, "filter": "attributes:x"}
        )
    with pytest.raises(exceptions.MethodNotImplemented):
        subscriber.get_snapshot(snapshot=f"{PROJECT}/snapshots/snap")

    # Publishing to an unknown topic fails the future, not the publish() call.
    future = publisher.publish(topic_path("missing"), b"x")
    with pytest.raises(exceptions.NotFound):
        future.result(timeout=RPC_TIMEOUT)


def test_publish_pull_ack(publisher, subscriber, emulator):
    topic, sub = make_pair(publisher, subscriber, "events")
    futures = [
        publisher.publish(topic, f"body-{i}".encode(), kind="event", index=str(i)) for i in range(3)
    ]
    ids = [f.result(timeout=RPC_TIMEOUT) for f in futures]
    assert len(set(ids)) == 3 and all(ids)

    received = pull_until(subscriber, sub, 3)
    by_id = {r.message.message_id: r for r in received}
    assert sorted(by_id) == sorted(ids)
    for i, message_id in enumerate(ids):
        got = by_id[message_id]
        assert got.message.data == f"body-{i}".encode()
        assert dict(got.message.attributes) == {"kind": "event", "index": str(i)}
        assert got.message.publish_time.timestamp() == pytest.approx(time.time(), abs=30)
        assert got.delivery_attempt == 0  # no dead-letter policy: the field stays unset
    assert emulator.num_undelivered_messages(sub) == 3
    subscriber.acknowledge(subscription=sub, ack_ids=[r.ack_id for r in received])
    assert emulator.num_undelivered_messages(sub) == 0

    # Acked messages are gone; an empty Pull is held for a moment, then returns nothing.
    started = time.monotonic()
    assert pull(subscriber, sub) == []
    assert time.monotonic() - started >= PULL_WAIT * 0.8


def test_pull_wakes_up_when_a_message_arrives(publisher, subscriber, emulator):
    topic, sub = make_pair(publisher, subscriber, "wakeup")
    results: list = []
    waiter = threading.Thread(target=lambda: results.extend(pull(subscriber, sub)))
    waiter.start()
    time.sleep(PULL_WAIT / 3)  # the Pull is now held on the server
    publisher.publish(topic, b"late").result(timeout=RPC_TIMEOUT)
    waiter.join(RPC_TIMEOUT)
    assert [r.message.data for r in results] == [b"late"]


def test_every_subscription_gets_its_own_copy(publisher, subscriber):
    topic, first = make_pair(publisher, subscriber, "fanout")
    second = subscriber.create_subscription(name=sub_path("fanout-2"), topic=topic).name
    publisher.publish(topic, b"both").result(timeout=RPC_TIMEOUT)
    for sub in (first, second):
        (got,) = pull_until(subscriber, sub)
        assert got.message.data == b"both"
        subscriber.acknowledge(subscription=sub, ack_ids=[got.ack_id])


def test_nack_redelivers_at_once(publisher, subscriber):
    topic, sub = make_pair(publisher, subscriber, "nack", ack_deadline_seconds=60)
    publisher.publish(topic, b"again").result(timeout=RPC_TIMEOUT)
    (first,) = pull_until(subscriber, sub)
    subscriber.modify_ack_deadline(subscription=sub, ack_ids=[first.ack_id], ack_deadline_seconds=0)
    (second,) = pull(subscriber, sub)  # no waiting for the 60 s deadline
    assert second.message.message_id == first.message.message_id
    assert second.ack_id != first.ack_id
    subscriber.acknowledge(subscription=sub, ack_ids=[second.ack_id])
    assert pull(subscriber, sub) == []


def test_deadline_expiry_redelivers_and_modack_extends(publisher, subscriber):
    topic, sub = make_pair(publisher, subscriber, "expiry", ack_deadline_seconds=1)
    publisher.publish(topic, b"slow").result(timeout=RPC_TIMEOUT)
    (first,) = pull_until(subscriber, sub)
    leased_at = time.monotonic()
    # While the 1 s lease holds, the message is invisible ...
    assert pull(subscriber, sub) == []
    # ... and once it expires it comes back.
    (second,) = pull_until(subscriber, sub, within=5)
    assert time.monotonic() - leased_at >= 0.9
    assert second.message.message_id == first.message.message_id

    # Extending the lease keeps it invisible past the subscription's 1 s deadline.
    subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=[second.ack_id], ack_deadline_seconds=4
    )
    time.sleep(1.3)
    assert pull(subscriber, sub) == []
    subscriber.acknowledge(subscription=sub, ack_ids=[second.ack_id])


def test_ack_deadline_limits(publisher, subscriber):
    topic, sub = make_pair(publisher, subscriber, "limits", ack_deadline_seconds=1)
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.create_subscription(
            request={"name": sub_path("too-long"), "topic": topic, "ack_deadline_seconds": 601}
        )
    publisher.publish(topic, b"x").result(timeout=RPC_TIMEOUT)
    (got,) = pull_until(subscriber, sub)
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=[got.ack_id], ack_deadline_seconds=601
        )


def test_default_min_ack_deadline_is_the_real_ten_seconds():
    with PubSubEmulator(pull_wait=0) as strict, pytest.MonkeyPatch.context() as patch:
        patch.setenv("PUBSUB_EMULATOR_HOST", strict.host_port)
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        try:
            topic = publisher.create_topic(name=topic_path("strict")).name
            with pytest.raises(exceptions.InvalidArgument):
                subscriber.create_subscription(
                    request={"name": sub_path("short"), "topic": topic, "ack_deadline_seconds": 5}
                )
            sub = subscriber.create_subscription(
                request={"name": sub_path("accepted"), "topic": topic, "ack_deadline_seconds": 10}
            )
            assert sub.ack_deadline_seconds == 10
        finally:
            subscriber.close()
            publisher.stop()


def dead_letter_setup(publisher, subscriber, name: str, **extra: object) -> tuple[str, str, str]:
    dlq_topic = publisher.create_topic(name=topic_path(name + "-dlq")).name
    dlq_sub = subscriber.create_subscription(name=sub_path(name + "-dlq-sub"), topic=dlq_topic).name
    topic, sub = make_pair(
        publisher,
        subscriber,
        name,
        dead_letter_policy={"dead_letter_topic": dlq_topic, "max_delivery_attempts": 5},
        **extra,
    )
    return topic, sub, dlq_sub


def test_dead_letter_after_max_nacks(publisher, subscriber):
    topic, sub, dlq_sub = dead_letter_setup(
        publisher, subscriber, "poison", ack_deadline_seconds=60
    )
    original_id = publisher.publish(topic, b"poison", origin="lab").result(timeout=RPC_TIMEOUT)

    for attempt in range(1, 6):
        (got,) = pull_until(subscriber, sub)
        assert got.message.message_id == original_id
        assert got.delivery_attempt == attempt  # set because the policy exists
        subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=[got.ack_id], ack_deadline_seconds=0
        )

    assert pull(subscriber, sub) == []  # five attempts used up: gone from the source
    (dead,) = pull_until(subscriber, dlq_sub)
    assert dead.message.data == b"poison"
    attributes = dict(dead.message.attributes)
    assert attributes.pop("origin") == "lab"
    assert attributes.pop("CloudPubSubDeadLetterSourceDeliveryCount") == "5"
    assert attributes.pop("CloudPubSubDeadLetterSourceSubscription") == "poison-sub"
    assert attributes.pop("CloudPubSubDeadLetterSourceSubscriptionProject") == "iris-test"
    assert attributes.pop("CloudPubSubDeadLetterSourceTopicPublishTime").endswith("Z")
    assert attributes == {}
    assert dead.delivery_attempt == 0  # the DLQ subscription has no policy of its own


def test_dead_letter_after_expiries_without_pulling_the_source(publisher, subscriber):
    topic, sub, dlq_sub = dead_letter_setup(publisher, subscriber, "stuck", ack_deadline_seconds=1)
    publisher.publish(topic, b"stuck").result(timeout=RPC_TIMEOUT)
    for _ in range(4):
        (got,) = pull_until(subscriber, sub)
        subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=[got.ack_id], ack_deadline_seconds=0
        )
    (last,) = pull_until(subscriber, sub)
    assert last.delivery_attempt == 5
    # The fifth lease simply expires; the server forwards the message on its own.
    (dead,) = pull_until(subscriber, dlq_sub, within=5)
    assert dead.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert pull(subscriber, sub) == []


def test_dead_letter_policy_validation(publisher, subscriber):
    topic = publisher.create_topic(name=topic_path("validated")).name
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.create_subscription(
            request={
                "name": sub_path("few"),
                "topic": topic,
                "dead_letter_policy": {"dead_letter_topic": topic, "max_delivery_attempts": 3},
            }
        )
    with pytest.raises(exceptions.NotFound):
        subscriber.create_subscription(
            request={
                "name": sub_path("nowhere"),
                "topic": topic,
                "dead_letter_policy": {"dead_letter_topic": topic_path("missing")},
            }
        )
    sub = subscriber.create_subscription(
        request={
            "name": sub_path("default"),
            "topic": topic,
            "dead_letter_policy": {"dead_letter_topic": topic},
        }
    )
    assert sub.dead_letter_policy.max_delivery_attempts == 5  # 0 means the default of 5


def test_update_subscription(publisher, subscriber):
    topic, sub = make_pair(publisher, subscriber, "updated")
    dlq = publisher.create_topic(name=topic_path("updated-dlq")).name
    updated = subscriber.update_subscription(
        request={
            "subscription": {
                "name": sub,
                "ack_deadline_seconds": 30,
                "dead_letter_policy": {"dead_letter_topic": dlq, "max_delivery_attempts": 7},
            },
            "update_mask": field_mask_pb2.FieldMask(
                paths=["ack_deadline_seconds", "dead_letter_policy"]
            ),
        }
    )
    assert updated.ack_deadline_seconds == 30
    assert updated.dead_letter_policy.max_delivery_attempts == 7
    assert subscriber.get_subscription(subscription=sub).ack_deadline_seconds == 30

    publisher.publish(topic, b"x").result(timeout=RPC_TIMEOUT)
    (got,) = pull_until(subscriber, sub)
    assert got.delivery_attempt == 1  # the policy added by the update applies

    with pytest.raises(exceptions.InvalidArgument):  # the topic cannot be changed
        subscriber.update_subscription(
            request={
                "subscription": {"name": sub, "topic": dlq},
                "update_mask": field_mask_pb2.FieldMask(paths=["topic"]),
            }
        )


def test_message_over_ten_megabytes_is_invalid(publisher, subscriber, emulator):
    topic, _ = make_pair(publisher, subscriber, "huge")
    # The client library refuses this itself, so go through the generated (GAPIC)
    # client, which sends what it is given, to see the server's answer.
    raw = gapic.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(emulator.host_port))
    )
    with pytest.raises(exceptions.InvalidArgument):
        raw.publish(
            topic=topic, messages=[{"data": b"x" * (10 * 1000 * 1000 + 1)}], timeout=RPC_TIMEOUT
        )
    with pytest.raises(exceptions.InvalidArgument):  # neither data nor attributes
        raw.publish(topic=topic, messages=[{"data": b""}], timeout=RPC_TIMEOUT)


def test_ordering_key_delivers_in_order_one_batch_at_a_time(emulator, subscriber):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PUBSUB_EMULATOR_HOST", emulator.host_port)
        ordered = pubsub_v1.PublisherClient(
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        )
    emulator.reset()
    try:
        topic, sub = make_pair(ordered, subscriber, "ordered", enable_message_ordering=True)
        for body in (b"a", b"b", b"c"):
            ordered.publish(topic, body, ordering_key="patient-1").result(timeout=RPC_TIMEOUT)
        ordered.publish(topic, b"z", ordering_key="patient-2").result(timeout=RPC_TIMEOUT)

        batch = pull(subscriber, sub, max_messages=2)
        assert [m.message.data for m in batch] == [b"a", b"b"]
        # "c" waits behind the outstanding "a" and "b"; the other key is free.
        (other,) = pull(subscriber, sub)
        assert other.message.data == b"z"
        # A nack of "a" sends "a" and "b" back, still before "c".
        subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=[batch[0].ack_id], ack_deadline_seconds=0
        )
        again = pull(subscriber, sub)
        assert [m.message.data for m in again] == [b"a", b"b", b"c"]
        subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in [*again, other]])
    finally:
        ordered.stop()


def test_streaming_subscribe_receives_and_acks(publisher, subscriber, emulator):
    topic, sub = make_pair(publisher, subscriber, "stream")
    received: queue.Queue = queue.Queue()

    def callback(message) -> None:
        received.put((message.data, dict(message.attributes)))
        message.ack()

    future = subscriber.subscribe(sub, callback)
    try:
        for i in range(5):
            publisher.publish(topic, f"m{i}".encode(), n=str(i)).result(timeout=RPC_TIMEOUT)
        got = sorted(received.get(timeout=RPC_TIMEOUT) for _ in range(5))
    finally:
        future.cancel()
        future.result(timeout=RPC_TIMEOUT)
    assert got == [(f"m{i}".encode(), {"n": str(i)}) for i in range(5)]
    # The acks reached the server (the client sends them in the background).
    assert wait_for(lambda: emulator.num_undelivered_messages(sub) == 0)


def test_streaming_nack_is_redelivered(publisher, subscriber):
    topic, sub = make_pair(publisher, subscriber, "stream-nack")
    attempts: queue.Queue = queue.Queue()

    def callback(message) -> None:
        attempts.put(message.message_id)
        if attempts.qsize() == 1:
            message.nack()
        else:
            message.ack()

    future = subscriber.subscribe(sub, callback)
    try:
        message_id = publisher.publish(topic, b"retry").result(timeout=RPC_TIMEOUT)
        assert attempts.get(timeout=RPC_TIMEOUT) == message_id
        assert attempts.get(timeout=RPC_TIMEOUT) == message_id
    finally:
        future.cancel()
        future.result(timeout=RPC_TIMEOUT)


class RawStream:
    """The bare StreamingPull RPC through the generated client, one request at a time.

    google-cloud-pubsub's ``subscribe()`` sends acks as unary calls and does its
    own flow control; other clients rely on the stream and the server for both.
    """

    def __init__(
        self, emulator: PubSubEmulator, channel: grpc.Channel | None = None, **first: object
    ) -> None:
        self._outgoing: queue.Queue = queue.Queue()
        self._outgoing.put(first)
        channel = channel or grpc.insecure_channel(emulator.host_port)
        client = gapic.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
        self._responses = client.streaming_pull(requests=self._requests(), timeout=RPC_TIMEOUT)

    def _requests(self):
        while (item := self._outgoing.get()) is not None:
            yield pubsub_v1.types.StreamingPullRequest(item)

    def send(self, **request: object) -> None:
        self._outgoing.put(request)

    def receive(self) -> list:
        return list(next(self._responses).received_messages)

    def close(self) -> None:
        self._outgoing.put(None)
        self._responses.cancel()


def test_streaming_pull_honours_acks_and_modacks_on_the_stream(publisher, subscriber, emulator):
    topic, sub = make_pair(publisher, subscriber, "raw-stream", ack_deadline_seconds=60)
    for body in (b"keep", b"retry"):
        publisher.publish(topic, body).result(timeout=RPC_TIMEOUT)
    stream = RawStream(emulator, subscription=sub, stream_ack_deadline_seconds=60)
    try:
        by_body = {m.message.data: m for m in stream.receive()}
        assert set(by_body) == {b"keep", b"retry"}
        stream.send(
            ack_ids=[by_body[b"keep"].ack_id],
            modify_deadline_ack_ids=[by_body[b"retry"].ack_id],
            modify_deadline_seconds=[0],
        )
        (redelivered,) = stream.receive()
        assert redelivered.message.data == b"retry"
    finally:
        stream.close()
    # "keep" was acked on the stream; "retry" is still leased to the closed stream.
    assert emulator.num_undelivered_messages(sub) == 1
    assert pull(subscriber, sub) == []
    subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=[redelivered.ack_id], ack_deadline_seconds=0
    )
    assert [m.message.data for m in pull(subscriber, sub)] == [b"retry"]


def test_streaming_pull_flow_control(publisher, subscriber, emulator):
    topic, sub = make_pair(publisher, subscriber, "flow", ack_deadline_seconds=60)
    for i in range(5):
        publisher.publish(topic, f"m{i}".encode()).result(timeout=RPC_TIMEOUT)
    stream = RawStream(
        emulator, subscription=sub, stream_ack_deadline_seconds=60, max_outstanding_messages=2
    )
    try:
        first = stream.receive()
        assert [m.message.data for m in first] == [b"m0", b"m1"]  # two outstanding at most
        stream.send(ack_ids=[first[0].ack_id])
        (second,) = stream.receive()  # one slot freed, one more message
        assert second.message.data == b"m2"
    finally:
        stream.close()
    assert emulator.num_undelivered_messages(sub) == 4


def test_many_open_streams_do_not_starve_other_calls(publisher, subscriber, emulator):
    # One Node process on 8 subscriptions opens 40 streams (5 each); a fixed
    # pool of 32 workers used to leave publishing hanging.
    _, idle = make_pair(publisher, subscriber, "idle")
    topic, busy = make_pair(publisher, subscriber, "busy", ack_deadline_seconds=60)
    channel = grpc.insecure_channel(emulator.host_port)
    streams = [
        RawStream(emulator, channel, subscription=idle, stream_ack_deadline_seconds=60)
        for _ in range(39)
    ]
    try:
        served = RawStream(emulator, channel, subscription=busy, stream_ack_deadline_seconds=60)
        streams.append(served)
        publisher.publish(topic, b"through").result(timeout=RPC_TIMEOUT)
        assert [m.message.data for m in served.receive()] == [b"through"]
    finally:
        for stream in streams:
            stream.close()
        channel.close()


def test_calls_beyond_the_concurrency_cap_fail_at_once():
    with PubSubEmulator(max_concurrent_rpcs=3) as small:
        channel = grpc.insecure_channel(small.host_port)
        client = gapic.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
        publisher = gapic.PublisherClient(
            transport=PublisherGrpcTransport(channel=grpc.insecure_channel(small.host_port))
        )
        topic = publisher.create_topic(name=topic_path("capped")).name
        sub = client.create_subscription(request={"name": sub_path("capped"), "topic": topic}).name
        streams = [
            RawStream(small, channel, subscription=sub, stream_ack_deadline_seconds=10)
            for _ in range(3)
        ]
        refused: list[Exception] = []

        def exhausted() -> bool:
            try:
                client.get_subscription(subscription=sub, retry=None, timeout=2)
            except exceptions.ResourceExhausted as error:
                refused.append(error)
                return True
            return False

        try:
            # Once the three streams hold every slot, the next call is refused
            # at once rather than left waiting.
            assert wait_for(exhausted, within=RPC_TIMEOUT)
        finally:
            for stream in streams:
                stream.close()
        assert wait_for(lambda: not exhausted(), within=RPC_TIMEOUT)
        channel.close()


def test_subscribe_to_a_missing_subscription_fails(subscriber):
    future = subscriber.subscribe(sub_path("missing"), lambda message: message.ack())
    with pytest.raises(exceptions.NotFound):
        future.result(timeout=RPC_TIMEOUT)


def test_deleting_the_subscription_ends_the_stream(publisher, subscriber):
    topic, sub = make_pair(publisher, subscriber, "doomed")
    received: queue.Queue = queue.Queue()
    future = subscriber.subscribe(sub, lambda message: (received.put(message.data), message.ack()))
    publisher.publish(topic, b"before").result(timeout=RPC_TIMEOUT)
    assert received.get(timeout=RPC_TIMEOUT) == b"before"  # the stream is open
    subscriber.delete_subscription(subscription=sub)
    with pytest.raises(exceptions.NotFound):
        future.result(timeout=RPC_TIMEOUT)


def test_retry_policy_delays_redelivery(publisher, subscriber):
    topic, sub = make_pair(
        publisher,
        subscriber,
        "backoff",
        ack_deadline_seconds=60,
        retry_policy={"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 5}},
    )
    publisher.publish(topic, b"later").result(timeout=RPC_TIMEOUT)
    (first,) = pull_until(subscriber, sub)
    nacked_at = time.monotonic()
    subscriber.modify_ack_deadline(subscription=sub, ack_ids=[first.ack_id], ack_deadline_seconds=0)
    assert pull(subscriber, sub) == []  # backing off, unlike a nack without a policy
    (second,) = pull_until(subscriber, sub, within=5)
    assert time.monotonic() - nacked_at >= 0.9
    assert second.message.message_id == first.message.message_id


def test_cli_serves_until_sigterm():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iris_cloud_emulators.pubsub",
            "--port",
            "0",
            "--min-ack-deadline",
            "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("PUBSUB_EMULATOR_HOST=127.0.0.1:")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PUBSUB_EMULATOR_HOST", line.split("=", 1)[1])
            publisher = pubsub_v1.PublisherClient()
        try:
            assert publisher.create_topic(name=topic_path("cli")).name == topic_path("cli")
        finally:
            publisher.stop()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=RPC_TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


def test_port_in_use_is_an_error(emulator):
    with pytest.raises(OSError):
        PubSubEmulator(port=emulator.port).start()
