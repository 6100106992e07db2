"""gcppubsub:// beyond the contract: URLs, pairing, wire format, failures, estimates."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import iris_cloud
import pytest
from click.testing import CliRunner
from iris_cloud.aio.stepped import AsyncSteppedBroker
from iris_cloud.cli import main
from iris_cloud.errors import ConfigurationError, MessageTooLarge, NotFound
from iris_cloud.ports import Message
from iris_cloud.stepped import SteppedBroker
from iris_cloud_gcp._pubsub import PubSubCommon
from iris_cloud_gcp.broker import MAX_MESSAGE_BYTES, PubSubBroker, decode_message
from iris_cloud_gcp.testing import DEFAULT_PROJECT, GcpServers, PubSubAdmin, workflow_profiles


@pytest.fixture
def admin(pubsub_host: str) -> Iterator[PubSubAdmin]:
    a = PubSubAdmin(pubsub_host)
    yield a
    a.close()


def _name(prefix: str) -> str:
    return f"{prefix}-{os.urandom(4).hex()}"


def _open(url: str, host: str, **options: object) -> PubSubBroker:
    return PubSubBroker.from_url(url, emulator_host=host, **options)


# -- URLs and pairing ---------------------------------------------------------------


def test_open_broker_through_plugin(admin: PubSubAdmin, pubsub_host: str) -> None:
    topic, sub = admin.queue(_name("plug"), ack_deadline=5)
    with iris_cloud.open_broker(f"gcppubsub://{topic}", emulator_host=pubsub_host) as sender:
        assert isinstance(sender, PubSubBroker)
        sender.send(Message(body=b"hi", subject="Hello"))
    with iris_cloud.open_broker(f"gcppubsub://{sub}", emulator_host=pubsub_host) as receiver:
        got = receiver.receive(max_messages=1, wait=5)
        assert [(m.body, m.subject) for m in got] == [(b"hi", "Hello")]
        receiver.complete(got[0])


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("gcppubsub://orders", {}, "projects/P/topics/T"),
        ("gcppubsub://projects/p/queues/q", {}, "projects/P/topics/T"),
        ("gcppubsub://projects//topics/t", {}, "projects/P/topics/T"),
        ("gcppubsub://projects/p/topics/t/extra", {}, "projects/P/topics/T"),
        ("gs://projects/p/topics/t", {}, "gcppubsub://"),
        ("gcppubsub://projects/p/topics/t", {"region": "x"}, "unknown gcppubsub:// option"),
        ("gcppubsub://projects/p/topics/t?credentials_file=/k", {}, "keyword options"),
        ("gcppubsub://projects/p/topics/t?topic=u", {}, r"takes \?subscription="),
        ("gcppubsub://projects/p/topics/t", {"emulator_host": "http://h:1"}, "without a scheme"),
        ("gcppubsub://projects/p/topics/t", {"timeout": "soon"}, "number of seconds"),
        ("gcppubsub://projects/p/topics/t?subscription=a/b", {}, "subscription name"),
    ],
)
def test_bad_urls_and_options(url: str, options: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        PubSubBroker.from_url(url, **{"emulator_host": "127.0.0.1:1", **options})


def test_topic_broker_only_sends_subscription_broker_only_receives(
    admin: PubSubAdmin, pubsub_host: str
) -> None:
    topic, sub = admin.queue(_name("split"), ack_deadline=5)
    with _open(f"gcppubsub://{topic}", pubsub_host) as sender:
        assert sender.send(b"x")
        with pytest.raises(ConfigurationError, match="opened on a topic and cannot receive"):
            sender.receive()
        with pytest.raises(ConfigurationError, match="no dead-letter subscription"):
            sender.receive_dead_letters()
    with _open(f"gcppubsub://{sub}", pubsub_host) as receiver:
        with pytest.raises(ConfigurationError, match="opened on a subscription and cannot send"):
            receiver.send(b"y")
        msg = receiver.receive(max_messages=1, wait=5)[0]
        receiver.complete(msg)
        # The subscription's dead-letter policy was read: exact counts, Pub/Sub's DLQ.
        assert receiver.capabilities.native_dead_letter
        assert receiver.capabilities.delivery_count_exact
        assert receiver.capabilities.max_delivery_count == 5
        assert msg.delivery_count == 1


def test_topic_url_paired_with_subscription(admin: PubSubAdmin, pubsub_host: str) -> None:
    topic, sub = admin.queue(_name("pair"), ack_deadline=5)
    short = sub.rsplit("/", 1)[1]
    with _open(f"gcppubsub://{topic}?subscription={short}", pubsub_host) as both:
        both.send(b"round")
        msg = both.receive(max_messages=1, wait=5)[0]
        assert msg.body == b"round"
        both.complete(msg)


def test_missing_subscription_is_not_found(pubsub_host: str) -> None:
    with pytest.raises(NotFound, match="nowhere"):
        _open(f"gcppubsub://projects/{DEFAULT_PROJECT}/subscriptions/nowhere", pubsub_host)


def test_pubsub_emulator_host_env_is_honoured(
    admin: PubSubAdmin, pubsub_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, sub = admin.queue(_name("env"), ack_deadline=5)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_host)
    with PubSubBroker.from_url(f"gcppubsub://{sub}?topic={topic.rsplit('/', 1)[1]}") as b:
        assert pubsub_host in repr(b) and "anonymous" in repr(b)
        b.send(b"env")
        msg = b.receive(max_messages=1, wait=5)[0]
        b.complete(msg)


def test_emulator_host_option_leaves_environment_alone(
    admin: PubSubAdmin, pubsub_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    topic, _ = admin.queue(_name("noenv"), ack_deadline=5)
    with _open(f"gcppubsub://{topic}", pubsub_host) as b:
        b.send(b"x")
    assert "PUBSUB_EMULATOR_HOST" not in os.environ


def test_closed_broker_refuses_calls(admin: PubSubAdmin, pubsub_host: str) -> None:
    topic, _ = admin.queue(_name("closed"), ack_deadline=5)
    b = _open(f"gcppubsub://{topic}", pubsub_host)
    b.send(b"x")
    b.close()
    b.close()
    with pytest.raises(ConfigurationError, match="closed"):
        b.send(b"y")


# -- wire format ----------------------------------------------------------------------


def test_reserved_property_names_round_trip(admin: PubSubAdmin, pubsub_host: str) -> None:
    topic, sub = admin.queue(_name("names"), ack_deadline=5)
    props: dict[str, str | int | float | bool] = {
        "timeout": 30,
        "topic": "orders",
        "data": "d",
        "retry": True,
        "googKey": "g",
        "iris-message-id": "not ours",
        "ordering_key": "site-1",
        "ratio": 0.1,
    }
    with _open(f"gcppubsub://{sub}?topic={topic.rsplit('/', 1)[1]}", pubsub_host) as b:
        b.send(Message(body=b"x", properties=props, message_id="mine"))
        msg = b.receive(max_messages=1, wait=5)[0]
        assert msg.message_id == "mine"
        assert msg.properties == props
        # The ordering_key property is Pub/Sub's ordering key as well.
        assert msg.raw.attributes["iris-attr-ordering_key"] == "site-1"
        b.complete(msg)
    raw = admin.subscriber.pull(subscription=sub, max_messages=1, timeout=1)
    assert list(raw.received_messages) == []


def test_ordering_key_option_reaches_the_wire(admin: PubSubAdmin, pubsub_host: str) -> None:
    topic = admin.topic(_name("ordered"))
    sub = admin.subscription(_name("ordered-sub"), topic)
    with _open(f"gcppubsub://{topic}", pubsub_host, ordering_key="patient-42") as b:
        b.send([b"1", b"2", b"3"])
    pulled = admin.subscriber.pull(subscription=sub, max_messages=10, timeout=5)
    assert [m.message.ordering_key for m in pulled.received_messages] == ["patient-42"] * 3
    assert [m.message.data for m in pulled.received_messages] == [b"1", b"2", b"3"]


def test_received_ordering_key_is_a_property(admin: PubSubAdmin, pubsub_host: str) -> None:
    topic, sub = admin.queue(_name("ordered-in"), ack_deadline=5)
    name = topic.rsplit("/", 1)[1]
    # Set by the option, so no attribute carries it: only the message's key does.
    with _open(f"gcppubsub://{sub}?topic={name}", pubsub_host, ordering_key="site-9") as b:
        b.send([Message(body=b"keyed"), Message(body=b"own", properties={"ordering_key": "k2"})])
        got = sorted(b.receive(max_messages=2, wait=5), key=lambda m: m.body)
        assert [(m.body, m.properties) for m in got] == [
            (b"keyed", {"ordering_key": "site-9"}),
            (b"own", {"ordering_key": "k2"}),
        ]
        for m in got:
            b.complete(m)
    with _open(f"gcppubsub://{sub}?topic={name}", pubsub_host) as b:
        b.send(b"unkeyed")
        (plain,) = b.receive(max_messages=1, wait=5)
        assert plain.properties == {}
        b.complete(plain)


def test_messages_from_other_publishers(admin: PubSubAdmin, pubsub_host: str) -> None:
    topic, sub = admin.queue(_name("foreign"), ack_deadline=5)
    # A publisher that knows nothing of iris-cloud: plain data and attributes.
    pubsub_id = admin.publisher.publish(topic, b'{"a":1}', origin="cron").result(timeout=10)
    with _open(f"gcppubsub://{sub}", pubsub_host) as b:
        msg = b.receive(max_messages=1, wait=5)[0]
        assert msg.message_id == pubsub_id
        assert msg.properties == {"origin": "cron"}
        assert msg.content_type is None and msg.subject is None
        assert msg.enqueued_at is not None and msg.enqueued_at.tzinfo is not None
        b.complete(msg)


def test_decode_tolerates_broken_type_annotations() -> None:
    msg = decode_message(b"", {"iris-types": "{not json", "n": "1", "m": "x"}, "7", None)
    assert msg.properties == {"n": "1", "m": "x"} and msg.message_id == "7"
    msg = decode_message(b"", {"iris-types": '{"n":"int"}', "n": "one"}, "8", None)
    assert msg.properties == {"n": "one"}


@pytest.mark.parametrize("port", [SteppedBroker, AsyncSteppedBroker])
def test_a_broker_without_the_client_hooks_cannot_be_made(port: type) -> None:
    # Refused when made, not at the first send or receive that would call a hook.
    class Half(PubSubCommon, port):
        pass

    with pytest.raises(TypeError, match="abstract method") as refused:
        Half()
    for hook in ("_get_publisher", "_get_subscriber", "_publish", "_sleep"):
        assert re.search(rf"\b{hook}\b", str(refused.value)), hook


def test_attribute_over_pubsub_limit_is_refused_before_sending(
    admin: PubSubAdmin, pubsub_host: str
) -> None:
    topic, sub = admin.queue(_name("long"), ack_deadline=5)
    with _open(f"gcppubsub://{sub}?topic={topic.rsplit('/', 1)[1]}", pubsub_host) as b:
        with pytest.raises(ConfigurationError, match=r"'note'.*1024-byte"):
            b.send([Message(body=b"ok"), Message(body=b"x", properties={"note": "n" * 1025})])
        assert b.receive(max_messages=5, wait=0.5) == []


def test_wide_unicode_properties_over_request_limit(admin: PubSubAdmin, pubsub_host: str) -> None:
    # Message.size counts characters; Pub/Sub counts UTF-8 bytes. The client
    # library's own check catches the difference and we report it as ours.
    topic, _ = admin.queue(_name("wide"), ack_deadline=5)
    props = {f"p{i:02d}": "眼" * 300 for i in range(90)}
    body = b"x" * (MAX_MESSAGE_BYTES - 30_000)
    msg = Message(body=body, properties=props)  # type: ignore[arg-type]
    assert msg.size <= MAX_MESSAGE_BYTES
    with _open(f"gcppubsub://{topic}", pubsub_host) as b, pytest.raises(MessageTooLarge):
        b.send(msg)


# -- failures -------------------------------------------------------------------------


def test_publish_failures_are_collected_per_message(pubsub_host: str) -> None:
    url = f"gcppubsub://projects/{DEFAULT_PROJECT}/topics/{_name('absent')}"
    with _open(url, pubsub_host, timeout=5) as b, pytest.raises(NotFound) as exc:
        b.send([Message(body=b"a", message_id="m1"), Message(body=b"b", message_id="m2")])
    assert "2 of 2 message(s) failed" in str(exc.value)
    assert "m1" in str(exc.value) and "m2" in str(exc.value)
    failures = exc.value.failures  # type: ignore[attr-defined]
    assert [mid for mid, _ in failures] == ["m1", "m2"]
    assert all(isinstance(err, NotFound) for _, err in failures)


# -- subscriptions without a dead-letter policy ------------------------------------------


def test_without_dead_letter_policy(admin: PubSubAdmin, pubsub_host: str) -> None:
    topic = admin.topic(_name("plain"))
    sub = admin.subscription(_name("plain-sub"), topic, ack_deadline=3)
    dead = admin.topic(_name("plain-dead"))
    dead_sub = admin.subscription(_name("plain-dead-sub"), dead)
    url = f"gcppubsub://{sub}?topic={topic.rsplit('/', 1)[1]}"
    with _open(url, pubsub_host) as b:
        caps = b.capabilities
        assert not caps.native_dead_letter and not caps.delivery_count_exact
        assert caps.max_delivery_count is None
        b.send(b"again")
        first = b.receive(max_messages=1, wait=5)[0]
        # The ack deadline was read from the subscription (3 s).
        left = (first.locked_until - datetime.now(UTC)).total_seconds()  # type: ignore[operator]
        assert 2 < left <= 3
        b.abandon(first)
        second = b.receive(max_messages=1, wait=5)[0]
        # Estimated in-process (no delivery_attempt without a dead-letter policy).
        assert (first.delivery_count, second.delivery_count) == (1, 2)
        with pytest.raises(ConfigurationError, match="dead_letter_topic"):
            b.dead_letter(second, "Poison", "unparseable")
        b.abandon(second)
    with _open(url, pubsub_host, dead_letter_topic=dead, dead_letter_subscription=dead_sub) as b:
        msg = b.receive(max_messages=1, wait=5)[0]
        b.dead_letter(msg, "Poison", "d" * 2000)
        dead_msgs = b.receive_dead_letters(max_messages=1, wait=5)
        assert [d.body for d in dead_msgs] == [b"again"]
        assert dead_msgs[0].dead_letter_reason == "Poison"
        description = dead_msgs[0].dead_letter_description or ""
        assert description.endswith("...") and len(description.encode()) <= 1024
        b.complete(dead_msgs[0])
        assert b.receive(max_messages=1, wait=0.5) == []


def test_lock_seconds_option_overrides(admin: PubSubAdmin, pubsub_host: str) -> None:
    topic, sub = admin.queue(_name("lock"), ack_deadline=2)
    url = f"gcppubsub://{sub}?topic={topic.rsplit('/', 1)[1]}&lock_seconds=4.2"
    with _open(url, pubsub_host) as b:
        b.send(b"x")
        msg = b.receive(max_messages=1, wait=5)[0]
        renewed = b.renew_lock(msg)  # sets the ack deadline to 5 s from now
        assert 4 < (renewed - datetime.now(UTC)).total_seconds() <= 5
        time.sleep(2.5)  # past the subscription's own 2 s deadline
        assert b.receive(max_messages=1, wait=0) == []
        b.complete(msg)


def test_policy_dead_letters_carry_a_reason(admin: PubSubAdmin, pubsub_host: str) -> None:
    topic, sub = admin.queue(_name("policy"), ack_deadline=2, max_delivery_attempts=5)
    with _open(f"gcppubsub://{sub}?topic={topic.rsplit('/', 1)[1]}", pubsub_host) as b:
        b.send(b"fails")
        for attempt in range(1, 6):
            msg = b.receive(max_messages=1, wait=5)[0]
            assert msg.delivery_count == attempt
            b.abandon(msg)
        dead = b.receive_dead_letters(max_messages=1, wait=5)
        assert dead[0].dead_letter_reason == "MaxDeliveryCountExceeded"
        assert "5 times" in (dead[0].dead_letter_description or "")
        b.complete(dead[0])


# -- workflow profiles ------------------------------------------------------------------


def test_workflow_profiles_mirror_each_other(servers: GcpServers) -> None:
    integrator, platform = workflow_profiles(servers)
    roles = {"orders", "events", "results", "gradings", "images", "results_store", "claim_check"}
    assert set(integrator) == set(platform) == roles
    for role in ("orders", "gradings"):
        assert "/topics/" in integrator[role]["url"]
        assert "/subscriptions/" in platform[role]["url"]
    for role in ("events", "results"):
        assert "/subscriptions/" in integrator[role]["url"]
        assert "/topics/" in platform[role]["url"]
        assert integrator[role]["mirror"]["url"] == platform[role]["url"]
    from iris_cloud.config import Profile

    side_a = Profile.from_dict({"side": "integrator", **integrator})
    side_b = Profile.from_dict({"side": "platform", **platform})
    assert side_a.mirror().orders.url == side_b.orders.url  # type: ignore[union-attr]
    with side_a.open_broker("orders") as send:
        send.send(Message(body=b'{"Order": {}}', subject="OrderRequest"))
    with side_b.open_broker("orders") as receive:
        msg = receive.receive(max_messages=1, wait=5)[0]
        assert msg.subject == "OrderRequest"
        receive.complete(msg)
    with side_b.open_broker("events") as send:
        send.send(b"event")
    with side_a.open_broker("events") as receive:
        msg = receive.receive(max_messages=1, wait=5)[0]
        assert msg.body == b"event"
        receive.complete(msg)
    with side_a.open_store("images") as images:
        images.put("od.jpg", b"jpeg")
    with side_b.open_store("images") as images:
        assert images.get("od.jpg") == b"jpeg"


# -- rights ---------------------------------------------------------------------------


def test_verify_cannot_tell_without_iam(admin: PubSubAdmin, pubsub_host: str) -> None:
    # TestIamPermissions is how Pub/Sub answers; an endpoint without IAM (the
    # emulator) does not implement it, so neither right can be verified there.
    topic, sub = admin.queue(_name("rights"), ack_deadline=5)
    with _open(f"gcppubsub://{topic}", pubsub_host) as sender:
        assert sender.verify("send") is False
        with pytest.raises(ConfigurationError, match="cannot receive"):
            sender.verify("receive")
    with _open(f"gcppubsub://{sub}", pubsub_host) as receiver:
        assert receiver.verify("receive") is False


def test_check_reports_unverified_and_fails_unless_allowed(
    admin: PubSubAdmin, pubsub_host: str, tmp_path: Path
) -> None:
    topic, _ = admin.queue(_name("check"), ack_deadline=5)
    config = tmp_path / "iris-cloud.toml"
    config.write_text(
        '[profiles.g]\nclient_guid = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"\n'
        f'orders = {{ url = "gcppubsub://{topic}", emulator_host = "{pubsub_host}" }}\n'
    )
    args = ["check", "--json", "--config", str(config), "--profile", "g"]
    strict = CliRunner().invoke(main, args)
    assert strict.exit_code == 1, strict.output
    [orders] = json.loads(strict.stdout)
    assert orders["rights"]["send"] == "unverified" and orders["ok"] is False
    assert any("--send-probe" in note for note in orders["notes"])
    allowed = CliRunner().invoke(main, [*args, "--allow-unverified"])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)[0]["ok"] is True
