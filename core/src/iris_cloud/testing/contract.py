"""The contract suite: one set of tests every broker and store provider passes.

Modelled on gocloud.dev's ``drivertest`` and fsspec's abstract tests: the
tests live here, a provider's test module subclasses them and supplies an
*environment* through a pytest fixture. Nothing here knows a provider.

Using it
--------
::

    import pytest
    from iris_cloud.testing import BrokerContract, StoreContract

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        def broker_env(self) -> MyBrokerEnv:      # implements BrokerContractEnv
            with my_server() as server:
                yield MyBrokerEnv(server)

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store_env(self) -> MyStoreEnv:        # implements StoreContractEnv
            ...

The environment protocols (:class:`BrokerContractEnv`, :class:`StoreContractEnv`):

* ``broker_env.new_queue(lock_seconds=2.0, max_delivery_count=3) -> url`` creates
  a fresh, empty queue and its dead-letter queue, configured with that lock
  (visibility timeout / ack deadline) and that many deliveries before the
  service dead-letters. A service with a larger minimum may round up; the
  suite waits for ``Message.locked_until`` when the provider fills it and reads
  ``broker.capabilities.max_delivery_count`` when set on the instance.
* ``broker_env.open(url, claim_check=None)`` opens that queue with full rights;
  ``claim_check_store()`` returns a store for the claim check;
  ``open_send_only(url)`` / ``open_receive_only(url)`` open it with credentials
  that may only send / only receive, or return ``None`` when the provider
  cannot express that (the permission tests then skip, saying so).
* ``store_env.new_store()`` returns a fresh, empty store (container or
  prefix) with full rights; ``open_write_only(store)`` / ``open_read_only(store)``
  open the same container with write-only / read-only credentials, or ``None``.
* Optional ``broker_env.send_undecodable(url) -> list[str]``: puts on the queue,
  through the service's own SDK (or straight into a built-in provider's
  storage), messages that the provider cannot decode (an attribute that lies
  about its type or encoding, a body or property of a kind the service allows
  but :class:`~iris_cloud.ports.Message` does not), and returns the names of
  the cases sent. The suite checks that each is dead-lettered alone
  (``DecodeFailed``) while the messages around it are delivered; without the
  hook that test skips.
* Optional attribute ``store_env.signed_put_headers``: headers a signed PUT
  needs on that service (Azure wants ``x-ms-blob-type``); default none.

Tests gate on :class:`~iris_cloud.ports.Capabilities`: what a provider does not
support is skipped with the reason (``delayed_retry``, ``lock_renewal``,
``signed_urls``, ...), never passed silently. A provider that cannot meet one
test for a reason no capability describes overrides that test with a
``pytest.skip`` naming the reason.

Tuning (class attributes a subclass may override): ``settle_margin`` (seconds
added to waits for slow emulators), ``list_objects`` (objects created by the
listing test; make the env's store page smaller than that to test paging),
``large_object_in_constant_memory`` (``False`` for stores that keep objects
in memory), ``large_object_peak_mb``. The large-object size is read from the
environment variable ``IRIS_CLOUD_CONTRACT_LARGE_MB`` (default 64).

Async providers run the same tests through blocking facades
(:mod:`iris_cloud.testing.blocking`): ``BlockingBrokerEnv(async_env, loop_thread)``.

The whole suite takes under ~30 s per provider with 2 s locks, apart from the
large-object test.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import pytest

from iris_cloud.aio.ports import AsyncMessageBroker
from iris_cloud.claimcheck import POINTER_CLASS, SIZE_PROPERTY
from iris_cloud.errors import (
    AlreadyExists,
    ConfigurationError,
    IrisCloudError,
    LockLost,
    MessageTooLarge,
    NotFound,
    PermissionDenied,
)
from iris_cloud.ports import (
    MAX_SIGNED_URL_EXPIRY,
    Capabilities,
    Message,
    MessageBroker,
    ObjectInfo,
    ObjectStore,
)

if TYPE_CHECKING:
    from iris_cloud.testing.spans import SpanRecorder

__all__ = [
    "HOSTILE",
    "BrokerContract",
    "BrokerContractEnv",
    "StoreContract",
    "StoreContractEnv",
    "large_object_mb",
]


@runtime_checkable
class BrokerContractEnv(Protocol):
    """What a broker provider supplies to :class:`BrokerContract` (fixture ``broker_env``)."""

    def new_queue(self, *, lock_seconds: float = 2.0, max_delivery_count: int = 3) -> str:
        """Create a fresh queue (and its dead-letter queue); return the URL that opens it."""
        ...

    def open(self, url: str, *, claim_check: ObjectStore | None = None) -> MessageBroker:
        """Open ``url`` with full rights (send, receive, settle)."""
        ...

    def claim_check_store(self) -> ObjectStore:
        """A store the claim check may write to and read from."""
        ...

    def open_send_only(self, url: str) -> MessageBroker | None:
        """Open ``url`` with send-only credentials; ``None`` if the provider cannot."""
        ...

    def open_receive_only(self, url: str) -> MessageBroker | None:
        """Open ``url`` with receive-only credentials; ``None`` if the provider cannot."""
        ...


@runtime_checkable
class StoreContractEnv(Protocol):
    """What a store provider supplies to :class:`StoreContract` (fixture ``store_env``)."""

    def new_store(self) -> ObjectStore:
        """A fresh, empty store (container or prefix) with full rights."""
        ...

    def open_write_only(self, store: ObjectStore) -> ObjectStore | None:
        """``store``'s container with write-only credentials; ``None`` if not expressible."""
        ...

    def open_read_only(self, store: ObjectStore) -> ObjectStore | None:
        """``store``'s container with read-only credentials; ``None`` if not expressible."""
        ...


HOSTILE = "HOSTILE-value"
"""A marker that hostile test messages carry in their values: a dead-letter reason
or description that contains it quotes the message."""


def large_object_mb() -> int:
    """Size of the large-object test in MB (``IRIS_CLOUD_CONTRACT_LARGE_MB``, default 64)."""
    return int(os.environ.get("IRIS_CLOUD_CONTRACT_LARGE_MB", "64"))


# -- helpers -------------------------------------------------------------------


def _drain(
    broker: MessageBroker,
    count: int,
    *,
    timeout: float,
    dead_letters: bool = False,
) -> list[Message]:
    """Receive until ``count`` messages arrived or ``timeout`` passed (services cap batches)."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        want = min(10, count - len(got))
        wait = min(1.0, remaining)
        if dead_letters:
            got += broker.receive_dead_letters(max_messages=want, wait=wait)
        else:
            got += broker.receive(max_messages=want, wait=wait)
    return got


def _until_lock_expired(msg: Message, lock_seconds: float, margin: float) -> float:
    """Seconds from now until ``msg``'s lock has certainly expired."""
    if msg.locked_until is not None:
        left = (msg.locked_until - datetime.now(UTC)).total_seconds()
        return max(0.0, left) + margin
    return lock_seconds + margin


