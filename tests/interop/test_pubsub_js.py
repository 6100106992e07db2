"""@google-cloud/pubsub (Node) <-> PubSubBroker, on the Pub/Sub emulator.

One side is the Node client as an application uses it (streaming pull with
its defaults: 5 streams per subscription, lease management, batched acks),
the other our broker.
"""

from __future__ import annotations

from typing import Any

from iris_cloud.ports import Message
from iris_cloud_gcp import PubSubBroker
from iris_cloud_gcp.testing import DEFAULT_PROJECT

from .helpers import run_node, unique


def node(pubsub: Any, *steps: dict[str, Any]) -> list[dict[str, Any]]:
    """Run ``steps`` with the Node client against the emulator."""
    plan = {"projectId": DEFAULT_PROJECT, "steps": list(steps)}
    out = run_node("pubsub.mjs", plan, env={"PUBSUB_EMULATOR_HOST": pubsub.host_port})
    results: list[dict[str, Any]] = out["results"]
    return results


def ordered_pair(pubsub_admin: Any, name: str) -> tuple[str, str]:
    """A topic and a subscription with message ordering enabled."""
    topic = pubsub_admin.topic(name)
    sub = f"projects/{DEFAULT_PROJECT}/subscriptions/{name}-sub"
    pubsub_admin.subscriber.create_subscription(
        request={"name": sub, "topic": topic, "enable_message_ordering": True}
    )
    return topic, sub


def receiver(pubsub: Any, sub: str) -> PubSubBroker:
    return PubSubBroker.from_url(f"gcppubsub://{sub}", emulator_host=pubsub.host_port)


def receive_all(broker: PubSubBroker, count: int) -> list[Message]:
    got: list[Message] = []
    for _ in range(20):
        got += broker.receive(max_messages=count - len(got), wait=1)
        if len(got) >= count:
            break
    return got


def test_node_publishes_attributes_and_ordering_keys_and_the_broker_reads_them(
    pubsub: Any, pubsub_admin: Any
) -> None:
    topic, sub = ordered_pair(pubsub_admin, unique("js-attrs"))
    attributes = {"ResultObjectType": "OrderResult", "site": "s1"}
    [published] = node(
        pubsub,
        {
            "op": "publish",
            "topic": topic,
            "ordering": True,
            "messages": [
                {"text": f"r{i}", "attributes": attributes, "orderingKey": "patient-1"}
                for i in range(3)
            ]
            + [{"base64": "AP8=", "attributes": {"site": "s2"}}],
        },
    )
    assert len(published["ids"]) == 4
    with receiver(pubsub, sub) as broker:
        got = receive_all(broker, 4)
        keyed = [m for m in got if m.properties.get("ordering_key") == "patient-1"]
        assert [m.body for m in keyed] == [b"r0", b"r1", b"r2"]  # in publish order
        assert all(m.properties == {**attributes, "ordering_key": "patient-1"} for m in keyed)
        [plain] = [m for m in got if m not in keyed]
        assert (plain.body, plain.properties) == (b"\x00\xff", {"site": "s2"})
        assert {m.message_id for m in got} == set(published["ids"])
        for m in got:
            broker.complete(m)


def test_the_broker_publishes_and_node_reads_attributes_and_ordering_key(
    pubsub: Any, pubsub_admin: Any
) -> None:
    topic, sub = ordered_pair(pubsub_admin, unique("py-attrs"))
    with PubSubBroker.from_url(f"gcppubsub://{topic}", emulator_host=pubsub.host_port) as broker:
        broker.send(
            Message(
                body=b"result",
                message_id="py-1",
                subject="OrderResult",
                properties={"ordering_key": "patient-2", "attempt": 2},
            )
        )
    [read] = node(pubsub, {"op": "subscribe", "subscriptions": [sub], "expect": 1, "action": "ack"})
    [m] = read["received"]
    assert m["text"] == "result"
    assert m["orderingKey"] == "patient-2"
    assert m["attributes"]["attempt"] == "2"
    assert m["attributes"]["iris-message-id"] == "py-1"
    assert m["attributes"]["iris-subject"] == "OrderResult"
    assert pubsub.num_undelivered_messages(sub) == 0


