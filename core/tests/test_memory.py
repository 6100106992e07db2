"""``mem://`` specifics beyond the contract suite: registries, options, threads, access."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import IO

import pytest
from iris_cloud import open_broker, open_store
from iris_cloud.errors import ConfigurationError, LockLost, NotFound, PermissionDenied
from iris_cloud.ports import Message
from iris_cloud.providers.memory import MemoryBroker, MemoryStore


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def test_two_opens_share_one_queue() -> None:
    name = _name()
    with open_broker(f"mem://{name}") as a, open_broker(f"mem://{name}") as b:
        a.send(b"shared")
        got = b.receive(wait=1)
        assert [m.body for m in got] == [b"shared"]
        # The other handle settles it: the lock belongs to the queue, not the broker.
        a.complete(got[0])
        assert b.receive(wait=0.2) == []


def test_different_names_are_different_queues() -> None:
    with open_broker(f"mem://{_name()}") as a, open_broker(f"mem://{_name()}") as b:
        a.send(b"x")
        assert b.receive(wait=0.2) == []


def test_options_from_url_and_keywords() -> None:
    b = MemoryBroker.from_url(f"mem://{_name()}?lock_seconds=0.5&max_delivery_count=4")
    assert b.lock_seconds == 0.5
    assert b.max_delivery_count == 4
    assert b.capabilities.max_delivery_count == 4
    # Keywords win over the query.
    k = MemoryBroker.from_url(f"mem://{_name()}?lock_seconds=0.5", lock_seconds=7)
    assert k.lock_seconds == 7.0


def test_defaults() -> None:
    b = MemoryBroker.from_url(f"mem://{_name()}")
    assert b.max_delivery_count == 10
    assert b.lock_seconds == 30.0
    assert b.access.value == "rw"


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("mem://q?lock_secs=1", {}, "unknown option"),
        ("mem://q?lock_seconds=0", {}, "greater than 0"),
        ("mem://q?lock_seconds=abc", {}, "must be a number"),
        ("mem://q?max_delivery_count=0", {}, "at least 1"),
        ("mem://q", {"access": "x"}, "access"),
        ("mem://", {}, "needs a name"),
        ("mem://q/extra", {}, "queue name only"),
        ("mem://bad name", {}, "queue name"),
        ("mem://orders$dlq", {}, "queue name"),
    ],
)
def test_bad_broker_options(url: str, options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        MemoryBroker.from_url(url, **options)


def test_stale_lock_raises_lock_lost() -> None:
    with MemoryBroker(_name(), lock_seconds=0.2) as b:
        b.send(b"x")
        first = b.receive(wait=1)[0]
        time.sleep(0.3)
        second = b.receive(wait=1)[0]
        for call in (b.complete, b.abandon, b.renew_lock):
            with pytest.raises(LockLost):
                call(first)
        with pytest.raises(LockLost):
            b.dead_letter(first, "late")
        b.complete(second)
        with pytest.raises(LockLost):
            b.complete(second)


def test_settling_a_foreign_message_is_rejected() -> None:
    with MemoryBroker(_name()) as a, MemoryBroker(_name()) as b:
        a.send(b"x")
        msg = a.receive(wait=1)[0]
        with pytest.raises(ConfigurationError, match="another queue"):
            b.complete(msg)
        with pytest.raises(ConfigurationError, match="not received"):
            a.complete(Message(body=b"never received"))
        a.complete(msg)


def test_closed_broker_refuses_calls() -> None:
    b = MemoryBroker(_name())
    b.close()
    with pytest.raises(ConfigurationError, match="closed"):
        b.send(b"x")
    with pytest.raises(ConfigurationError, match="closed"):
        b.receive()
    with pytest.raises(ConfigurationError, match="closed"):
        b.receive_dead_letters()


def test_locked_until_is_when_each_lock_ends() -> None:
    # Locks that end within a millisecond share one date (datetime.now() per
    # receive would cost more than the rest of it): never later than the end.
    with MemoryBroker(_name(), lock_seconds=60) as b:
        b.send([b"x"] * 50)
        before = datetime.now(UTC)
        got = [b.receive(1)[0] for _ in range(50)]
        after = datetime.now(UTC)
        lock = timedelta(seconds=60)
        for msg in got:
            assert msg.locked_until is not None
            assert before + lock <= msg.locked_until <= after + lock
        time.sleep(0.01)
        b.send(b"y")
        [fresh] = b.receive(1)
        assert fresh.locked_until is not None and fresh.locked_until > after + lock


def test_messages_are_copied_on_send() -> None:
    with MemoryBroker(_name()) as b:
        msg = Message(body=b"x", properties={"k": "v"})
        b.send(msg)
        msg.properties["k"] = "changed"
        got = b.receive(wait=1)[0]
        assert got.properties == {"k": "v"}
        got.properties["k"] = "mutated"
        b.abandon(got)
        assert b.receive(wait=1)[0].properties == {"k": "v"}


def test_bad_property_type_rejected() -> None:
    with MemoryBroker(_name()) as b, pytest.raises(TypeError, match="property 'k'"):
        b.send(Message(body=b"x", properties={"k": [1, 2]}))  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "fields",
    [
        {"body": "text, not bytes"},
        {"body": b"x", "message_id": 7},
        {"body": b"x", "subject": b"bytes"},
        {"body": b"x", "properties": [("k", "v")]},
    ],
    ids=["body", "message_id", "subject", "properties"],
)
def test_what_message_does_not_promise_is_refused_at_send(fields: dict[str, object]) -> None:
    # The queue hands out what it holds without decoding it again: so nothing
    # it could not deliver gets in, and none of the batch is stored.
    with MemoryBroker(_name()) as b:
        with pytest.raises(TypeError):
            b._send_batch([Message(body=b"good"), Message(**fields)])  # type: ignore[arg-type]
        assert b.peek() == []


def test_received_peeked_and_dead_lettered_copies_are_the_callers_own() -> None:
    with MemoryBroker(_name()) as b:
        b.send(Message(body=b"x", properties={"k": "v"}))
        b.peek()[0].properties["k"] = "peeked"
        got = b.receive(wait=1)[0]
        got.properties["k"] = "received"
        b.dead_letter(got, "Why")
        [dead] = b.receive_dead_letters(wait=1)
        assert dead.properties == {"k": "v"}
        dead.properties["k"] = "dead"
        b.abandon(dead)
        assert b.receive_dead_letters(wait=1)[0].properties == {"k": "v"}


def test_expired_lock_at_max_deliveries_goes_to_dead_letters() -> None:
    with MemoryBroker(_name(), lock_seconds=0.2, max_delivery_count=2) as b:
        b.send(b"slow handler")
        assert b.receive(wait=1)[0].delivery_count == 1
        time.sleep(0.25)
        assert b.receive(wait=1)[0].delivery_count == 2
        time.sleep(0.25)
        assert b.receive(wait=0.1) == []
        dead = b.receive_dead_letters(wait=1)
        assert [d.body for d in dead] == [b"slow handler"]
        assert dead[0].dead_letter_reason == "MaxDeliveryCountExceeded"
        assert "2 times" in (dead[0].dead_letter_description or "")


def test_concurrent_consumers_never_share_a_message() -> None:
    name = _name()
    total = 600
    with MemoryBroker(name, lock_seconds=30) as producer:
        producer.send([f"m{i}" for i in range(total)])
    received: list[str] = []
    lock = threading.Lock()

    def consume() -> None:
        with MemoryBroker(name, lock_seconds=30) as b:
            while True:
                got = b.receive(max_messages=7, wait=0.2)
                if not got:
                    return
                with lock:
                    received.extend(m.message_id for m in got)
                for m in got:
                    b.complete(m)

    threads = [threading.Thread(target=consume) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    counts = Counter(received)
    assert len(counts) == total
    assert max(counts.values()) == 1


def test_receive_wakes_on_abandon_with_delay() -> None:
    with MemoryBroker(_name()) as b:
        b.send(b"x")
        msg = b.receive(wait=1)[0]
        b.abandon(msg, delay=0.3)
        start = time.monotonic()
        again = b.receive(wait=5)
        elapsed = time.monotonic() - start
        assert [m.body for m in again] == [b"x"]
        assert 0.25 <= elapsed < 2


def test_negative_delay_rejected() -> None:
    with MemoryBroker(_name()) as b:
        b.send(b"x")
        msg = b.receive(wait=1)[0]
        with pytest.raises(ConfigurationError):
            b.abandon(msg, delay=-1)


def test_dead_letter_message_cannot_be_dead_lettered_again() -> None:
    with MemoryBroker(_name()) as b:
        b.send(b"x")
        b.dead_letter(b.receive(wait=1)[0], "bad")
        dead = b.receive_dead_letters(wait=1)[0]
        with pytest.raises(ConfigurationError):
            b.dead_letter(dead, "again")
        b.abandon(dead)
        assert b.receive_dead_letters(wait=1)[0].delivery_count == 2


def test_access_via_url_query() -> None:
    name = _name()
    with open_broker(f"mem://{name}?access=w") as w:
        w.send(b"x")
        for receive in (w.receive, w.receive_dead_letters):
            with pytest.raises(PermissionDenied) as exc:
                receive()
            assert exc.value.right == "receive"
    with open_broker(f"mem://{name}?access=r") as r:
        msg = r.receive(wait=1)[0]
        r.complete(msg)


def test_receive_only_is_denied_before_claim_check_upload() -> None:
    claim = MemoryStore(_name())
    b = MemoryBroker(_name(), access="r", claim_check=claim)
    with pytest.raises(PermissionDenied):
        b.send(b"x" * (b.capabilities.max_message_bytes + 1))
    assert list(claim.list()) == []


def test_repr_shows_no_bodies() -> None:
    b = MemoryBroker("orders")
    assert repr(b) == "MemoryBroker(name='orders', access='rw')"


# -- store --------------------------------------------------------------------------


def test_two_opens_share_one_container() -> None:
    name = _name()
    open_store(f"mem://{name}").put("a", b"1")
    assert open_store(f"mem://{name}").get("a") == b"1"


def test_store_prefix_isolates_names() -> None:
    name = _name()
    whole = MemoryStore.from_url(f"mem://{name}")
    sub = MemoryStore.from_url(f"mem://{name}/client-1/")
    sub.put("img.jpg", b"j")
    assert whole.get("client-1/img.jpg") == b"j"
    assert [o.name for o in sub.list()] == ["img.jpg"]
    whole.put("client-2/x", b"x")
    assert [o.name for o in sub.list()] == ["img.jpg"]
    with pytest.raises(NotFound):
        sub.get("client-2/x")


def test_store_capabilities_follow_access() -> None:
    name = _name()
    w = MemoryStore.from_url(f"mem://{name}?access=w")
    assert (w.capabilities.can_write, w.capabilities.can_read, w.capabilities.can_list) == (
        True,
        False,
        False,
    )
    r = MemoryStore.from_url(f"mem://{name}", access="r")
    assert (r.capabilities.can_write, r.capabilities.can_read) == (False, True)


def test_store_unknown_option() -> None:
    with pytest.raises(ConfigurationError, match="unknown option"):
        MemoryStore.from_url("mem://c?region=x")


def test_concurrent_conditional_create_has_one_winner() -> None:
    store = MemoryStore(_name())
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def put(i: int) -> None:
        barrier.wait()
        try:
            store.put("race", str(i).encode())
            winners.append(i)
        except Exception as exc:  # AlreadyExists expected for all but one
            assert type(exc).__name__ == "AlreadyExists"

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert store.get("race") == str(winners[0]).encode()


def test_reset_forgets_everything() -> None:
    # In a child process: reset() is process-wide and would disturb other tests here.
    script = """
