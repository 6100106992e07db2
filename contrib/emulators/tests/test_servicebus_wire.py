"""Wire details of the Service Bus emulator that the Azure SDK does not exercise.

The Python SDK skips SASL in emulator mode and always marks batches, so these
use proton's own blocking client (another real AMQP 1.0 stack) over a socket.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from iris_cloud_emulators.servicebus import ServiceBusEmulator
from iris_cloud_emulators.servicebus._codec import StoredBody, split_batch
from iris_cloud_emulators.servicebus._sasl import AMQP_HEADER
from iris_cloud_emulators.servicebus._server import BATCH_FORMAT, _FramePadder, _FrameSniffer
from proton import UNDESCRIBED, Array, ConnectionException, Data, Delivery, Message, symbol
from proton import Timeout as ProtonTimeout
from proton.utils import BlockingConnection, LinkDetached, SendException


@pytest.fixture(scope="module")
def secured() -> Iterator[ServiceBusEmulator]:
    keys = ["writer:w-secret:Send", "reader:r-secret:Listen"]
    with ServiceBusEmulator(queues=["jobs"], keys=keys) as server:
        yield server


def _connect(server: ServiceBusEmulator, **kwargs: object) -> BlockingConnection:
    # PLAIN over plain TCP must be allowed explicitly on proton's client side.
    return BlockingConnection(
        f"amqp://127.0.0.1:{server.port}", timeout=5, allow_insecure_mechs=True, **kwargs
    )


def test_sasl_plain_with_a_key_grants_that_keys_rights(secured: ServiceBusEmulator) -> None:
    writer = _connect(secured, user="writer", password="w-secret", allowed_mechs="PLAIN")
    try:
        writer.create_sender("jobs").send(Message(body="from plain", id="p-1"))
        with pytest.raises(LinkDetached, match="Listen"):
            writer.create_receiver("jobs")
    finally:
        writer.close()
    reader = _connect(secured, user="reader", password="r-secret", allowed_mechs="PLAIN")
    try:
        receiver = reader.create_receiver("jobs")
        message = receiver.receive(timeout=5)
        receiver.accept()
        assert message.body == "from plain"
        assert message.id == "p-1"
        assert message.annotations[symbol("x-opt-sequence-number")] >= 1
        assert message.delivery_count == 0
    finally:
        reader.close()


def test_sasl_plain_with_a_wrong_secret_is_refused(secured: ServiceBusEmulator) -> None:
    with pytest.raises(ConnectionException, match="Authentication failed"):
        _connect(secured, user="writer", password="nope", allowed_mechs="PLAIN")


def test_sasl_anonymous_without_a_token_may_not_attach(secured: ServiceBusEmulator) -> None:
    connection = _connect(secured, allowed_mechs="ANONYMOUS")
    try:
        with pytest.raises(LinkDetached, match="unauthorized-access"):
            connection.create_sender("jobs")
    finally:
        connection.close()


def test_sasl_anonymous_is_enough_without_keys() -> None:
    with ServiceBusEmulator() as server:
        connection = _connect(server, allowed_mechs="ANONYMOUS")
        try:
            connection.create_sender("q").send(Message(body={"k": 1}))
            receiver = connection.create_receiver("q")
            assert receiver.receive(timeout=5).body == {"k": 1}
            receiver.accept()
        finally:
            connection.close()


# -- $cbs / $management replies, abandon, token expiry (other clients' habits) ---


def _put_token(
    connection: BlockingConnection, token: str, *, reply_to: str | None, receiver: Any
) -> Message:
    """Put a SAS token on $cbs the way the JavaScript SDK does, and read the reply."""
    request = Message(
        id=str(uuid.uuid4()),
        reply_to=reply_to,
        properties={
            "operation": "put-token",
            "type": "servicebus.windows.net:sastoken",
            "name": "sb://127.0.0.1/",
        },
        body=token,
    )
    connection.create_sender("$cbs", name=f"put-token-{uuid.uuid4()}").send(request)
    return receiver.receive(timeout=5)  # replies come settled


def test_cbs_reply_goes_to_the_link_named_by_reply_to(secured: ServiceBusEmulator) -> None:
    connection = _connect(secured, allowed_mechs="ANONYMOUS")
    try:
        # Two receivers on $cbs: the reply must follow reply-to (the link's
        # name, as rhea-based clients set it), not the first or newest link.
        named = connection.create_receiver("$cbs", name="cbs-wanted")
        other = connection.create_receiver("$cbs", name="cbs-other")
        reply = _put_token(
            connection, secured.sas_token("reader"), reply_to="cbs-wanted", receiver=named
        )
        assert reply.properties["status-code"] == 202
        with pytest.raises(ProtonTimeout):
            other.receive(timeout=0.5)
        # The token took effect: this connection may now listen.
        connection.create_receiver("jobs")
    finally:
        connection.close()


def test_cbs_reply_without_reply_to_goes_to_the_paired_link(secured: ServiceBusEmulator) -> None:
    connection = _connect(secured, allowed_mechs="ANONYMOUS")
    try:
        receiver = connection.create_receiver("$cbs")
        reply = _put_token(
            connection, secured.sas_token("reader"), reply_to=None, receiver=receiver
        )
        assert reply.properties["status-code"] == 202
    finally:
        connection.close()


def _management(
    connection: BlockingConnection, node: str, operation: str, body: dict[str, Any]
) -> Message:
    """One request on ``node/$management``, answered on the paired link (no reply-to)."""
    address = f"{node}/$management"
    name = f"mgmt-{uuid.uuid4()}"
    receiver = connection.create_receiver(address, name=name)
    connection.create_sender(address, name=f"{name}-request").send(
        Message(
            id=str(uuid.uuid4()),
            properties={"operation": f"com.microsoft:{operation}"},
            body=body,
        )
    )
    return receiver.receive(timeout=5)  # replies come settled


def test_a_lock_is_only_good_on_its_own_entitys_management_node() -> None:
    keys = ["root:root-secret:Manage"]
    with ServiceBusEmulator(queues=["mine", "theirs"], keys=keys) as server:
        owner = _connect(server, user="root", password="root-secret", allowed_mechs="PLAIN")
        intruder = _connect(server, allowed_mechs="ANONYMOUS")
        try:
            owner.create_sender("theirs").send(Message(body="not yours"))
            locked = owner.create_receiver("theirs")
            message = locked.receive(timeout=5)
            token = message.annotations[symbol("x-opt-lock-token")]
            # The intruder may listen on "mine" only, and names theirs' lock there.
            cbs = intruder.create_receiver("$cbs", name="cbs-intruder")
            scoped = server.sas_token("root", entity="mine")
            assert (
                _put_token(intruder, scoped, reply_to="cbs-intruder", receiver=cbs).properties[
                    "status-code"
                ]
                == 202
            )
            tokens = {"lock-tokens": Array(UNDESCRIBED, Data.UUID, token)}
            for operation, body in [
                ("update-disposition", {"disposition-status": "completed", **tokens}),
                ("update-disposition", {"disposition-status": "suspended", **tokens}),
                ("renew-lock", tokens),
            ]:
                reply = _management(intruder, "mine", operation, body)
                assert reply.properties["statusCode"] == 410, operation
            assert server.message_count("theirs") == 1
            # The owner still holds the lock and settles it.
            locked.accept()
            owner.close()  # sends the settlement ahead of the close, and waits for the reply
            assert server.message_count("theirs") == 0
        finally:
            intruder.close()
            owner.close()


def test_a_token_for_the_management_node_allows_its_operations(
    secured: ServiceBusEmulator,
) -> None:
    # The JavaScript SDK signs its $management link's token for ENTITY/$management.
    connection = _connect(secured, allowed_mechs="ANONYMOUS")
    try:
        cbs = connection.create_receiver("$cbs", name="cbs-mgmt")
        token = secured.sas_token("reader", entity="jobs/$management")
        reply = _put_token(connection, token, reply_to="cbs-mgmt", receiver=cbs)
        assert reply.properties["status-code"] == 202
        peek = {"from-sequence-number": 1, "message-count": 1}
        answer = _management(connection, "jobs", "peek-message", peek)
        assert answer.properties["statusCode"] in (200, 204)
        with pytest.raises(LinkDetached, match="Listen"):
            connection.create_receiver("jobs")  # the token is not for the queue itself
    finally:
        connection.close()


def test_abandon_without_delivery_failed_still_counts() -> None:
    # The JavaScript SDK abandons with a plain `modified` outcome; Service Bus
    # counts it all the same, so the message reaches the dead-letter queue.
    with ServiceBusEmulator(max_delivery_count=3) as server:
        connection = _connect(server, allowed_mechs="ANONYMOUS")
        try:
            connection.create_sender("work").send(Message(body="poison"))
            receiver = connection.create_receiver("work")
            counts = []
            for _ in range(3):
                message = receiver.receive(timeout=5)
                counts.append(message.delivery_count)
                receiver.settle(Delivery.MODIFIED)  # delivery-failed left false
            assert counts == [0, 1, 2]
            with pytest.raises(ProtonTimeout):
                receiver.receive(timeout=0.5)
            dead = connection.create_receiver("work/$DeadLetterQueue")
            letter = dead.receive(timeout=5)
            dead.accept()
            assert letter.body == "poison"
            assert letter.properties["DeadLetterReason"] == "MaxDeliveryCountExceeded"
        finally:
            connection.close()


def test_a_link_whose_token_expired_is_not_served_until_a_new_token() -> None:
    keys = ["app:app-secret:Send,Listen"]
    with ServiceBusEmulator(queues=["jobs"], keys=keys) as server:
        writer = _connect(server, user="app", password="app-secret", allowed_mechs="PLAIN")
        client = _connect(server, allowed_mechs="ANONYMOUS")
        try:
            cbs = client.create_receiver("$cbs", name="cbs-client")
            short = server.sas_token("app", ttl=2)
            expiry = int(short.rsplit("se=", 1)[1].split("&", 1)[0])
            assert (
                _put_token(client, short, reply_to="cbs-client", receiver=cbs).properties[
                    "status-code"
                ]
                == 202
            )
            receiver = client.create_receiver("jobs", credit=10)
            sender = client.create_sender("jobs")
            sender.send(Message(body="while valid"))
            assert receiver.receive(timeout=5).body == "while valid"
            receiver.accept()
            time.sleep(max(0.0, expiry - time.time()) + 0.3)
            writer.create_sender("jobs").send(Message(body="after expiry"))
            with pytest.raises(ProtonTimeout):
                receiver.receive(timeout=1)
            with pytest.raises(SendException):
                sender.send(Message(body="sent with an expired token"))
            assert server.message_count("jobs") == 1
            # A fresh token and the same link is served again.
            assert (
                _put_token(
                    client, server.sas_token("app"), reply_to="cbs-client", receiver=cbs
                ).properties["status-code"]
                == 202
            )
            assert receiver.receive(timeout=5).body == "after expiry"
            receiver.accept()
        finally:
            client.close()
            writer.close()


def _transfer_frame(channel: int, handle: int, tag: bytes, message_format: int) -> bytes:
    from proton import Data, Described, uint, ulong

    data = Data()
    data.put_object(Described(ulong(0x14), [uint(handle), uint(0), tag, uint(message_format)]))
    body = bytes(data.encode())
    return (8 + len(body)).to_bytes(4, "big") + b"\x02\x00" + channel.to_bytes(2, "big") + body


def _attach_frame(channel: int, name: str, handle: int) -> bytes:
    from proton import Data, Described, uint, ulong

    data = Data()
    data.put_object(Described(ulong(0x12), [name, uint(handle), False]))
    body = bytes(data.encode())
    return (8 + len(body)).to_bytes(4, "big") + b"\x02\x00" + channel.to_bytes(2, "big") + body


def test_frame_sniffer_records_only_batch_transfers_across_chunk_boundaries() -> None:
    stream = (
        b"AMQP\x00\x01\x00\x00"
        + _attach_frame(1, "link-a", 3)
        + _transfer_frame(1, 3, b"\x00\x00\x00\x01", 0)
        + _transfer_frame(1, 3, b"\x00\x00\x00\x02", BATCH_FORMAT)
        + b"\x00\x00\x00\x08\x02\x00\x00\x00"  # an empty (heartbeat) frame
    )
    sniffer = _FrameSniffer()
    for offset in range(0, len(stream), 7):  # arbitrary TCP segmentation
        sniffer.feed(stream[offset : offset + 7])
    assert sniffer.batches == {("link-a", b"\x00\x00\x00\x02")}


def test_batch_envelope_splits_into_its_messages() -> None:
    inner = [Message(body=f"m{i}".encode(), id=f"id-{i}").encode() for i in range(3)]
    from proton import Data, Described, ulong

    data = Data()
    for encoded in inner:
        data.put_object(Described(ulong(0x75), encoded))
    parts = split_batch(bytes(data.encode()))
    assert parts == inner
    stored = StoredBody.parse(parts[1])
    assert stored.body.endswith(b"m1")
    assert stored.header[4] == 0  # delivery count defaults to zero


def test_frame_padder_fills_in_omitted_fields_and_keeps_payloads() -> None:
    from proton import Data

    close = b"\x00\x00\x00\x0c\x02\x00\x00\x00\x00\x53\x18\x45"  # close, list0
    heartbeat = b"\x00\x00\x00\x08\x02\x00\x00\x00"
    payload = b"\x00Sw\xa1\x05hello"
    bare = _transfer_frame(0, 1, b"tag", 0)  # four of eleven fields, as proton writes it
    transfer = (int.from_bytes(bare[:4], "big") + len(payload)).to_bytes(4, "big")
    transfer += bare[4:] + payload
    stream = AMQP_HEADER + transfer + heartbeat + close
    padder = _FramePadder()
    out = b"".join(padder.feed(stream[i : i + 5]) for i in range(0, len(stream), 5))

    assert out.startswith(AMQP_HEADER)
    frames = []
    rest = out[8:]
    while rest:
        size = int.from_bytes(rest[:4], "big")
        frames.append(rest[:size])
        rest = rest[size:]
    assert frames[1] == heartbeat
    for frame, arity in ((frames[0], 11), (frames[2], 1)):
        data = Data()
        consumed = data.decode(frame[8:])
        data.rewind()
        data.next()
        assert len(data.get_object().value) == arity
        if arity == 11:
            assert frame[8 + consumed :] == payload  # the message after the performative
