"""``azuresb://`` against the Service Bus emulator: the broker contract, rights, limits."""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from dataclasses import replace

import iris_cloud
import pytest
from azure.servicebus import ServiceBusMessageBatch
from iris_cloud.aio import AsyncMessageBroker
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.errors import (
    ConfigurationError,
    CredentialsRejected,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from iris_cloud.model.samples import sample_files
from iris_cloud.ports import Message, MessageBroker
from iris_cloud.testing import BrokerContract
from iris_cloud_azure._bus import ServiceBusCommon
from iris_cloud_azure.broker import ENVELOPE_RESERVE, ServiceBusBroker
from iris_cloud_azure.testing import (
    LISTEN_KEY,
    MANAGE_KEY,
    SEND_KEY,
    ServiceBusBrokerEnv,
    ServiceBusServer,
    servicebus,
    unique_name,
)


class TestServiceBusContract(BrokerContract):
    """The shared broker contract; send-only / receive-only use Send / Listen keys."""

    @pytest.fixture
    def broker_env(self, sb_env: ServiceBusBrokerEnv) -> ServiceBusBrokerEnv:
        return sb_env


class TestServiceBusContractIrisShaped(BrokerContract):
    """The contract once more with the kind of credentials IRIS hands out.

    Entity-scoped SAS policies without Manage (Send+Listen for the full-rights
    side, Send-only and Listen-only for the permission tests) and a claim-check
    container reached through a container SAS URL: nothing in the provider
    may lean on Manage rights or an account key.
    """

    @pytest.fixture
    def broker_env(self, sb_env: ServiceBusBrokerEnv) -> ServiceBusBrokerEnv:
        return sb_env.iris_shaped_view()


@pytest.fixture
def queue(sb_server: ServiceBusServer) -> str:
    name = unique_name("unit")
    sb_server.create_queue(name)
    return name


def _open(
    server: ServiceBusServer, entity: str, key: str = MANAGE_KEY, **kw: object
) -> ServiceBusBroker:
    return ServiceBusBroker.from_url(
        server.url(entity), connection_string=server.connection_string(key, entity), **kw
    )


def test_topic_send_and_subscription_receive(sb_server: ServiceBusServer) -> None:
    topic = unique_name("topic")
    sb_server.create_subscription(topic, "audit")
    sb_server.create_subscription(topic, "billing")
    url = sb_server.subscription_url(topic, "audit")
    conn = sb_server.connection_string(MANAGE_KEY, topic)
    with ServiceBusBroker.from_url(url, connection_string=conn) as audit:
        audit.send(Message(body=b"fan-out", subject="ResultEvent"))
        got = audit.receive(max_messages=1, wait=5)
        assert [m.body for m in got] == [b"fan-out"]
        assert got[0].subject == "ResultEvent"
        audit.complete(got[0])
    other = sb_server.subscription_url(topic, "billing")
    with ServiceBusBroker.from_url(other, connection_string=conn) as billing:
        got = billing.receive(max_messages=1, wait=5)
        assert [m.body for m in got] == [b"fan-out"]
        billing.dead_letter(got[0], "NotMine", "billing does not handle results")
        dead = billing.receive_dead_letters(max_messages=1, wait=5)
        assert dead[0].dead_letter_reason == "NotMine"
        billing.complete(dead[0])


def test_max_message_size_read_from_link() -> None:
    with servicebus(queues=["small"], max_message_size=64 * 1024) as server:
        broker = _open(server, "small")
        with broker:
            before = broker.capabilities.max_message_bytes
            broker.send(b"opens the link")
            assert broker.capabilities.max_message_bytes == 64 * 1024 - ENVELOPE_RESERVE
            assert before != broker.capabilities.max_message_bytes
            got = broker.receive(max_messages=1, wait=5)
            broker.complete(got[0])


def test_claim_check_engages_at_link_limit(sb_env: ServiceBusBrokerEnv) -> None:
    store = sb_env.claim_check_store()
    with (
        servicebus(queues=["small"], max_message_size=64 * 1024) as server,
        _open(server, "small", claim_check=store) as broker,
    ):
        body = os.urandom(100 * 1024)  # under the 256 KB default, over this link's limit
        broker.send(Message(body=body, subject="Result"))
        got = broker.receive(max_messages=1, wait=5)
        assert got[0].body == body
        broker.complete(got[0])
    assert len(list(store.list())) == 1


def test_send_splits_batches_by_encoded_size() -> None:
    # The core batches by Message.size; the SDK counts the encoded AMQP size. When
    # the core's budget lets through more than one service batch holds, the
    # provider splits again instead of failing.
    with (
        servicebus(queues=["q"], max_message_size=64 * 1024) as server,
        _open(server, "q") as broker,
    ):
        broker.send(b"open")
        broker.complete(broker.receive(1, 5)[0])
        limit = broker.capabilities.max_batch_bytes
        assert limit is not None
        broker.capabilities = replace(broker.capabilities, max_batch_bytes=10 * limit)
        sender = broker._sender
        assert sender is not None
        sent: list[int] = []
        original = sender.send_messages

        def counting(batch: ServiceBusMessageBatch) -> None:
            sent.append(len(batch))
            original(batch)

        sender.send_messages = counting  # type: ignore[method-assign]
        ids = broker.send([Message(body=b"b" * (limit // 3)) for _ in range(4)])
        assert len(sent) >= 2 and sum(sent) == 4
        got: list[Message] = []
        while len(got) < 4:
            batch = broker.receive(max_messages=4, wait=5)
            assert batch
            got += batch
        assert sorted(m.message_id for m in got) == sorted(ids)
        for m in got:
            broker.complete(m)


def test_abandon_delay_is_ignored_and_documented(sb_server: ServiceBusServer, queue: str) -> None:
    with _open(sb_server, queue) as broker:
        assert broker.capabilities.delayed_retry is False
        broker.send(b"again")
        first = broker.receive(1, 5)[0]
        broker.abandon(first, delay=30)
        again = broker.receive(1, 5)
        assert [m.message_id for m in again] == [first.message_id]
        broker.complete(again[0])


def test_settle_foreign_message_rejected(sb_server: ServiceBusServer, queue: str) -> None:
    with (
        _open(sb_server, queue) as broker,
        pytest.raises(ConfigurationError, match="received it"),
    ):
        broker.complete(Message(body=b"not from here"))


def test_send_only_key_names_the_right(sb_server: ServiceBusServer, queue: str) -> None:
    with _open(sb_server, queue, SEND_KEY) as sender:
        sender.send(b"order")
        for call in (
            lambda: sender.receive(1, 0.2),
            lambda: sender.receive_dead_letters(1, 0.2),
        ):
            with pytest.raises(PermissionDenied) as exc:
                call()
            assert exc.value.right == "receive"
    with _open(sb_server, queue, LISTEN_KEY) as listener:
        with pytest.raises(PermissionDenied) as exc:
            listener.send(b"event")
        assert exc.value.right == "send"
        assert "send" in str(exc.value)
        got = listener.receive(1, 5)
        assert [m.body for m in got] == [b"order"]
        listener.complete(got[0])


def test_missing_queue_is_not_found(sb_server: ServiceBusServer) -> None:
    with _open(sb_server, "no-such-queue") as broker, pytest.raises(NotFound):
        broker.send(b"lost")


def test_unreachable_namespace_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=s;UseDevelopmentEmulator=true"
    broker = ServiceBusBroker.from_url(
        f"azuresb://127.0.0.1:{port}/q", connection_string=conn, retry_total=0
    )
    with broker, pytest.raises(Unavailable) as exc:
        broker.send(b"x")
    assert exc.value.retryable


def test_repr_and_errors_hide_the_key(sb_server: ServiceBusServer, queue: str) -> None:
    conn = sb_server.connection_string(LISTEN_KEY, queue)
    secret = conn.split("SharedAccessKey=")[1].split(";")[0]
    broker = ServiceBusBroker.from_url(sb_server.url(queue), connection_string=conn)
    with broker:
        assert secret not in repr(broker)
        with pytest.raises(PermissionDenied) as exc:
            broker.send(b"x")
        assert secret not in str(exc.value)


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("azuresb://ns", {"sas_token": "t"}, "NAMESPACE/QUEUE"),
        ("azuresb://ns/t/subs/s", {"sas_token": "t"}, "subscriptions"),
        ("azuresb://ns/q?x=1", {"sas_token": "t"}, "query"),
        ("awssqs://ns/q", {"sas_token": "t"}, "azuresb"),
        ("azuresb://ns/q", {"sas_token": "t", "connection_string": "x"}, "one azuresb"),
        ("azuresb://ns/q", {"sas_token": "t", "colour": "red"}, "unknown azuresb option"),
        (
            "azuresb://ns/orders",
            {
                "connection_string": "Endpoint=sb://ns.servicebus.windows.net/;"
                "SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=events"
            },
            "scoped to entity 'events'",
        ),
        (
            "azuresb://other/orders",
            {
                "connection_string": "Endpoint=sb://ns.servicebus.windows.net/;"
                "SharedAccessKeyName=k;SharedAccessKey=s"
            },
            "namespace",
        ),
        ("azuresb://ns/q", {"connection_string": "garbage"}, "connection string"),
    ],
)
def test_bad_configuration(url: str, options: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ServiceBusBroker.from_url(url, **options)


def test_short_namespace_expands() -> None:
    broker = ServiceBusBroker.from_url(
        "azuresb://contoso/orders", sas_token="SharedAccessSignature x"
    )
    assert "contoso.servicebus.windows.net" in repr(broker)
    broker.close()


@pytest.mark.parametrize("port", [MessageBroker, AsyncMessageBroker])
def test_a_broker_without_its_hooks_cannot_be_made(port: type) -> None:
    # Refused when made, not when a dead receiver or a missing credential calls a hook.
    class Half(ServiceBusCommon, port):
        pass

    with pytest.raises(TypeError, match="abstract method") as refused:
        Half()
    for hook in ("default_credential", "_drop_receiver"):
        assert re.search(rf"\b{hook}\b", str(refused.value)), hook


def test_open_broker_resolves_azuresb(sb_server: ServiceBusServer, queue: str) -> None:
    broker = iris_cloud.open_broker(
        sb_server.url(queue), connection_string=sb_server.connection_string(MANAGE_KEY, queue)
    )
    assert isinstance(broker, ServiceBusBroker)
    with broker:
        broker.send(b"via plugin")
        got = broker.receive(1, 5)
        assert [m.body for m in got] == [b"via plugin"]
        broker.complete(got[0])


def test_consumer_settles_and_renews_concurrently(sb_server: ServiceBusServer, queue: str) -> None:
    # The consumer receives on one thread, settles from handler threads and renews
    # locks from another, all on this broker's one receiver: nothing may be lost.
    body = next(f for f in sample_files() if f.name == "event-order-created.json").read_bytes()
    count = 16
    with _open(sb_server, queue) as broker:
        broker.send([Message(body=body) for _ in range(count)])
        app = IrisApp()
        handled: list[int] = []

        @app.fallback
        def slow_sometimes(message: object, ctx: object) -> None:
            handled.append(1)
            # Two handlers outlive the 2 s lock: only renewal keeps them.
            time.sleep(2.6 if len(handled) in (3, 9) else 0.05)

        consumer = Consumer(app, broker, concurrency=4, wait=1.0, batch_size=8)
        stats = consumer.run_until(lambda s: s.completed >= count, timeout=60)
        assert stats.completed == count
        # Each long handler had its lock renewed or, on a starved machine where
        # a renewal came too late, lost it; that copy is handled again (at
        # least once), never lost.
        assert stats.lock_renewals >= 1
        assert stats.lock_renewals + stats.lock_lost >= 2
        assert stats.receive_errors == 0 and stats.dead_lettered == 0
        # A delivery whose lock was lost comes back once more: one count each.
        assert stats.received - stats.completed == stats.lock_lost
        assert stats.settle_errors == 0
        assert broker.receive(max_messages=1, wait=0.5) == []
        assert broker.receive_dead_letters(max_messages=1, wait=0.2) == []


def test_verify_rights_with_send_only_and_listen_only_keys(
    sb_server: ServiceBusServer, queue: str
) -> None:
    # Send: the sender link's attach is where Service Bus checks the Send
    # claim; receive: a peek (Listen). Neither sends, locks or counts anything.
    with _open(sb_server, queue) as admin:
        admin.send(b"waiting")
    with _open(sb_server, queue, SEND_KEY) as sender:
        assert sender.verify("send") is True
        with pytest.raises(PermissionDenied):
            sender.verify("receive")
    with _open(sb_server, queue, LISTEN_KEY) as listener:
        assert listener.verify("receive") is True
        with pytest.raises(PermissionDenied):
            listener.verify("send")
    with _open(sb_server, queue) as admin:
        [msg] = admin.receive(max_messages=5, wait=5)
        assert (msg.body, msg.delivery_count) == (b"waiting", 1)
        admin.complete(msg)


def test_a_wrong_key_is_rejected_credentials(sb_server: ServiceBusServer, queue: str) -> None:
    conn = sb_server.connection_string(SEND_KEY, queue)
    key = conn.split("SharedAccessKey=", 1)[1].split(";", 1)[0]
    wrong = conn.replace(key, base64.b64encode(b"not the key").decode())
    url = sb_server.url(queue)
    # The SDK retries a refused token like any error; once is enough here.
    with ServiceBusBroker.from_url(url, connection_string=wrong, retry_total=0) as broker:
        for right in ("send", "receive"):
            with pytest.raises(CredentialsRejected, match="not accepted") as exc:
                broker.verify(right)
            assert "not the key" not in str(exc.value)