class _PatternStream(io.RawIOBase):
    """A readable stream of ``size`` pseudo-random bytes, generated block by block.

    It never holds more than one read's worth, so memory measured around an
    upload is the store's, not the test's. Every 64 KiB block starts with its
    index, so a repeated or dropped block changes the digest. ``fail_after``
    raises mid-stream, as a failing disk or socket would.
    """

    BLOCK = 64 * 1024

    def __init__(self, size: int, *, fail_after: int | None = None) -> None:
        self.size = size
        self.pos = 0
        self.fail_after = fail_after
        self.digest = hashlib.sha256()
        self._base = (hashlib.sha256(b"iris-cloud").digest() * (self.BLOCK // 32))[8:]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise OSError("simulated failure of the upload source")
        n = min(len(buffer), self.size - self.pos)
        filled = 0
        while filled < n:
            index, offset = divmod(self.pos + filled, self.BLOCK)
            block = index.to_bytes(8, "big") + self._base
            take = min(n - filled, self.BLOCK - offset)
            buffer[filled : filled + take] = block[offset : offset + take]
            filled += take
        self.digest.update(buffer[:n])
        self.pos += n
        return n


# -- broker contract -----------------------------------------------------------


class BrokerContract:
    """Conformance tests for a :class:`MessageBroker`; subclass and provide ``broker_env``."""

    lock_seconds: float = 2.0
    """Lock the suite asks for; short so that expiry tests stay quick."""
    max_delivery_count: int = 3
    """Deliveries the suite asks for before the service dead-letters."""
    settle_margin: float = 1.0
    """Seconds added to every wait for a lock or a delay, for slow emulators."""

    @pytest.fixture
    def broker_env(self) -> BrokerContractEnv:
        """Override in the provider's test class (or conftest) with its environment."""
        raise NotImplementedError("provide a `broker_env` fixture implementing BrokerContractEnv")

    @pytest.fixture
    def queue_url(self, broker_env: BrokerContractEnv) -> str:
        return broker_env.new_queue(
            lock_seconds=self.lock_seconds, max_delivery_count=self.max_delivery_count
        )

    @pytest.fixture
    def broker(self, broker_env: BrokerContractEnv, queue_url: str) -> Iterator[MessageBroker]:
        with broker_env.open(queue_url) as b:
            yield b

    def _max_deliveries(self, broker: MessageBroker) -> int:
        return broker.capabilities.max_delivery_count or self.max_delivery_count

    def _receive_one(self, broker: MessageBroker, wait: float = 5.0) -> Message:
        got = broker.receive(max_messages=1, wait=wait)
        assert len(got) == 1, f"expected one message within {wait}s, got {len(got)}"
        return got[0]

    # capabilities ---------------------------------------------------------
    def test_capabilities_sane(self, broker: MessageBroker) -> None:
        caps = broker.capabilities
        assert isinstance(caps, Capabilities)
        assert caps.max_message_bytes > 0
        assert caps.max_batch >= 1
        if caps.max_batch_bytes is not None:
            assert caps.max_batch_bytes >= caps.max_message_bytes
        if caps.max_delivery_count is not None:
            assert caps.max_delivery_count >= 1

    def test_context_manager_and_close(self, broker_env: BrokerContractEnv, queue_url: str) -> None:
        with broker_env.open(queue_url) as b:
            assert isinstance(b, MessageBroker)
            b.send(b"x")
        with broker_env.open(queue_url) as b:
            msg = self._receive_one(b)
            b.complete(msg)

    # send / receive -------------------------------------------------------
    def test_send_receive_complete(self, broker: MessageBroker) -> None:
        ids = broker.send([b"one", "two", Message(body=b"three")])
        assert len(ids) == 3 and len(set(ids)) == 3 and all(ids)
        got = _drain(broker, 3, timeout=10)
        assert sorted(m.body for m in got) == [b"one", b"three", b"two"]
        assert {m.message_id for m in got} == set(ids)
        for m in got:
            assert m.delivery_count >= 1
            assert m.enqueued_at is not None and m.enqueued_at.tzinfo is not None
            assert abs((datetime.now(UTC) - m.enqueued_at).total_seconds()) < 120
            broker.complete(m)
        assert broker.receive(max_messages=10, wait=0.5) == []

    def test_send_single_returns_one_id(self, broker: MessageBroker) -> None:
        ids = broker.send(Message(body=b"x", message_id="fixed-id-1"))
        assert ids == ["fixed-id-1"]
        msg = self._receive_one(broker)
        assert msg.message_id == "fixed-id-1"
        broker.complete(msg)

    def test_headers_round_trip(self, broker: MessageBroker) -> None:
        sent = Message(
            body=b'{"a": 1}',
            message_id="msg-42",
            correlation_id="corr-7",
            content_type="application/json; charset=utf-8",
            subject="OrderEvent",
            properties={"kind": "event", "version": "2.3.1"},
        )
        broker.send(sent)
        msg = self._receive_one(broker)
        assert msg.body == sent.body
        assert msg.message_id == "msg-42"
        assert msg.correlation_id == "corr-7"
        assert msg.content_type == "application/json; charset=utf-8"
        assert msg.subject == "OrderEvent"
        assert msg.properties == {"kind": "event", "version": "2.3.1"}
        broker.complete(msg)

    def test_typed_properties_round_trip(self, broker: MessageBroker) -> None:
        props: dict[str, str | int | float | bool] = {
            "s": "text",
            "i": 42,
            "neg": -7,
            "f": 2.5,
            "t": True,
            "n": False,
        }
        broker.send(Message(body=b"x", properties=props))
        msg = self._receive_one(broker)
        assert msg.properties == props
        for key, value in props.items():
            assert type(msg.properties[key]) is type(value), key
        broker.complete(msg)

    def test_unicode_headers_and_body(self, broker: MessageBroker) -> None:
        body = "Ärztin Zoë — 眼底 📷".encode()
        broker.send(
            Message(
                body=body,
                correlation_id="Zoë-眼底",
                subject="Befund für Ünal",
                content_type="text/plain; charset=utf-8",
                properties={"patient_name": "José Ñúñez 山田", "emoji": "👁️"},
            )
        )
        msg = self._receive_one(broker)
        assert msg.body == body
        assert msg.correlation_id == "Zoë-眼底"
        assert msg.subject == "Befund für Ünal"
        assert msg.properties == {"patient_name": "José Ñúñez 山田", "emoji": "👁️"}
        broker.complete(msg)

    def test_empty_body(self, broker: MessageBroker) -> None:
        broker.send(Message(body=b"", content_type=None))
        msg = self._receive_one(broker)
        assert msg.body == b""
        broker.complete(msg)

    def test_binary_body(self, broker: MessageBroker) -> None:
        body = bytes(range(256)) * 4
        broker.send(Message(body=body, content_type="application/octet-stream"))
        msg = self._receive_one(broker)
        assert msg.body == body
        assert msg.content_type == "application/octet-stream"
        broker.complete(msg)

    def test_receive_waits_then_returns_empty(self, broker: MessageBroker) -> None:
        start = time.monotonic()
        assert broker.receive(max_messages=5, wait=1.0) == []
        # A long poll that returns at once would make consumers spin.
        assert time.monotonic() - start >= 0.5

    def test_receive_wakes_for_message_sent_while_waiting(
        self, broker_env: BrokerContractEnv, broker: MessageBroker, queue_url: str
    ) -> None:
        sender = broker_env.open(queue_url)

        def send_later() -> None:
            time.sleep(0.5)
            sender.send(b"late")

        t = threading.Thread(target=send_later)
        t.start()
        try:
            got = broker.receive(max_messages=1, wait=10.0)
        finally:
            t.join()
            sender.close()
        assert [m.body for m in got] == [b"late"]
        broker.complete(got[0])

    def test_max_messages_respected(self, broker: MessageBroker) -> None:
        broker.send([f"m{i}" for i in range(5)])
        time.sleep(0.2)
        first = broker.receive(max_messages=2, wait=5.0)
        assert 1 <= len(first) <= 2
        rest = _drain(broker, 5 - len(first), timeout=10)
        assert len(first) + len(rest) == 5
        for m in first + rest:
            broker.complete(m)

    # peek-lock ------------------------------------------------------------
    def test_peek_lock_hides_message(self, broker: MessageBroker) -> None:
        broker.send(b"locked")
        msg = self._receive_one(broker)
        assert broker.receive(max_messages=1, wait=0.5) == []
        broker.complete(msg)
        assert broker.receive(max_messages=1, wait=0.5) == []

    def test_lock_expiry_redelivers(self, broker: MessageBroker) -> None:
        broker.send(b"expire")
        first = self._receive_one(broker)
        wait = _until_lock_expired(first, self.lock_seconds, self.settle_margin)
        again = self._receive_one(broker, wait=wait + 5)
        assert again.message_id == first.message_id
        assert again.body == b"expire"
        if broker.capabilities.delivery_count_exact:
            assert again.delivery_count == first.delivery_count + 1
        else:
            assert again.delivery_count >= first.delivery_count
        broker.complete(again)

    def test_abandon_redelivers(self, broker: MessageBroker) -> None:
        broker.send(b"retry")
        first = self._receive_one(broker)
        broker.abandon(first)
        again = self._receive_one(broker, wait=5 + self.settle_margin)
        assert again.message_id == first.message_id
        if broker.capabilities.delivery_count_exact:
            assert again.delivery_count == first.delivery_count + 1
        broker.complete(again)

    def test_abandon_with_delay(self, broker: MessageBroker) -> None:
        if not broker.capabilities.delayed_retry:
            pytest.skip("provider does not support delayed retry (capabilities.delayed_retry)")
        delay = 2.0
        broker.send(b"later")
        first = self._receive_one(broker)
        start = time.monotonic()
        broker.abandon(first, delay=delay)
        assert broker.receive(max_messages=1, wait=delay / 2) == []
        again = self._receive_one(broker, wait=delay + 5 + self.settle_margin)
        assert time.monotonic() - start >= delay * 0.8
        assert again.message_id == first.message_id
        broker.complete(again)

    def test_renew_lock(self, broker: MessageBroker) -> None:
        if not broker.capabilities.lock_renewal:
            pytest.skip("provider cannot renew locks (capabilities.lock_renewal)")
        broker.send(b"long job")
        msg = self._receive_one(broker)
        original = _until_lock_expired(msg, self.lock_seconds, 0.0)
        time.sleep(original * 0.6)
        renewed = broker.renew_lock(msg)
        if renewed is not None:
            assert renewed.tzinfo is not None
            assert renewed > datetime.now(UTC)
        # Now past the original expiry: still held by us.
        time.sleep(original * 0.6)
        assert broker.receive(max_messages=1, wait=0) == []
        broker.complete(msg)
        assert broker.receive(max_messages=1, wait=0.5) == []

    # batch settlement -----------------------------------------------------
    def test_complete_many_completes_all(self, broker: MessageBroker) -> None:
        # More than one SQS batch (10) and one call of any other service's.
        bodies = sorted(f"many-{i:02}".encode() for i in range(12))
        broker.send(bodies)
        got = _drain(broker, len(bodies), timeout=10)
        assert sorted(m.body for m in got) == bodies
        assert broker.complete_many(got) == [None] * len(bodies)
        assert broker.complete_many([]) == []
        # Gone, not hidden: nothing comes back once the locks would have run out.
        wait = self.lock_seconds + self.settle_margin
        assert broker.receive(max_messages=10, wait=wait) == []

    def test_abandon_many_brings_back(self, broker: MessageBroker) -> None:
        broker.send([b"back-1", b"back-2", b"done"])
        got = {m.body: m for m in _drain(broker, 3, timeout=10)}
        broker.complete(got[b"done"])
        outcomes = broker.abandon_many([got[b"done"], got[b"back-1"], got[b"back-2"]])
        assert len(outcomes) == 3
        # A service may accept settling a settled message silently; if it says, it is LockLost.
        assert outcomes[0] is None or isinstance(outcomes[0], LockLost), outcomes[0]
        assert outcomes[1:] == [None, None]
        again = _drain(broker, 2, timeout=5 + self.settle_margin)
        assert sorted(m.body for m in again) == [b"back-1", b"back-2"]
        assert broker.complete_many(again) == [None, None]
        assert broker.receive(max_messages=10, wait=0.5) == []

    def test_complete_many_reports_each_without_losing_the_others(
        self, broker: MessageBroker
    ) -> None:
        broker.send(b"stale")
        stale = self._receive_one(broker)
        wait = _until_lock_expired(stale, self.lock_seconds, self.settle_margin)
        fresh = self._receive_one(broker, wait=wait + 5)
        assert fresh.message_id == stale.message_id
        broker.send([b"done", b"one", b"two"])
        got = {m.body: m for m in _drain(broker, 3, timeout=10)}
        broker.complete(got[b"done"])
        batch = [stale, got[b"done"], got[b"one"], fresh, got[b"two"]]
        outcomes = broker.complete_many(batch)
        assert len(outcomes) == len(batch)
        for settled_before in (outcomes[0], outcomes[1]):
            assert settled_before is None or isinstance(settled_before, LockLost), settled_before
        assert [outcomes[2], outcomes[3], outcomes[4]] == [None, None, None]
        # The live ones were completed, whatever their neighbours did.
        wait = self.lock_seconds + self.settle_margin
        assert broker.receive(max_messages=10, wait=wait) == []

    # dead letters ---------------------------------------------------------
    def test_dead_letter_with_reason(self, broker: MessageBroker) -> None:
        broker.send(Message(body=b"poison", subject="Bad", properties={"k": "v"}))
        msg = self._receive_one(broker)
        broker.dead_letter(msg, "ValidationFailed", "ClientGuid: field required")
        assert broker.receive(max_messages=1, wait=0.5) == []
        dead = _drain(broker, 1, timeout=10, dead_letters=True)
        assert len(dead) == 1
        d = dead[0]
        assert d.message_id == msg.message_id
        assert d.body == b"poison"
        assert d.subject == "Bad"
        assert d.properties.get("k") == "v"
        assert d.dead_letter_reason == "ValidationFailed"
        assert d.dead_letter_description == "ClientGuid: field required"
        broker.complete(d)
        assert broker.receive_dead_letters(max_messages=1, wait=0.5) == []

    def test_max_delivery_dead_letters(self, broker: MessageBroker) -> None:
        broker.send(b"always fails")
        limit = self._max_deliveries(broker)
        seen = []
        for _ in range(limit):
            msg = self._receive_one(broker, wait=5 + self.settle_margin)
            seen.append(msg.delivery_count)
            broker.abandon(msg)
        if broker.capabilities.delivery_count_exact:
            assert seen == list(range(1, limit + 1))
        assert broker.receive(max_messages=1, wait=1.0 + self.settle_margin) == []
        dead = _drain(broker, 1, timeout=10, dead_letters=True)
        assert [d.body for d in dead] == [b"always fails"]
        broker.complete(dead[0])

    def test_receive_dead_letters_empty(self, broker: MessageBroker) -> None:
        assert broker.receive_dead_letters(max_messages=5, wait=0.2) == []

    def test_renew_lock_of_a_dead_letter(self, broker: MessageBroker) -> None:
        # What a dead-letter sweep longer than the lock does to the letters it holds.
        if not broker.capabilities.lock_renewal:
            pytest.skip("provider cannot renew locks (capabilities.lock_renewal)")
        broker.send(b"dead")
        [msg] = _drain(broker, 1, timeout=10)
        broker.dead_letter(msg, "Reason")
        [dead] = _drain(broker, 1, timeout=10, dead_letters=True)
        until = broker.renew_lock(dead)
        assert until is None or until.tzinfo is not None
        broker.complete(dead)
        assert broker.receive_dead_letters(max_messages=1, wait=0.5) == []

    def test_dead_letter_tooling_replays_and_purges(self, broker: MessageBroker) -> None:
        # What ``iris-cloud deadletters`` runs: built on the port, so it must work here.
        from iris_cloud.deadletters import SweepReport, browse, purge, replay, select

        sent = [
            Message(body=b"one", correlation_id="c1", subject="S", properties={"k": "v", "n": 2}),
            Message(body=b"two"),
        ]
        broker.send(sent)
        for msg in _drain(broker, 2, timeout=10):
            broker.dead_letter(msg, f"Reason{msg.body.decode()}", "desc")
        wait = 0.5  # each sweep ends with one empty receive of this wait

        def swept(
            sweep: Callable[[], SweepReport], enough: Callable[[SweepReport], bool]
        ) -> SweepReport:
            # A message a sweep gave back may show again only after a moment
            # (more on a loaded machine than one short receive waits): sweep
            # again until it has been seen. Nothing a sweep misses is changed.
            deadline = time.monotonic() + 10
            while not enough(report := sweep()):
                assert time.monotonic() < deadline, f"swept: {report}"
            return report

        listed = swept(lambda: browse(broker, wait=wait), lambda r: r.seen >= 2).messages
        assert len(listed) == 2
        by_body = {m.body: m for m in listed}
        assert by_body[b"one"].dead_letter_reason == "Reasonone"
        which = select([by_body[b"one"].message_id])
        report = swept(lambda: replay(broker, which, wait=wait), lambda r: r.selected >= 1)
        assert (report.selected, report.done, report.left) == (1, 1, 0)
        [back] = _drain(broker, 1, timeout=10)
        assert (back.body, back.correlation_id, back.subject) == (b"one", "c1", "S")
        assert back.message_id == by_body[b"one"].message_id
        assert back.properties.get("k") == "v" and back.properties.get("n") == 2
        broker.complete(back)
        left = swept(lambda: browse(broker, wait=wait), lambda r: r.seen >= 1).messages
        assert [m.body for m in left] == [b"two"]
        assert swept(lambda: purge(broker, wait=wait), lambda r: r.seen >= 1).done == 1
        assert broker.receive_dead_letters(max_messages=5, wait=0.5) == []

    # batching and size ----------------------------------------------------
    def _spy_batches(self, broker: MessageBroker) -> list[list[Message]]:
        """Record the batches the base class hands to the provider (calls pass through)."""
        calls: list[list[Message]] = []
        port = getattr(broker, "port", None)
        if isinstance(port, AsyncMessageBroker):
            # An async port behind a blocking facade: its own base class batches.
            forward = port._send_batch

            async def arecording(batch: list[Message]) -> None:
                calls.append(list(batch))
                await forward(batch)

            port._send_batch = arecording  # type: ignore[method-assign]
            return calls
        original = broker._send_batch

        def recording(batch: list[Message]) -> None:
            calls.append(list(batch))
            original(batch)

        broker._send_batch = recording  # type: ignore[method-assign]
        return calls

    def test_batch_split_by_count(self, broker: MessageBroker) -> None:
        caps = broker.capabilities
        n = caps.max_batch + 3
        calls = self._spy_batches(broker)
        ids = broker.send([f"n{i}".encode() for i in range(n)])
        assert len(ids) == n
        assert len(calls) >= 2 and all(len(c) <= caps.max_batch for c in calls)
        got = _drain(broker, n, timeout=30)
        assert {m.message_id for m in got} == set(ids)
        for m in got:
            broker.complete(m)

    def test_batch_split_by_bytes(self, broker: MessageBroker) -> None:
        caps = broker.capabilities
        if caps.max_batch_bytes is None:
            pytest.skip("provider has no per-batch byte limit (capabilities.max_batch_bytes)")
        each = min(caps.max_message_bytes, caps.max_batch_bytes) // 2 - 1024
        n = min(caps.max_batch, caps.max_batch_bytes // each + 1)
        if n * each <= caps.max_batch_bytes:
            pytest.skip("max_batch messages of half the size limit fit one batch")
        calls = self._spy_batches(broker)
        ids = broker.send([Message(body=bytes([i % 256]) * each) for i in range(n)])
        assert len(calls) >= 2
        for c in calls:
            assert sum(m.size for m in c) <= caps.max_batch_bytes
        got = _drain(broker, n, timeout=30)
        assert {m.message_id for m in got} == set(ids)
        for m in got:
            assert len(m.body) == each
            broker.complete(m)

    def test_largest_plain_message(self, broker: MessageBroker) -> None:
        # Just under the limit must go as a normal message, with properties counted.
        props: dict[str, str | int | float | bool] = {"p": "v"}
        body = b"x" * (broker.capabilities.max_message_bytes - 2 - 1024)
        broker.send(Message(body=body, properties=props))
        msg = self._receive_one(broker)
        assert msg.body == body
        assert msg.properties == props
        broker.complete(msg)

    def test_too_large_without_claim_check(self, broker: MessageBroker) -> None:
        body = b"x" * (broker.capabilities.max_message_bytes + 1)
        with pytest.raises(MessageTooLarge):
            broker.send(body)
        assert broker.receive(max_messages=1, wait=0.3) == []

    def test_claim_check_round_trip(self, broker_env: BrokerContractEnv, queue_url: str) -> None:
        store = broker_env.claim_check_store()
        with broker_env.open(queue_url, claim_check=store) as b:
            body = os.urandom(b.capabilities.max_message_bytes + 10)
            b.send(Message(body=body, subject="Result", properties={"kind": "result"}))
            msg = self._receive_one(b)
            assert msg.body == body
            assert msg.subject == "Result"
            assert msg.properties == {"kind": "result"}
            b.complete(msg)

    def test_claim_check_payload_lifecycle_on_complete(
        self, broker_env: BrokerContractEnv, queue_url: str
    ) -> None:
        """The payload is deleted at completion only if asked and nobody else can need it."""
        store = broker_env.claim_check_store()
        before = {o.name for o in store.list()}
        for delete in (False, True):
            with broker_env.open(queue_url, claim_check=store) as b:
                b.claim_check_delete = delete
                b.send(Message(body=os.urandom(b.capabilities.max_message_bytes + 10)))
                (payload,) = {o.name for o in store.list()} - before
                msg = self._receive_one(b)
                assert msg.claim_check_name == payload
                b.complete(msg)
                gone = delete and b.capabilities.completes_for_all
                assert store.exists(payload) is not gone
                if not gone:
                    store.delete(payload)

    def test_claim_check_payload_gone_is_dead_lettered(
        self, broker_env: BrokerContractEnv, queue_url: str
    ) -> None:
        store = broker_env.claim_check_store()
        before = {o.name for o in store.list()}
        with broker_env.open(queue_url, claim_check=store) as b:
            b.send(Message(body=os.urandom(b.capabilities.max_message_bytes + 10)))
            (payload,) = {o.name for o in store.list()} - before
            store.delete(payload)
            b.send(b"small and fine")
            got = _drain(b, 1, timeout=10)
            # The lost payload is not handed out; the next message still is.
            assert [m.body for m in got] == [b"small and fine"]
            b.complete(got[0])
            dead = _drain(b, 1, timeout=10, dead_letters=True)
            assert [d.dead_letter_reason for d in dead] == ["ClaimCheckFailed"]
            # The failure's class, never a value from the message (the key is the sender's).
            assert dead[0].dead_letter_description == "NotFound"
            b.complete(dead[0])

    def test_claim_check_bad_pointer_is_dead_lettered(
        self, broker_env: BrokerContractEnv, queue_url: str
    ) -> None:
        with broker_env.open(queue_url) as plain:
            plain.send(Message(body=b"not a pointer", properties={"ExtendedPayloadSize": 10}))
        with broker_env.open(queue_url, claim_check=broker_env.claim_check_store()) as b:
            assert b.receive(max_messages=1, wait=5) == []
            dead = _drain(b, 1, timeout=10, dead_letters=True)
            assert [d.body for d in dead] == [b"not a pointer"]
            assert dead[0].dead_letter_reason == "ClaimCheckFailed"
            b.complete(dead[0])

    def test_hostile_claim_check_pointers_cost_no_other_message(
        self, broker_env: BrokerContractEnv, queue_url: str
    ) -> None:
        store = broker_env.claim_check_store()
        cap = 4096
        store.put("fits", b"the payload")
        store.put("too-big", b"x" * (cap + 1))
        bucket, prefix = store.container, store.prefix

        def pointer(fields: object, size: int = 10) -> Message:
            body = json.dumps([POINTER_CLASS, fields]).encode()
            return Message(body=body, properties={SIZE_PROPERTY: size})

        hostile = {
            "nested": Message(body=b"[" * 100_000 + b"]" * 100_000, properties={SIZE_PROPERTY: 10}),
            "other bucket": pointer({"s3BucketName": f"{HOSTILE}-bucket", "s3Key": "fits"}),
            "dot-dot": pointer({"s3BucketName": bucket, "s3Key": f"{prefix}../{HOSTILE}"}),
            "absolute": pointer({"s3BucketName": bucket, "s3Key": f"{prefix}/{HOSTILE}"}),
            "non-string key": pointer({"s3BucketName": bucket, "s3Key": 12345}),
            "reserved key": pointer({"s3BucketName": bucket, "s3Key": f"{prefix}.iris-cloud/x"}),
            "control characters": pointer({"s3BucketName": bucket, "s3Key": f"{prefix}a\nb"}),
            "declared over the cap": pointer(
                {"s3BucketName": bucket, "s3Key": f"{prefix}fits"}, size=cap + 1
            ),
            "payload over the cap": pointer({"s3BucketName": bucket, "s3Key": f"{prefix}too-big"}),
            "not a size": Message(body=b"[]", properties={SIZE_PROPERTY: HOSTILE}),
        }
        if prefix:
            hostile["outside the prefix"] = pointer({"s3BucketName": bucket, "s3Key": "fits"})
        with broker_env.open(queue_url) as plain:
            plain.send(b"good before")
            plain.send(list(hostile.values()))
            # A pointer written by another client names the full key: it is followed.
            plain.send(pointer({"s3BucketName": bucket, "s3Key": f"{prefix}fits"}))
            plain.send(b"good after")
        with broker_env.open(queue_url, claim_check=store) as b:
            b.claim_check_max_bytes = cap
            good, dead = self._separate(b, 3, len(hostile))
            assert sorted(m.body for m in good) == [b"good after", b"good before", b"the payload"]
            assert len(dead) == len(hostile)
            for d in dead:
                assert d.dead_letter_reason == "ClaimCheckFailed"
                assert HOSTILE not in (d.dead_letter_description or "")
                b.complete(d)

    def test_undecodable_messages_cost_no_other_message(
        self, broker_env: BrokerContractEnv, queue_url: str
    ) -> None:
        send_undecodable = getattr(broker_env, "send_undecodable", None)
        if send_undecodable is None:
            pytest.skip("the environment has no send_undecodable hook")
        with broker_env.open(queue_url) as b:
            b.send(b"good before")
            cases = send_undecodable(queue_url)
            assert cases, "send_undecodable sent nothing"
            b.send(b"good after")
            good, dead = self._separate(b, 2, len(cases))
            assert sorted(m.body for m in good) == [b"good after", b"good before"], cases
            assert len(dead) == len(cases), cases
            for d in dead:
                assert d.dead_letter_reason == "DecodeFailed"
                description = d.dead_letter_description or ""
                assert description.isidentifier(), description  # a class name, no values
                b.complete(d)

    def _separate(
        self, broker: MessageBroker, good: int, bad: int
    ) -> tuple[list[Message], list[Message]]:
        """Receive until ``good`` messages arrived and ``bad`` ones reached the dead letters."""
        got: list[Message] = []
        dead: list[Message] = []
        deadline = time.monotonic() + 20 + self.settle_margin
        while time.monotonic() < deadline and (len(got) < good or len(dead) < bad):
            for msg in broker.receive(max_messages=10, wait=0.5):
                got.append(msg)
                broker.complete(msg)
            if len(dead) < bad:
                dead += broker.receive_dead_letters(max_messages=10, wait=0.2)
        return got, dead

    # tracing --------------------------------------------------------------
    def test_trace_context_survives(
        self, broker_env: BrokerContractEnv, queue_url: str, spans: SpanRecorder
    ) -> None:
        """traceparent / tracestate written at send arrive as they were, claim-checked too."""
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

        from iris_cloud.tracing import trace_context

        trace_id, span_id = 0x5B8EFFF798038103D269B633813FC60C, 0xEEE19B7EC3C1B174
        parent = SpanContext(
            trace_id,
            span_id,
            is_remote=True,
            trace_flags=TraceFlags(1),
            trace_state=TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")]),
        )
        # The properties an IRIS event carries, so that SQS's 10 attributes are tried too.
        iris: dict[str, str | int | float | bool] = {
            "MessageType": "OrderGradedEvent",
            "TransactionId": "tx-1",
            "OrderLocalId": "o1",
        }
        store = broker_env.claim_check_store()
        with broker_env.open(queue_url, claim_check=store) as b:
            large = os.urandom(b.capabilities.max_message_bytes + 10)
            with trace.use_span(NonRecordingSpan(parent)):
                ids = b.send(
                    [
                        Message(b"{}", subject="OrderGradedEvent", properties=iris),
                        Message(large, subject="OrderGradedEvent", properties=iris),
                    ]
                )
            sends = {(s.attributes or {})["messaging.message.id"]: s for s in spans.named("send")}
            assert set(sends) == set(ids)
            got = {m.message_id: m for m in _drain(b, 2, timeout=10)}
            assert set(got) == set(ids)
            for mid, msg in got.items():
                send = sends[mid]
                assert send.parent is not None and send.parent.span_id == span_id
                assert send.attributes is not None
                assert send.attributes["iris.message.kind"] == "event:OrderGradedEvent"
                assert send.attributes["messaging.system"]
                assert msg.properties["traceparent"] == (
                    f"00-{trace_id:032x}-{send.context.span_id:016x}-01"
                )
                assert msg.properties["tracestate"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
                assert {k: msg.properties[k] for k in iris} == iris
                context = trace_context(msg)
                assert context is not None
                carried = trace.get_current_span(context).get_span_context()
                assert (carried.trace_id, carried.span_id) == (trace_id, send.context.span_id)
                b.complete(msg)
            assert got[ids[1]].body == large

    # peek -------------------------------------------------------------------
    def test_peek_takes_nothing(self, broker: MessageBroker) -> None:
        if not broker.capabilities.peek:
            with pytest.raises(ConfigurationError, match="cannot peek"):
                broker.peek()
            return
        assert broker.peek(10) == []
        broker.send([Message(body=b"first", properties={"n": 1}), b"second"])
        for _ in range(3):
            peeked = broker.peek(10)
            assert [m.body for m in peeked] == [b"first", b"second"]
        assert peeked[0].properties == {"n": 1}
        assert {m.delivery_count for m in peeked} == {0}
        with pytest.raises(ConfigurationError):
            broker.complete(peeked[0])
        # Nothing was locked or counted: both arrive now, each on its first delivery.
        got = _drain(broker, 2, timeout=10)
        assert sorted(m.body for m in got) == [b"first", b"second"]
        assert [m.delivery_count for m in got] == [1, 1]
        # Held messages are still there to see (Service Bus counts a delivery
        # only when the lock is given up, so the count is not compared).
        assert sorted(m.body for m in broker.peek(10)) == [b"first", b"second"]
        for m in got:
            broker.complete(m)
        assert broker.peek(10) == []

    # permissions ----------------------------------------------------------
    def test_send_only_cannot_receive(self, broker_env: BrokerContractEnv, queue_url: str) -> None:
        b = broker_env.open_send_only(queue_url)
        if b is None:
            pytest.skip("provider cannot open a send-only endpoint")
        with b:
            b.send(b"allowed")
            with pytest.raises(PermissionDenied) as exc:
                b.receive(max_messages=1, wait=0.2)
            assert exc.value.right == "receive"
            assert "receive" in str(exc.value)
            if b.capabilities.peek:
                with pytest.raises(PermissionDenied) as exc:
                    b.peek()
                assert exc.value.right == "receive"
        with broker_env.open(queue_url) as full:
            msg = self._receive_one(full)
            assert msg.body == b"allowed"
            full.complete(msg)

    def test_receive_only_cannot_send(self, broker_env: BrokerContractEnv, queue_url: str) -> None:
        b = broker_env.open_receive_only(queue_url)
        if b is None:
            pytest.skip("provider cannot open a receive-only endpoint")
        with broker_env.open(queue_url) as full:
            full.send(b"for the reader")
        with b:
            with pytest.raises(PermissionDenied) as exc:
                b.send(b"not allowed")
            assert exc.value.right == "send"
            assert "send" in str(exc.value)
            msg = self._receive_one(b)
            assert msg.body == b"for the reader"
            b.complete(msg)


# -- store contract --------------------------------------------------------------


class StoreContract:
    """Conformance tests for an :class:`ObjectStore`; subclass and provide ``store_env``."""

    list_objects: int = 12
    """Objects the listing test creates; envs set a smaller page size to test paging."""
    large_object_in_constant_memory: bool = True
    """``False`` for stores that hold objects in memory (the large test then skips)."""
    large_object_peak_mb: int = 32
    """Most Python heap (tracemalloc peak) a large put or get may use."""
    watch_poll_interval: float = 0.1
    settle_margin: float = 1.0
    unicode_metadata: ClassVar[dict[str, str]] = {
        "patient": "José Ñúñez 山田",
        "note": "Ärztin — ok ✓",
    }
    """Metadata of the unicode test; a test server with narrower headers may narrow it."""

    @pytest.fixture
    def store_env(self) -> StoreContractEnv:
        """Override in the provider's test class (or conftest) with its environment."""
        raise NotImplementedError("provide a `store_env` fixture implementing StoreContractEnv")

    @pytest.fixture
    def store(self, store_env: StoreContractEnv) -> Iterator[ObjectStore]:
        with store_env.new_store() as s:
            yield s

    # capabilities ---------------------------------------------------------
    def test_capabilities_sane(self, store: ObjectStore) -> None:
        caps = store.capabilities
        assert isinstance(caps, Capabilities)
        assert caps.can_read and caps.can_write and caps.can_list
        assert isinstance(store.container, str) and store.container

    # put / get ------------------------------------------------------------
    def test_put_get_info_exists_delete(self, store: ObjectStore) -> None:
        info = store.put("a/b/report.pdf", b"%PDF-1.7 data", content_type="application/pdf")
        assert isinstance(info, ObjectInfo)
        assert info.name == "a/b/report.pdf" and info.size == 13
        assert store.get("a/b/report.pdf") == b"%PDF-1.7 data"
        got = store.info("a/b/report.pdf")
        assert got.name == "a/b/report.pdf"
        assert got.size == 13
        assert got.content_type == "application/pdf"
        assert got.etag
        assert got.last_modified is not None and got.last_modified.tzinfo is not None
        assert abs((datetime.now(UTC) - got.last_modified).total_seconds()) < 120
        assert store.exists("a/b/report.pdf")
        store.delete("a/b/report.pdf")
        assert not store.exists("a/b/report.pdf")
        assert list(store.list()) == []

    def test_missing_object(self, store: ObjectStore, tmp_path: Path) -> None:
        assert not store.exists("nope.bin")
        with pytest.raises(NotFound):
            store.get("nope.bin")
        with pytest.raises(NotFound):
            store.info("nope.bin")
        with pytest.raises(NotFound):
            store.open_read("nope.bin").close()
        with pytest.raises(NotFound):
            store.delete("nope.bin")
        downloads = tmp_path / "contract-downloads"
        downloads.mkdir()
        with pytest.raises(NotFound):
            store.download_to("nope.bin", downloads / "out.bin")
        # No partial or temporary file is left behind.
        assert list(downloads.iterdir()) == []

    def test_conditional_create(self, store: ObjectStore) -> None:
        if not store.capabilities.conditional_create:
            pytest.skip("the service does not enforce put(overwrite=False) (conditional_create)")
        store.put("img.jpg", b"first", content_type="image/jpeg", metadata={"v": "1"})
        with pytest.raises(AlreadyExists):
            store.put("img.jpg", b"second", content_type="text/plain")
        assert store.get("img.jpg") == b"first"
        info = store.info("img.jpg")
        assert info.content_type == "image/jpeg"
        assert dict(info.metadata) == {"v": "1"}

    def test_overwrite_replaces(self, store: ObjectStore) -> None:
        first = store.put("doc.txt", b"first", content_type="text/plain", metadata={"v": "1"})
        second = store.put(
            "doc.txt", b"second!", content_type="text/markdown", metadata={"w": "2"}, overwrite=True
        )
        assert store.get("doc.txt") == b"second!"
        info = store.info("doc.txt")
        assert info.size == 7
        assert info.content_type == "text/markdown"
        assert dict(info.metadata) == {"w": "2"}
        # Pollers (``watch``) and caches tell versions apart by etag.
        assert info.etag and first.etag and info.etag != first.etag
        assert second.size == 7

    def test_overwrite_true_creates_missing(self, store: ObjectStore) -> None:
        store.put("new.bin", b"n", overwrite=True)
        assert store.get("new.bin") == b"n"

    def test_metadata_and_content_type(self, store: ObjectStore) -> None:
        meta = {"client_guid": "0b3c5a5e-9f2a-4d4e-8a0c-3f0d4c3b2a1f", "laterality": "OD"}
        store.put("eye.dcm", b"DICM", content_type="application/dicom", metadata=meta)
        info = store.info("eye.dcm")
        assert info.content_type == "application/dicom"
        assert dict(info.metadata) == meta
        listed = [o for o in store.list() if o.name == "eye.dcm"]
        assert len(listed) == 1 and listed[0].size == 4

    def test_no_content_type_no_metadata(self, store: ObjectStore) -> None:
        store.put("plain", b"p")
        info = store.info("plain")
        assert dict(info.metadata) == {}
        # Services default differently; any string or None is fine, but it must not fail.
        assert info.content_type is None or isinstance(info.content_type, str)

    def test_unicode_names_and_metadata(self, store: ObjectStore) -> None:
        name = "bilder/Zoë Ñúñez/眼底 📷 #1 ?&=+.jpg"
        meta = self.unicode_metadata
        store.put(name, b"jpeg", content_type="image/jpeg", metadata=meta)
        assert store.get(name) == b"jpeg"
        info = store.info(name)
        assert info.name == name
        assert dict(info.metadata) == meta
        assert [o.name for o in store.list("bilder/")] == [name]
        assert store.exists(name)
        store.delete(name)
        assert not store.exists(name)

    def test_empty_object(self, store: ObjectStore, tmp_path: Path) -> None:
        store.put("empty", b"")
        assert store.get("empty") == b""
        assert store.info("empty").size == 0
        store.download_to("empty", tmp_path / "e")
        assert (tmp_path / "e").read_bytes() == b""

    def test_put_from_file_object_and_path(self, store: ObjectStore, tmp_path: Path) -> None:
        data = os.urandom(300_000)
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        store.put("from-path", src)
        with src.open("rb") as fh:
            store.put("from-file", fh)
        store.put("from-stream", io.BufferedReader(_PatternStream(100_000)))
        store.put("from-bytearray", bytearray(b"ba"))
        assert store.get("from-path") == data
        assert store.get("from-file") == data
        assert store.info("from-stream").size == 100_000
        assert store.get("from-bytearray") == b"ba"

    def test_open_read_streams(self, store: ObjectStore) -> None:
        data = os.urandom(1_000_000)
        store.put("stream.bin", data)
        parts = []
        with store.open_read("stream.bin") as fh:
            while chunk := fh.read(65536):
                parts.append(chunk)
        assert b"".join(parts) == data
        assert len(parts) >= 2

    def test_download_to(self, store: ObjectStore, tmp_path: Path) -> None:
        data = os.urandom(200_000)
        store.put("dl/x.bin", data, content_type="application/octet-stream")
        target = tmp_path / "nested" / "x.bin"
        info = store.download_to("dl/x.bin", target)
        assert target.read_bytes() == data
        assert info.size == len(data)
        assert sorted(p.name for p in target.parent.iterdir()) == ["x.bin"]

    def test_failed_upload_leaves_nothing(self, store: ObjectStore) -> None:
        source = io.BufferedReader(_PatternStream(3_000_000, fail_after=1_000_000))
        with pytest.raises((OSError, IrisCloudError)):
            store.put("partial.bin", source)
        assert not store.exists("partial.bin")
        assert [o.name for o in store.list()] == []

    # listing ----------------------------------------------------------------
    def test_list_prefix_order_and_pages(self, store: ObjectStore) -> None:
        names = [f"orders/{i:03d}.json" for i in range(self.list_objects)]
        names += ["orders-archive/x.json", "images/b.jpg", "images/a.jpg", "top.txt"]
        for i, name in enumerate(names):
            store.put(name, b"x" * i)
        everything = list(store.list())
        assert [o.name for o in everything] == sorted(names)
        sizes = {o.name: o.size for o in everything}
        assert sizes == {name: i for i, name in enumerate(names)}
        assert [o.name for o in store.list("orders/")] == sorted(
            n for n in names if n.startswith("orders/")
        )
        assert [o.name for o in store.list("orders")] == sorted(
            n for n in names if n.startswith("orders")
        )
        assert [o.name for o in store.list("images/a")] == ["images/a.jpg"]
        assert list(store.list("nothing/")) == []

    def test_list_is_lazy_iterator(self, store: ObjectStore) -> None:
        store.put("one", b"1")
        it = store.list()
        assert iter(it) is it
        assert next(it).name == "one"

    # names ----------------------------------------------------------------
    @pytest.mark.parametrize(
        "name",
        ["../escape", "a/../../escape", "/etc/passwd", "a\\b", "a\x00b", "", "./a", "a//../b"],
    )
    def test_names_escaping_root_rejected(self, store: ObjectStore, name: str) -> None:
        with pytest.raises(ConfigurationError):
            store.put(name, b"x")
        with pytest.raises(ConfigurationError):
            store.get(name)
        with pytest.raises(ConfigurationError):
            store.delete(name)
        assert list(store.list()) == []

    # large objects ----------------------------------------------------------
    def test_large_object_constant_memory(self, store: ObjectStore, tmp_path: Path) -> None:
        if not self.large_object_in_constant_memory:
            pytest.skip("this store keeps objects in memory; constant memory does not apply")
        size = large_object_mb() * 1024 * 1024
        source = _PatternStream(size)
        tracemalloc.start()
        try:
            store.put("large.bin", io.BufferedReader(source, 1024 * 1024))
            _, put_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            digest = hashlib.sha256()
            read = 0
            with store.open_read("large.bin") as fh:
                while chunk := fh.read(1024 * 1024):
                    digest.update(chunk)
                    read += len(chunk)
            _, get_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert read == size
        assert digest.hexdigest() == source.digest.hexdigest()
        assert store.info("large.bin").size == size
        limit = self.large_object_peak_mb * 1024 * 1024
        assert put_peak < limit, f"put peaked at {put_peak / 2**20:.1f} MB"
        assert get_peak < limit, f"get peaked at {get_peak / 2**20:.1f} MB"

    # permissions ------------------------------------------------------------
    def test_write_only(self, store_env: StoreContractEnv, store: ObjectStore) -> None:
        store.put("existing.txt", b"e")
        wo = store_env.open_write_only(store)
        if wo is None:
            pytest.skip("provider cannot open a write-only store")
        with wo:
            wo.put("upload.jpg", b"jpeg", content_type="image/jpeg")
            reads: list[tuple[str, Callable[[], object]]] = [
                ("read", lambda: wo.get("existing.txt")),
                ("read", lambda: wo.open_read("existing.txt").close()),
                ("read", lambda: wo.info("existing.txt")),
                ("read", lambda: wo.exists("existing.txt")),
                ("list", lambda: list(wo.list())),
            ]
            for right, call in reads:
                with pytest.raises(PermissionDenied) as exc:
                    call()
                assert exc.value.right == right
                assert right in str(exc.value)
        assert store.get("upload.jpg") == b"jpeg"
        assert store.info("upload.jpg").content_type == "image/jpeg"

    def test_read_only(self, store_env: StoreContractEnv, store: ObjectStore) -> None:
        store.put("result.pdf", b"%PDF", content_type="application/pdf")
        ro = store_env.open_read_only(store)
        if ro is None:
            pytest.skip("provider cannot open a read-only store")
        with ro:
            assert ro.get("result.pdf") == b"%PDF"
            assert ro.info("result.pdf").content_type == "application/pdf"
            assert ro.exists("result.pdf")
            assert [o.name for o in ro.list()] == ["result.pdf"]
            with pytest.raises(PermissionDenied) as exc:
                ro.put("new.txt", b"n")
            assert exc.value.right == "write"
            assert "write" in str(exc.value)
            with pytest.raises(PermissionDenied) as exc:
                ro.delete("result.pdf")
            assert exc.value.right == "delete"
        assert not store.exists("new.txt")
        assert store.exists("result.pdf")

    # signed URLs --------------------------------------------------------------
    def test_signed_url_get_put(self, store_env: StoreContractEnv, store: ObjectStore) -> None:
        if not store.capabilities.signed_urls:
            pytest.skip("provider cannot sign URLs (capabilities.signed_urls)")
        store.put("signed/get.txt", b"hello", content_type="text/plain")
        url = store.signed_url("signed/get.txt", "GET", timedelta(minutes=5))
        assert url.startswith(("http://", "https://"))
        # http(s) only: checked just above.
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
            assert resp.read() == b"hello"
        put_url = store.signed_url("signed/put.txt", "PUT", timedelta(minutes=5))
        assert put_url.startswith(("http://", "https://"))
        headers: Mapping[str, str] = getattr(store_env, "signed_put_headers", {}) or {}
        req = urllib.request.Request(  # noqa: S310
            put_url,
            data=b"uploaded",
            method="PUT",
            headers={"Content-Type": "application/octet-stream", **headers},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            assert 200 <= resp.status < 300
        assert store.get("signed/put.txt") == b"uploaded"

    @pytest.mark.parametrize(
        "expires",
        [timedelta(days=7, seconds=1), timedelta(days=30), timedelta(0), timedelta(seconds=-60)],
        ids=["7d+1s", "30d", "zero", "negative"],
    )
    def test_signed_url_expiry_is_bounded(self, store: ObjectStore, expires: timedelta) -> None:
        # The same range on every provider, checked before any signing.
        store.put("signed/bounded.txt", b"b")
        with pytest.raises(ConfigurationError, match="1 second to 7 days"):
            store.signed_url("signed/bounded.txt", "GET", expires)

    def test_signed_url_for_seven_days_works(self, store: ObjectStore) -> None:
        if not store.capabilities.signed_urls:
            pytest.skip("provider cannot sign URLs (capabilities.signed_urls)")
        store.put("signed/week.txt", b"week")
        url = store.signed_url("signed/week.txt", "GET", MAX_SIGNED_URL_EXPIRY)
        assert url.startswith(("http://", "https://"))
        # http(s) only: checked just above.
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
            assert resp.read() == b"week"

    def test_signed_url_unsupported_raises(self, store: ObjectStore) -> None:
        if store.capabilities.signed_urls:
            pytest.skip("provider signs URLs; covered by test_signed_url_get_put")
        store.put("x", b"x")
        with pytest.raises(ConfigurationError):
            store.signed_url("x")

    # watch ------------------------------------------------------------------
    def test_watch_yields_new_objects(self, store: ObjectStore) -> None:
        store.put("inbox/old.jpg", b"old")
        stop = threading.Event()
        seen: list[ObjectInfo] = []
        errors: list[BaseException] = []
        started = threading.Event()

        def run() -> None:
            try:
                it = store.watch("inbox/", poll_interval=self.watch_poll_interval, stop=stop)
                started.set()
                for obj in it:
                    seen.append(obj)
                    if len(seen) >= 2:
                        return
            except BaseException as exc:  # surfaced to the test thread below
                errors.append(exc)
                started.set()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        started.wait(5)
        # The watcher snapshots existing objects when first iterated.
        time.sleep(0.5 + self.settle_margin)
        store.put("outside/x.jpg", b"x")
        store.put("inbox/new1.jpg", b"1")
        store.put("inbox/new2.jpg", b"2")
        t.join(timeout=15 + self.settle_margin)
        stop.set()
        t.join(timeout=5)
        assert not errors, errors
        assert sorted(o.name for o in seen) == ["inbox/new1.jpg", "inbox/new2.jpg"]

    def test_watch_stops_on_event(self, store: ObjectStore) -> None:
        stop = threading.Event()
        done = threading.Event()

        def run() -> None:
            for _ in store.watch("", poll_interval=self.watch_poll_interval, stop=stop):
                pass
            done.set()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        time.sleep(0.3)
        stop.set()
        assert done.wait(5 + self.settle_margin)