from iris_cloud.providers import memory
from iris_cloud.providers.memory import MemoryBroker, MemoryStore
MemoryStore("c").put("a", b"1")
MemoryBroker("q").send(b"x")
memory.reset()
assert list(MemoryStore("c").list()) == []
assert MemoryBroker("q").receive() == []
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "ok"


# -- claim check failures ----------------------------------------------------------------


class _FlakyStore(MemoryStore):
    """A claim-check store that cannot be read for now."""

    def _open_read(self, name: str) -> IO[bytes]:
        from iris_cloud.errors import Unavailable

        raise Unavailable("store is down for maintenance")


def test_claim_check_unavailable_abandons_only_that_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from iris_cloud import portlogic

    monkeypatch.setattr(portlogic, "CLAIM_CHECK_RETRY_DELAY", 2.0)
    name = _name()
    bucket = _name()
    with MemoryBroker(name, claim_check=MemoryStore(bucket)) as writer:
        writer.send([Message(body=b"x" * (writer.capabilities.max_message_bytes + 1)), b"small"])
    with MemoryBroker(name, claim_check=_FlakyStore(bucket)) as reader:
        got = reader.receive(max_messages=10, wait=1)
        assert [m.body for m in got] == [b"small"]
        reader.complete(got[0])
        # Abandoned with a delay, not dead-lettered: it comes back once the store is up.
        assert reader.receive_dead_letters(wait=0.1) == []
    with MemoryBroker(name, claim_check=MemoryStore(bucket)) as healthy:
        assert healthy.receive(wait=0.1) == []
        (back,) = healthy.receive(wait=6)
        assert len(back.body) == healthy.capabilities.max_message_bytes + 1
        assert back.delivery_count == 2


