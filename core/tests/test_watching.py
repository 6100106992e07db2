"""The notification-fed watch every provider with notifications uses, on mem:// endpoints."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

from iris_cloud.ports import Message, ObjectInfo
from iris_cloud.providers.memory import MemoryBroker, MemoryStore
from iris_cloud.watching import watch_notifications


def _parse(msg: Message) -> Iterator[ObjectInfo]:
    try:
        note = json.loads(msg.body)
    except ValueError:
        return
    if note.get("event") == "created":
        yield ObjectInfo(name=note["name"], size=note.get("size", 0), etag=note.get("etag"))


def _note(name: str, etag: str = "e1", event: str = "created") -> bytes:
    return json.dumps({"event": event, "name": name, "etag": etag, "size": 3}).encode()


def _endpoints() -> tuple[MemoryStore, MemoryBroker]:
    suffix = uuid.uuid4().hex[:8]
    return MemoryStore(f"watch-{suffix}"), MemoryBroker(f"notes-{suffix}", lock_seconds=0.3)


def test_announced_objects_come_once_and_others_are_skipped() -> None:
    store, broker = _endpoints()
    store.put("in/old.jpg", b"old")
    old = store.info("in/old.jpg")
    broker.send(
        [
            _note("in/old.jpg", etag=str(old.etag)),  # existed at the start: skipped
            b"not json",
            _note("in/a.jpg", event="deleted"),
            _note("elsewhere/b.jpg"),
            _note("in/a.jpg"),
            _note("in/a.jpg"),  # delivered twice
            _note("in/a.jpg", etag="e2"),  # overwritten: a new object
        ]
    )
    stop = threading.Event()
    got = []
    for obj in watch_notifications(store, broker, _parse, "in/", poll_interval=0.2, stop=stop):
        got.append((obj.name, obj.etag))
        if len(got) == 2:
            stop.set()
    assert got == [("in/a.jpg", "e1"), ("in/a.jpg", "e2")]
    # Every notification was completed, the skipped ones too.
    assert broker.peek(10) == []


def test_include_existing_lists_first() -> None:
    store, broker = _endpoints()
    store.put("x.jpg", b"x")
    broker.send(_note("y.jpg"))
    stream = watch_notifications(store, broker, _parse, include_existing=True, poll_interval=0.2)
    assert [next(stream).name, next(stream).name] == ["x.jpg", "y.jpg"]
    stream.close()


def test_notification_not_taken_is_delivered_again() -> None:
    store, broker = _endpoints()
    broker.send(_note("a.jpg"))
    stream = watch_notifications(store, broker, _parse, poll_interval=0.2)
    assert next(stream).name == "a.jpg"
    # The caller stops before asking for more: the notification is not completed.
    stream.close()
    [again] = broker.receive(wait=5)
    assert (again.body, again.delivery_count) == (_note("a.jpg"), 2)


def test_etags_are_kept_unquoted() -> None:
    # Services quote ETags in some replies and not others; one form compares.
    assert ObjectInfo(name="a", size=1, etag='"0x8D4"').etag == "0x8D4"
    assert ObjectInfo(name="a", size=1, etag="0x8D4").etag == "0x8D4"
    assert ObjectInfo(name="a", size=1, etag='""').etag is None


def test_unreadable_and_unavailable_notifications_do_not_stop_the_watch() -> None:
    from iris_cloud.errors import Unavailable

    store, broker = _endpoints()
    calls = {"flaky": 0}

    def parse(msg: Message) -> Iterator[ObjectInfo]:
        note = json.loads(msg.body)  # ValueError for a malformed payload
        if note["name"] == "flaky.jpg":
            calls["flaky"] += 1
            if calls["flaky"] == 1:
                raise Unavailable("lookup failed for now")
        yield ObjectInfo(name=note["name"], size=1, etag="e1")

    broker.send([b"{malformed", _note("flaky.jpg"), _note("fine.jpg")])
    stop = threading.Event()
    got = []
    for obj in watch_notifications(store, broker, parse, poll_interval=0.2, stop=stop):
        got.append(obj.name)
        if len(got) == 2:
            stop.set()
    # The unavailable one came back after its delay; the malformed one is gone.
    assert got == ["fine.jpg", "flaky.jpg"]
    assert calls["flaky"] == 2
    assert broker.peek(10) == []