def test_node_streams_on_many_subscriptions_from_one_process(
    pubsub: Any, pubsub_admin: Any
) -> None:
    # 8 subscriptions x 5 streams each = 40 open streams in one Node process.
    pairs = []
    for _ in range(8):
        topic = pubsub_admin.topic(unique("many"))
        pairs.append((topic, pubsub_admin.subscription(unique("many-sub"), topic)))
    for topic, _ in pairs:
        with PubSubBroker.from_url(
            f"gcppubsub://{topic}", emulator_host=pubsub.host_port
        ) as broker:
            broker.send([Message(body=f"{topic}:{i}".encode()) for i in range(3)])
    [read] = node(
        pubsub,
        {
            "op": "subscribe",
            "subscriptions": [sub for _, sub in pairs],
            "expect": 24,
            "action": "ack",
        },
    )
    assert "error" not in read, read
    by_sub = {
        sub: sorted(m["text"] for m in read["received"] if m["subscription"] == sub)
        for _, sub in pairs
    }
    for topic, sub in pairs:
        assert by_sub[sub] == [f"{topic}:{i}" for i in range(3)]
        assert pubsub.num_undelivered_messages(sub) == 0


def test_node_nack_is_redelivered(pubsub: Any, pubsub_admin: Any) -> None:
    topic = pubsub_admin.topic(unique("nack"))
    sub = pubsub_admin.subscription(unique("nack-sub"), topic)
    with PubSubBroker.from_url(f"gcppubsub://{topic}", emulator_host=pubsub.host_port) as broker:
        [sent] = broker.send(Message(body=b"again"))
    [read] = node(
        pubsub, {"op": "subscribe", "subscriptions": [sub], "expect": 2, "action": "nackFirst"}
    )
    deliveries = read["received"]
    assert [m["text"] for m in deliveries] == ["again", "again"]
    assert len({m["id"] for m in deliveries}) == 1
    assert deliveries[0]["attributes"]["iris-message-id"] == sent
    assert pubsub.num_undelivered_messages(sub) == 0


def test_dead_letter_policy_counts_node_deliveries_and_the_broker_reads_the_dead_letter(
    pubsub: Any, pubsub_admin: Any
) -> None:
    topic, sub = pubsub_admin.queue(unique("dlq"), max_delivery_attempts=5)
    with PubSubBroker.from_url(f"gcppubsub://{topic}", emulator_host=pubsub.host_port) as broker:
        broker.send(Message(body=b"poison", message_id="p-1"))
    [read] = node(
        pubsub, {"op": "subscribe", "subscriptions": [sub], "expect": 5, "action": "nackAll"}
    )
    assert [m["deliveryAttempt"] for m in read["received"]] == [1, 2, 3, 4, 5]
    with receiver(pubsub, sub) as broker:
        [dead] = broker.receive_dead_letters(max_messages=1, wait=5)
        assert (dead.body, dead.message_id) == (b"poison", "p-1")
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        broker.complete(dead)
    assert pubsub.num_undelivered_messages(sub) == 0


def test_node_extends_the_lease_of_a_message_it_holds_past_the_deadline(
    pubsub: Any, pubsub_admin: Any
) -> None:
    topic = pubsub_admin.topic(unique("lease"))
    sub = pubsub_admin.subscription(unique("lease-sub"), topic, ack_deadline=2)
    with PubSubBroker.from_url(f"gcppubsub://{topic}", emulator_host=pubsub.host_port) as broker:
        broker.send(Message(body=b"slow work"))
    # Deadlines of at most 2 s, the message held 5 s: only the client's
    # modifyAckDeadline calls keep it from coming back meanwhile.
    [read] = node(
        pubsub,
        {
            "op": "subscribe",
            "subscriptions": [sub],
            "expect": 2,
            "timeoutMs": 7000,
            "action": "ack",
            "holdMs": 5000,
            "maxAckDeadlineSeconds": 2,
        },
    )
    assert "error" not in read, read
    assert [m["text"] for m in read["received"]] == ["slow work"]
    assert pubsub.num_undelivered_messages(sub) == 0
