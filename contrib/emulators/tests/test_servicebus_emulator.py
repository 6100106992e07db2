"""The Service Bus emulator, exercised with the real azure-servicebus SDK over a socket."""

from __future__ import annotations

import datetime
import inspect
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus._transport._pyamqp_transport import PyamqpTransport
from azure.servicebus.exceptions import (
    MessageLockLostError,
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
)
from iris_cloud_emulators.servicebus import SasKey, ServiceBusEmulator, make_sas_token
from iris_cloud_emulators.servicebus._auth import verify_token

# Keep the SDK from retrying failures the tests provoke on purpose.
NO_RETRY = {"retry_total": 0}


def _awaits_settlement_outcome() -> bool:
    """Whether this SDK waits for the server's answer to a settlement (7.15+)."""
    parameters = inspect.signature(PyamqpTransport.settle_message_via_receiver_link).parameters
    return "await_outcome" in parameters


def _name() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def emulator() -> Iterator[ServiceBusEmulator]:
    with ServiceBusEmulator() as server:
        yield server


@pytest.fixture(scope="module")
def client(emulator: ServiceBusEmulator) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(emulator.connection_string(), **NO_RETRY) as sb:
        yield sb


def _send(client: ServiceBusClient, queue: str, *messages: ServiceBusMessage) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages(list(messages))


def test_send_receive_complete_round_trips_properties(
    client: ServiceBusClient, emulator: ServiceBusEmulator
) -> None:
    queue = _name()
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    _send(
        client,
        queue,
        ServiceBusMessage(
            b"\x00payload\xff",
            message_id="m-1",
            correlation_id="c-1",
            subject="order.created",
            content_type="application/octet-stream",
            application_properties={"tenant": "t1", "attempt": 3},
        ),
    )
    with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        (message,) = receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert b"".join(message.body) == b"\x00payload\xff"
        assert message.message_id == "m-1"
        assert message.correlation_id == "c-1"
        assert message.subject == "order.created"
        assert message.content_type == "application/octet-stream"
        assert message.application_properties == {b"tenant": b"t1", b"attempt": 3}
        assert message.delivery_count == 0
        assert message.sequence_number >= 1
        assert message.enqueued_time_utc >= before
        assert isinstance(message.lock_token, uuid.UUID)
        # Default lock duration is 30 s.
        remaining = message.locked_until_utc - datetime.datetime.now(datetime.UTC)
        assert datetime.timedelta(seconds=25) < remaining <= datetime.timedelta(seconds=31)
        receiver.complete_message(message)
        assert receiver.receive_messages(max_message_count=1, max_wait_time=0.5) == []
    assert emulator.message_count(queue) == 0


def test_abandon_redelivers_with_incremented_delivery_count(client: ServiceBusClient) -> None:
    queue = _name()
    _send(client, queue, ServiceBusMessage("work"))
    with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        (first,) = receiver.receive_messages(max_wait_time=5)
        receiver.abandon_message(first)
        (second,) = receiver.receive_messages(max_wait_time=5)
        assert str(second) == "work"
        assert second.sequence_number == first.sequence_number
        assert (first.delivery_count, second.delivery_count) == (0, 1)
        assert second.lock_token != first.lock_token
        receiver.complete_message(second)


def test_dead_letter_with_reason_lands_in_dead_letter_subqueue(
    client: ServiceBusClient, emulator: ServiceBusEmulator
) -> None:
    queue = _name()
    _send(client, queue, ServiceBusMessage("poison", application_properties={"k": "v"}))
    with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        (message,) = receiver.receive_messages(max_wait_time=5)
        receiver.dead_letter_message(
            message, reason="ValidationFailed", error_description="field x missing"
        )
        assert receiver.receive_messages(max_wait_time=0.5) == []
    assert emulator.message_count(queue) == 0
    assert emulator.message_count(f"{queue}/$DeadLetterQueue") == 1
    with client.get_queue_receiver(
        queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=5
    ) as dead:
        (letter,) = dead.receive_messages(max_wait_time=5)
        assert str(letter) == "poison"
        assert letter.dead_letter_reason == "ValidationFailed"
        assert letter.dead_letter_error_description == "field x missing"
        assert letter.application_properties[b"k"] == b"v"
        dead.complete_message(letter)
    assert emulator.message_count(f"{queue}/$DeadLetterQueue") == 0