def test_claim_check_pointer_to_another_bucket_is_dead_lettered_alone() -> None:
    # A pointer naming a bucket that is not the claim-check store is the
    # sender's doing (or a stale pointer): refused unfetched, on its own.
    name = _name()
    with MemoryBroker(name, claim_check=MemoryStore(_name())) as writer:
        writer.send([b"small", Message(body=b"x" * (writer.capabilities.max_message_bytes + 1))])
    with MemoryBroker(name, claim_check=MemoryStore("another-bucket")) as reader:
        got = reader.receive(max_messages=10, wait=1)
        assert [m.body for m in got] == [b"small"]
        reader.complete(got[0])
        (dead,) = reader.receive_dead_letters(wait=0.1)
        assert dead.dead_letter_reason == "ClaimCheckFailed"
        assert dead.dead_letter_description == "ValidationError at body[1].s3BucketName"


def test_claim_check_store_we_may_not_read_abandons_the_batch_and_raises() -> None:
    # Credentials that cannot read the claim-check store are the operator's
    # to fix: nothing is dead-lettered, everything comes back.
    name, bucket = _name(), _name()
    with MemoryBroker(name, claim_check=MemoryStore(bucket)) as writer:
        writer.send([b"small", Message(body=b"x" * (writer.capabilities.max_message_bytes + 1))])
    reader = MemoryBroker(name, claim_check=MemoryStore(bucket, access="w"))
    with reader, pytest.raises(PermissionDenied):
        reader.receive(max_messages=10, wait=1)
    # Both were given back at once (locks last 30 s), nothing was dead-lettered.
    with MemoryBroker(name) as plain:
        got = plain.receive(max_messages=10, wait=0.2)
        assert sorted(m.delivery_count for m in got) == [2, 2]
        assert plain.receive_dead_letters(wait=0.1) == []