def test_reset_empties_entities_but_keeps_them_usable(
    client: ServiceBusClient, emulator: ServiceBusEmulator
) -> None:
    queue = _name()
    _send(client, queue, ServiceBusMessage("stale"), ServiceBusMessage("stale too"))
    with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        assert len(receiver.receive_messages(max_message_count=1, max_wait_time=5)) == 1
        emulator.reset()
        assert emulator.message_count(queue) == 0
        assert queue in emulator.entity_names()
        _send(client, queue, ServiceBusMessage("fresh"))
        (message,) = receiver.receive_messages(max_wait_time=5)
        assert str(message) == "fresh"
        receiver.complete_message(message)


def test_peek_sees_messages_without_locking_them(client: ServiceBusClient) -> None:
    queue = _name()
    _send(client, queue, ServiceBusMessage("a"), ServiceBusMessage("b"))
    with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        peeked = receiver.peek_messages(max_message_count=10)
        assert [str(m) for m in peeked] == ["a", "b"]
        received = receiver.receive_messages(max_message_count=2, max_wait_time=5)
        assert sorted(str(m) for m in received) == ["a", "b"]
        for message in received:
            receiver.complete_message(message)
        assert receiver.peek_messages(max_message_count=10) == []


def test_defer_then_receive_by_sequence_number_and_settle_via_management(
    client: ServiceBusClient,
) -> None:
    queue = _name()
    _send(client, queue, ServiceBusMessage("later"))
    with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        (message,) = receiver.receive_messages(max_wait_time=5)
        receiver.defer_message(message)
        assert receiver.receive_messages(max_wait_time=0.5) == []
        (deferred,) = receiver.receive_deferred_messages([message.sequence_number])
        assert str(deferred) == "later"
        receiver.complete_message(deferred)  # goes through $management update-disposition
        with pytest.raises(Exception, match="deferred"):
            receiver.receive_deferred_messages([message.sequence_number])


def test_expired_messages_are_not_delivered(
    client: ServiceBusClient, emulator: ServiceBusEmulator
) -> None:
    queue = _name()
    _send(
        client,
        queue,
        ServiceBusMessage("short-lived", time_to_live=datetime.timedelta(seconds=1)),
        ServiceBusMessage("durable"),
    )
    time.sleep(1.2)  # the SDK sends TTLs in whole seconds
    assert emulator.message_count(queue) == 1
    with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        received = receiver.receive_messages(max_message_count=5, max_wait_time=2)
        assert [str(m) for m in received] == ["durable"]
        receiver.complete_message(received[0])


def test_receive_and_delete_removes_on_delivery(
    client: ServiceBusClient, emulator: ServiceBusEmulator
) -> None:
    queue = _name()
    _send(client, queue, ServiceBusMessage("once"))
    with client.get_queue_receiver(
        queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, max_wait_time=5
    ) as receiver:
        (message,) = receiver.receive_messages(max_wait_time=5)
        assert str(message) == "once"
    assert emulator.message_count(queue) == 0


def test_batch_is_split_into_separate_messages(client: ServiceBusClient) -> None:
    queue = _name()
    with client.get_queue_sender(queue) as sender:
        batch = sender.create_message_batch()
        for index in range(5):
            batch.add_message(ServiceBusMessage(f"m{index}", message_id=f"id-{index}"))
        sender.send_messages(batch)
    with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        received = []
        while len(received) < 5:
            chunk = receiver.receive_messages(max_message_count=5, max_wait_time=5)
            assert chunk, "batch members missing"
            received += chunk
        assert [str(m) for m in received] == [f"m{i}" for i in range(5)]
        assert [m.message_id for m in received] == [f"id-{i}" for i in range(5)]
        assert len({m.sequence_number for m in received}) == 5
        for message in received:
            receiver.complete_message(message)


def test_single_message_whose_body_is_an_amqp_message_is_not_split(
    client: ServiceBusClient,
) -> None:
    # Batches are recognised by the transfer's message-format, not by shape:
    # a body that happens to be an encoded AMQP message stays one message.
    queue = _name()
    with client.get_queue_sender(queue) as sender:
        batch = sender.create_message_batch()
        batch.add_message(ServiceBusMessage("inner"))
        encoded_inner = bytes(batch._message[5][0])  # the encoded member message
        sender.send_messages(ServiceBusMessage(encoded_inner))
    with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        (message,) = receiver.receive_messages(max_message_count=5, max_wait_time=5)
        assert b"".join(message.body) == encoded_inner
        receiver.complete_message(message)


def test_topic_subscriptions_each_get_a_copy() -> None:
    with (
        ServiceBusEmulator(topics={"events": ["audit", "billing"]}) as server,
        ServiceBusClient.from_connection_string(server.connection_string(), **NO_RETRY) as sb,
    ):
        with sb.get_topic_sender("events") as sender:
            sender.send_messages(ServiceBusMessage("created"))
        for subscription in ("audit", "billing"):
            with sb.get_subscription_receiver("events", subscription, max_wait_time=5) as receiver:
                (message,) = receiver.receive_messages(max_wait_time=5)
                assert str(message) == "created"
                receiver.complete_message(message)
        # Topics were declared, so nothing is created on demand.
        with (
            pytest.raises(MessagingEntityNotFoundError),
            sb.get_queue_sender("missing") as sender,
        ):
            sender.send_messages(ServiceBusMessage("x"))


def test_scheduled_message_appears_at_its_time_and_can_be_cancelled(
    client: ServiceBusClient,
) -> None:
    queue = _name()
    with (
        client.get_queue_receiver(queue, max_wait_time=5) as receiver,
        client.get_queue_sender(queue) as sender,
    ):
        receiver.peek_messages()  # open the receiver before the clock starts
        due = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=2.5)
        (kept,) = sender.schedule_messages(ServiceBusMessage("kept"), due)
        (dropped,) = sender.schedule_messages(ServiceBusMessage("dropped"), due)
        sender.cancel_scheduled_messages(dropped)
        before_due = (due - datetime.datetime.now(datetime.UTC)).total_seconds() - 0.3
        assert before_due > 0, "scheduling took too long to observe the wait"
        assert receiver.receive_messages(max_wait_time=min(0.5, before_due)) == []
        (message,) = receiver.receive_messages(max_message_count=5, max_wait_time=5)
        assert datetime.datetime.now(datetime.UTC) >= due
        assert str(message) == "kept"
        assert message.sequence_number == kept
        assert abs(message.enqueued_time_utc - due) < datetime.timedelta(milliseconds=5)
        receiver.complete_message(message)
        assert receiver.receive_messages(max_wait_time=0.5) == []


# -- locks ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_locks() -> Iterator[ServiceBusEmulator]:
    with ServiceBusEmulator(lock_duration=1.5, max_delivery_count=2) as server:
        yield server


def test_lock_expiry_redelivers_with_incremented_count(short_locks: ServiceBusEmulator) -> None:
    queue = _name()
    with ServiceBusClient.from_connection_string(short_locks.connection_string()) as sb:
        _send(sb, queue, ServiceBusMessage("slow"))
        with sb.get_queue_receiver(queue, max_wait_time=5) as receiver:
            (first,) = receiver.receive_messages(max_wait_time=5)
            assert first.delivery_count == 0
            # Not settled: the lock runs out and the message comes back.
            (second,) = receiver.receive_messages(max_wait_time=5)
            assert second.sequence_number == first.sequence_number
            assert second.delivery_count == 1
            # The first lock is gone; the server says so when asked to renew it...
            with pytest.raises(MessageLockLostError):
                receiver.renew_message_lock(first, timeout=5)
            # ...and when a client whose clock lags settles it on the link (the
            # SDK checks its own clock first, so move the client's idea forward).
            first._expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
            if _awaits_settlement_outcome():
                with pytest.raises(MessageLockLostError):
                    receiver.complete_message(first)
            else:  # 7.14 settles pre-settled and never hears back
                receiver.complete_message(first)
            # Either way the stale settlement did not touch the redelivered message.
            assert short_locks.message_count(queue) == 1
            receiver.complete_message(second)
        assert short_locks.message_count(queue) == 0


def test_renew_lock_extends_locked_until(short_locks: ServiceBusEmulator) -> None:
    queue = _name()
    with ServiceBusClient.from_connection_string(short_locks.connection_string()) as sb:
        _send(sb, queue, ServiceBusMessage("long job"))
        with sb.get_queue_receiver(queue, max_wait_time=5) as receiver:
            (message,) = receiver.receive_messages(max_wait_time=5)
            original = message.locked_until_utc
            time.sleep(0.5)
            renewed = receiver.renew_message_lock(message)
            assert renewed > original
            assert message.locked_until_utc == renewed
            time.sleep(0.5)
            receiver.renew_message_lock(message)
            time.sleep(0.7)
            # 1.7 s after receiving, past the 1.5 s lock duration: still ours.
            receiver.complete_message(message)
            assert receiver.receive_messages(max_wait_time=0.5) == []


def test_max_delivery_count_dead_letters(short_locks: ServiceBusEmulator) -> None:
    queue = _name()
    with ServiceBusClient.from_connection_string(short_locks.connection_string()) as sb:
        _send(sb, queue, ServiceBusMessage("doomed"))
        with sb.get_queue_receiver(queue, max_wait_time=5) as receiver:
            for expected_count in (0, 1):
                (message,) = receiver.receive_messages(max_wait_time=5)
                assert message.delivery_count == expected_count
                receiver.abandon_message(message)
            assert receiver.receive_messages(max_wait_time=0.5) == []
        with sb.get_queue_receiver(
            queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=5
        ) as dead:
            (letter,) = dead.receive_messages(max_wait_time=5)
            assert str(letter) == "doomed"
            assert letter.dead_letter_reason == "MaxDeliveryCountExceeded"
            assert letter.delivery_count == 2
            dead.complete_message(letter)


# -- message size --------------------------------------------------------------


def test_max_message_size_is_advertised_and_enforced() -> None:
    limit = 64 * 1024
    with (
        ServiceBusEmulator(max_message_size=limit) as server,
        ServiceBusClient.from_connection_string(server.connection_string(), **NO_RETRY) as sb,
    ):
        with sb.get_queue_sender("big") as sender:
            batch = sender.create_message_batch()
            # What the SDK read from the link's attach, not its built-in default.
            assert sender._max_message_size_on_link == limit
            # 7.15 sizes batches by the link's com.microsoft:max-message-batch-size
            # property; 7.14 assumes 256 KiB for any link below 1 MiB.
            reads_batch_property = hasattr(PyamqpTransport, "get_remote_max_message_batch_size")
            assert batch.max_size_in_bytes == (limit if reads_batch_property else 256 * 1024)
            sender.send_messages(ServiceBusMessage(b"x" * (limit - 1024)))
            with pytest.raises(MessageSizeExceededError, match="exceeds the limit"):
                sender.send_messages(ServiceBusMessage(b"x" * (limit + 1)))
        assert server.message_count("big") == 1


# -- shared access keys --------------------------------------------------------


@pytest.fixture(scope="module")
def secured() -> Iterator[ServiceBusEmulator]:
    keys = [
        "orders-send:s3nd-secret:Send",
        SasKey("events-listen", "l1sten-secret", frozenset({"Listen"})),
        "root:r00t-secret:Manage",
    ]
    with ServiceBusEmulator(queues=["orders", "events"], keys=keys) as server:
        yield server


def test_a_keys_secret_stays_out_of_its_repr_and_parse_errors() -> None:
    key = SasKey.parse("app:Sup3r-s3cret:Send")
    assert "Sup3r-s3cret" not in repr(key)
    assert "Sup3r-s3cret" not in repr(secured_grant(key))
    for spec in ["app:Sup3r-s3cret:Sned", "app:Sup3r:s3cret", ":Sup3r-s3cret", "Sup3r-s3cret"]:
        with pytest.raises(ValueError) as error:
            SasKey.parse(spec)
        assert "Sup3r" not in str(error.value) and "s3cret" not in str(error.value), spec


def secured_grant(key: SasKey) -> object:
    """What a verified token of ``key`` turns into (it holds the key)."""
    token = make_sas_token("sb://127.0.0.1/q", key.name, key.secret)
    return verify_token(token, {key.name: key})


def test_send_only_key_cannot_receive(secured: ServiceBusEmulator) -> None:
    with ServiceBusClient.from_connection_string(
        secured.connection_string("orders-send"), **NO_RETRY
    ) as sb:
        with sb.get_queue_sender("orders") as sender:
            sender.send_messages(ServiceBusMessage("order"))
        with (
            pytest.raises(ServiceBusAuthorizationError, match="Listen"),
            sb.get_queue_receiver("orders", max_wait_time=1) as receiver,
        ):
            receiver.receive_messages(max_wait_time=1)
    assert secured.message_count("orders") == 1


def test_listen_only_key_cannot_send(secured: ServiceBusEmulator) -> None:
    with (
        ServiceBusClient.from_connection_string(
            secured.connection_string("root"), **NO_RETRY
        ) as sb,
        sb.get_queue_sender("events") as sender,
    ):
        sender.send_messages(ServiceBusMessage("event"))
    with ServiceBusClient.from_connection_string(
        secured.connection_string("events-listen"), **NO_RETRY
    ) as sb:
        with (
            pytest.raises(ServiceBusAuthorizationError, match="Send"),
            sb.get_queue_sender("events") as sender,
        ):
            sender.send_messages(ServiceBusMessage("forged"))
        with sb.get_queue_receiver("events", max_wait_time=5) as receiver:
            (message,) = receiver.receive_messages(max_wait_time=5)
            assert str(message) == "event"
            receiver.complete_message(message)


def test_sas_token_scoped_to_a_queue(secured: ServiceBusEmulator) -> None:
    token = secured.sas_token("root", entity="events")
    conn = f"Endpoint={secured.endpoint};SharedAccessSignature={token};UseDevelopmentEmulator=true"
    with ServiceBusClient.from_connection_string(conn, **NO_RETRY) as sb:
        with sb.get_queue_sender("events") as sender:
            sender.send_messages(ServiceBusMessage("with a token"))
        with sb.get_queue_receiver("events", max_wait_time=5) as receiver:
            (message,) = receiver.receive_messages(max_wait_time=5)
            assert str(message) == "with a token"
            receiver.complete_message(message)
        # The token names the events queue only.
        with pytest.raises(ServiceBusAuthorizationError), sb.get_queue_sender("orders") as sender:
            sender.send_messages(ServiceBusMessage("elsewhere"))


def test_wrong_secret_is_rejected(secured: ServiceBusEmulator) -> None:
    forged = secured.connection_string("root").replace("r00t-secret", "guessed")
    with (
        ServiceBusClient.from_connection_string(forged, **NO_RETRY) as sb,
        pytest.raises(ServiceBusAuthenticationError),
        sb.get_queue_sender("orders") as sender,
    ):
        sender.send_messages(ServiceBusMessage("x"))


def test_unknown_queue_is_not_found_when_queues_are_declared(secured: ServiceBusEmulator) -> None:
    with (
        ServiceBusClient.from_connection_string(
            secured.connection_string("root"), **NO_RETRY
        ) as sb,
        pytest.raises(MessagingEntityNotFoundError),
        sb.get_queue_receiver("nope", max_wait_time=1) as receiver,
    ):
        receiver.receive_messages(max_wait_time=1)


# -- command line ----------------------------------------------------------------


def test_command_line_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iris_cloud_emulators.servicebus",
            "--port",
            "0",
            "--queue",
            "jobs",
            "--key",
            "app:app-secret:Send,Listen",
            "--lock-duration",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("Endpoint=sb://127.0.0.1:"), line
        assert "SharedAccessKeyName=app;SharedAccessKey=app-secret" in line
        with ServiceBusClient.from_connection_string(line) as sb:
            _send(sb, "jobs", ServiceBusMessage("via cli"))
            with sb.get_queue_receiver("jobs", max_wait_time=5) as receiver:
                (message,) = receiver.receive_messages(max_wait_time=5)
                assert str(message) == "via cli"
                remaining = message.locked_until_utc - datetime.datetime.now(datetime.UTC)
                assert remaining <= datetime.timedelta(seconds=5)
                receiver.complete_message(message)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
