"""``local://`` and ``file://`` specifics: URLs, persistence, crashes, processes, the filesystem."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from iris_cloud import open_broker, open_store
from iris_cloud.errors import (
    AlreadyExists,
    ConfigurationError,
    LockLost,
    NotFound,
    PermissionDenied,
)
from iris_cloud.ports import Message
from iris_cloud.providers.local import DATABASE_NAME, FileStore, LocalBroker


def _url(directory: Path, queue: str = "orders", query: str = "") -> str:
    return f"{directory.as_uri().replace('file:', 'local:', 1)}?queue={queue}{query}"


def _run_child(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- URLs and options ------------------------------------------------------------


def test_url_forms(tmp_path: Path) -> None:
    b = LocalBroker.from_url(_url(tmp_path / "q", "orders", "&lock_seconds=1.5"))
    assert b.directory == tmp_path / "q"
    assert (b.queue, b.dead_letter_queue, b.lock_seconds) == ("orders", "orders$dlq", 1.5)
    assert (tmp_path / "q" / DATABASE_NAME).exists()
    b.close()
    host = LocalBroker.from_url(f"local://localhost{tmp_path / 'q'}?queue=x")
    assert host.directory == tmp_path / "q"
    host.close()


def test_relative_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_broker("local:state?queue=orders") as b:
        assert isinstance(b, LocalBroker)
    assert (tmp_path / "state" / DATABASE_NAME).exists()
    with open_store("file:images") as s:
        s.put("a", b"1")
    assert (tmp_path / "images" / "a").read_bytes() == b"1"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("local://{dir}", "needs a queue"),
        ("local://server{dir}?queue=q", "local directory"),
        ("local://{dir}?queue=a/b", "queue name"),
        ("local://{dir}?queue=q&visibility=3", "unknown option"),
        ("local://{dir}?queue=q&synchronous=EXTRA", "synchronous"),
        ("local://{dir}?queue=q&max_message_bytes=0", "at least 1"),
        ("local:?queue=q", "needs a directory"),
    ],
)
def test_bad_broker_urls(tmp_path: Path, url: str, match: str) -> None:
    directory = tmp_path / "never"
    with pytest.raises(ConfigurationError, match=match):
        LocalBroker.from_url(url.format(dir=directory))
    assert not directory.exists()


def test_closed_broker(tmp_path: Path) -> None:
    b = LocalBroker.from_url(_url(tmp_path))
    b.close()
    b.close()
    with pytest.raises(ConfigurationError, match="closed"):
        b.send(b"x")


def test_repr(tmp_path: Path) -> None:
    with LocalBroker(tmp_path, "orders") as b:
        assert repr(b) == f"LocalBroker(directory={str(tmp_path)!r}, queue='orders', access='rw')"


# -- broker semantics ----------------------------------------------------------------


def test_messages_survive_reopening(tmp_path: Path) -> None:
    with open_broker(_url(tmp_path)) as b:
        b.send(Message(body=b"persisted", subject="S", properties={"n": 1, "ok": True}))
    with open_broker(_url(tmp_path)) as b:
        msg = b.receive(wait=1)[0]
        assert (msg.body, msg.subject, msg.properties) == (b"persisted", "S", {"n": 1, "ok": True})
        b.complete(msg)


def test_queues_in_one_directory_are_separate(tmp_path: Path) -> None:
    with open_broker(_url(tmp_path, "a")) as a, open_broker(_url(tmp_path, "b")) as b:
        a.send(b"for a")
        assert b.receive(wait=0.1) == []
        assert [m.body for m in a.receive(wait=1)] == [b"for a"]


def test_stale_lock_raises_lock_lost(tmp_path: Path) -> None:
    with LocalBroker(tmp_path, "q", lock_seconds=0.2) as b:
        b.send(b"x")
        first = b.receive(wait=1)[0]
        time.sleep(0.3)
        second = b.receive(wait=1)[0]
        assert second.delivery_count == 2
        for call in (b.complete, b.abandon, b.renew_lock):
            with pytest.raises(LockLost):
                call(first)
        b.complete(second)
        with pytest.raises(LockLost):
            b.complete(second)


def test_settling_a_foreign_message_is_rejected(tmp_path: Path) -> None:
    with LocalBroker(tmp_path, "a") as a, LocalBroker(tmp_path, "b") as b:
        a.send(b"x")
        msg = a.receive(wait=1)[0]
        with pytest.raises(ConfigurationError, match="another queue"):
            b.complete(msg)
        with pytest.raises(ConfigurationError, match="not received"):
            a.complete(Message(body=b"never received"))


def test_expired_lock_at_max_deliveries_goes_to_dead_letters(tmp_path: Path) -> None:
    with LocalBroker(tmp_path, "q", lock_seconds=0.2, max_delivery_count=2) as b:
        b.send([b"slow", b"fine"])
        assert len(b.receive(max_messages=2, wait=1)) == 2
        time.sleep(0.25)
        again = b.receive(max_messages=2, wait=1)
        assert sorted(m.delivery_count for m in again) == [2, 2]
        b.complete(next(m for m in again if m.body == b"fine"))
        time.sleep(0.25)
        assert b.receive(wait=0.1) == []
        dead = b.receive_dead_letters(wait=1)
        assert [d.body for d in dead] == [b"slow"]
        assert dead[0].dead_letter_reason == "MaxDeliveryCountExceeded"
        assert dead[0].delivery_count == 1


def test_bad_property_type_rejected(tmp_path: Path) -> None:
    with LocalBroker(tmp_path, "q") as b, pytest.raises(TypeError, match="property 'k'"):
        b.send(Message(body=b"x", properties={"k": None}))  # type: ignore[dict-item]


def test_access_denied_before_claim_check_upload(tmp_path: Path) -> None:
    claim = FileStore(tmp_path / "claim")
    with LocalBroker(tmp_path / "q", "q", access="r", claim_check=claim) as b:
        with pytest.raises(PermissionDenied) as exc:
            b.send(b"x" * (b.capabilities.max_message_bytes + 1))
        assert exc.value.right == "send"
    assert list(claim.list()) == []


def test_threads_share_one_broker(tmp_path: Path) -> None:
    total = 400
    with LocalBroker(tmp_path, "q", lock_seconds=30) as b:
        b.send([f"m{i}" for i in range(total)])
        received: list[str] = []
        guard = threading.Lock()

        def consume() -> None:
            while got := b.receive(max_messages=9, wait=0.2):
                with guard:
                    received.extend(m.message_id for m in got)
                for m in got:
                    b.complete(m)

        threads = [threading.Thread(target=consume) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    counts = Counter(received)
    assert len(counts) == total and max(counts.values()) == 1


# -- processes ------------------------------------------------------------------------

_HOLDER = """
import sys, time
from iris_cloud.providers.local import LocalBroker
b = LocalBroker(sys.argv[1], "jobs", lock_seconds=float(sys.argv[2]))
held = b.receive(max_messages=int(sys.argv[3]), wait=5)
print(" ".join(m.message_id for m in held), flush=True)
time.sleep(600)
"""


def test_sigkilled_consumer_loses_nothing(tmp_path: Path) -> None:
    """A consumer killed while holding messages: all of them come back, none is lost."""
    with LocalBroker(tmp_path, "jobs") as b:
        sent = b.send([f"job {i}".encode() for i in range(20)])
    child = _run_child(_HOLDER, str(tmp_path), "1.5", "8")
    try:
        assert child.stdout is not None
        held = child.stdout.readline().split()
        assert len(held) == 8, child.stderr.read() if child.stderr else ""
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    delivered: dict[str, int] = {}
    with LocalBroker(tmp_path, "jobs", lock_seconds=10) as b:
        deadline = time.monotonic() + 15
        while len(delivered) < len(sent) and time.monotonic() < deadline:
            for m in b.receive(max_messages=10, wait=1):
                delivered[m.message_id] = m.delivery_count
                b.complete(m)
        assert b.receive(wait=0.2) == []
        assert b.receive_dead_letters(wait=0) == []
    assert set(delivered) == set(sent)
    assert {i for i, n in delivered.items() if n == 2} == set(held)
    assert {i for i, n in delivered.items() if n == 1} == set(sent) - set(held)


_BUSY = """
import sys
from iris_cloud.providers.local import LocalBroker
b = LocalBroker(sys.argv[1], "jobs", lock_seconds=1.0)
with open(sys.argv[2], "a") as log:
    while True:
        for m in b.receive(max_messages=5, wait=1):
            # Logged before completing: a kill between the two is a redelivery,
            # which at-least-once allows; a message neither logged nor left is a loss.
            log.write(m.message_id + "\\n")
            log.flush()
            b.complete(m)
"""


def test_sigkill_during_busy_consumption_loses_nothing(tmp_path: Path) -> None:
    total = 3000
    with LocalBroker(tmp_path, "jobs") as b:
        for i in range(0, total, 500):
            b.send([f"job {j}".encode() for j in range(i, i + 500)])
    log = tmp_path / "done.log"
    child = _run_child(_BUSY, str(tmp_path), str(log))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.exists() and log.read_text().count("\n") >= 300:
                break
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    handled = set(log.read_text().split())
    assert 300 <= len(handled) < total
    rest: set[str] = set()
    with LocalBroker(tmp_path, "jobs", lock_seconds=30) as b:
        while got := b.receive(max_messages=100, wait=2.5):
            for m in got:
                rest.add(m.message_id)
                b.complete(m)
    assert len(rest | handled) == total
    # At most the batch in flight when killed is both logged and redelivered.
    assert len(handled & rest) <= 5
    db = sqlite3.connect(tmp_path / DATABASE_NAME)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)
    db.close()


_CONSUMER = """
import json, os, sys, time
from iris_cloud.providers.local import LocalBroker
b = LocalBroker(sys.argv[1], "jobs", lock_seconds=60)
b.receive_dead_letters(max_messages=1, wait=0)  # opens the database before the start line
open(sys.argv[2] + "." + sys.argv[3], "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.005)
seen = []
idle = 0
while idle < 3:
    got = b.receive(max_messages=int(sys.argv[3]), wait=0.2)
    idle = 0 if got else idle + 1
    for m in got:
        seen.append(m.message_id)
        time.sleep(0.001)  # a handler's work: the other consumers claim meanwhile
        b.complete(m)
print(json.dumps(seen))
"""


def test_processes_never_hold_the_same_message(tmp_path: Path) -> None:
    total = 1500
    with LocalBroker(tmp_path, "jobs") as b:
        sent = b.send([f"{i}".encode() for i in range(total)])
    go = tmp_path / "go"
    children = [_run_child(_CONSUMER, str(tmp_path), str(go), str(n)) for n in (1, 7, 20)]
    # Start them together: one that is still importing when the others begin
    # could find the queue already drained.
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.{n}").exists() for n in (1, 7, 20)):
        assert time.monotonic() < deadline, "consumers did not start"
        for child in children:
            assert child.poll() is None, child.communicate()[1]
        time.sleep(0.01)
    go.touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    counts = Counter(i for seen in results for i in seen)
    # 60 s locks and immediate completes: a message held by two processes
    # would show up twice.
    assert set(counts) == set(sent)
    assert max(counts.values()) == 1
    assert all(results), f"a consumer received nothing: {[len(r) for r in results]}"


# -- file store ---------------------------------------------------------------------------


def test_store_layout_is_browsable(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("orders/o1/left.jpg", b"jpeg", content_type="image/jpeg", metadata={"eye": "OS"})
    assert (tmp_path / "orders" / "o1" / "left.jpg").read_bytes() == b"jpeg"
    sidecar = tmp_path / ".iris-cloud" / "meta" / "orders" / "o1" / "left.jpg.json"
    # The sidecar names the version it describes (the object's etag).
    assert json.loads(sidecar.read_text()) == {
        "content_type": "image/jpeg",
        "metadata": {"eye": "OS"},
        "etag": store.info("orders/o1/left.jpg").etag,
    }
    assert [o.name for o in store.list()] == ["orders/o1/left.jpg"]
    # No temporary files are left behind (nor a staging directory made for none).
    assert _staged(tmp_path) == []


def test_sidecars_only_for_described_objects_and_bound_to_their_version(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    meta = tmp_path / ".iris-cloud" / "meta"
    store.put("plain.bin", b"x")
    assert not (meta / "plain.bin.json").exists()  # nothing to describe: no sidecar
    store.put("eye.jpg", b"v1", content_type="image/jpeg", metadata={"eye": "OS"})
    kept = (meta / "eye.jpg.json").read_bytes()
    store.put("eye.jpg", b"v2", overwrite=True)
    assert not (meta / "eye.jpg.json").exists()  # the replaced version's metadata goes
    assert store.info("eye.jpg").metadata == {}
    # A sidecar left by an earlier version (a delete cut short) is not the new one's.
    store.delete("eye.jpg")
    store.put("eye.jpg", b"v3")
    (meta / "eye.jpg.json").write_bytes(kept)
    info = store.info("eye.jpg")
    assert (info.content_type, dict(info.metadata)) == (None, {})


def test_named_temp_files_where_there_are_no_unnamed_ones(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store._unnamed = False  # as on a filesystem without O_TMPFILE
    store.put("a/b", b"1")
    with pytest.raises(AlreadyExists):
        store.put("a/b", b"2")
    store.put("a/b", b"3", overwrite=True)
    assert store.get("a/b") == b"3"
    assert (tmp_path / ".iris-cloud" / "tmp").is_dir() and _staged(tmp_path) == []


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named"])
@pytest.mark.parametrize("name", ["a", "d/e/a"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_store_whose_directory_was_removed_makes_it_again(
    tmp_path: Path, name: str, overwrite: bool, unnamed: bool
) -> None:
    store = FileStore(tmp_path / "s")
    store._unnamed = store._unnamed and unnamed
    store.put(name, b"1", overwrite=True)  # the staging directory opened and kept
    store.put("b", b"1")
    shutil.rmtree(tmp_path / "s")
    # As a store opened now would: the directory is made again.
    store.put(name, b"2", overwrite=overwrite)
    assert store.get(name) == b"2"
    assert [o.name for o in store.list()] == [name] and _staged(tmp_path / "s") == []
    assert not (tmp_path / "s" / "b").exists()


def test_a_conditional_put_stages_in_the_target_directory_leaving_nothing(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path)
    if not store._unnamed:
        pytest.skip("no O_TMPFILE on this filesystem")
    store.put("a/b", b"1")
    with pytest.raises(AlreadyExists):
        store.put("a/b", b"2")
    assert store.get("a/b") == b"1"
    # No staging directory and no temp name anywhere: the file had none until linked.
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/b"]


def _staged(root: Path) -> list[Path]:
    """What is in the store's staging directory (none if it was never needed)."""
    tmp = root / ".iris-cloud" / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


def test_reserved_names_rejected(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    for call in (
        lambda: store.put(".iris-cloud/meta/x.json", b"{}"),
        lambda: store.get(".iris-cloud/tmp/x"),
        lambda: list(store.list(".iris-cloud/meta/")),
    ):
        with pytest.raises(ConfigurationError, match="reserved"):
            call()


def test_symlink_escape_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    root = tmp_path / "root"
    store = FileStore(root)
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigurationError, match="outside the store root"):
        store.get("link/secret")
    with pytest.raises(ConfigurationError, match="outside the store root"):
        store.put("link/new", b"x")
    with pytest.raises(ConfigurationError, match="outside the store root"):
        list(store.list("link/"))
    assert not (outside / "new").exists()
    # Symlinks are not followed by a listing of the root either.
    assert list(store.list()) == []


def test_list_order_matches_object_stores(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    # Walking directories naively would give "a/b/c" before "a-b" ('-' < '/').
    names = ["a/c", "a-b", "a.b/x", "b", "a/b/c", "Z", "é", "a0"]
    for n in names:
        store.put(n, b"x")
    assert [o.name for o in store.list()] == sorted(names)
    assert [o.name for o in store.list("a")] == sorted(n for n in names if n.startswith("a"))
    assert [o.name for o in store.list("a/")] == ["a/b/c", "a/c"]
    assert [o.name for o in store.list("a/b")] == ["a/b/c"]


def test_name_conflicting_with_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("a/b", b"x")
    with pytest.raises(AlreadyExists):
        store.put("a", b"x")
    with pytest.raises(NotFound):
        store.get("a")
    with pytest.raises(NotFound):
        store.delete("a")
    with pytest.raises(ConfigurationError, match="parent"):
        store.put("a/b/c", b"x")


def test_delete_prunes_empty_directories(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("x/y/z", b"1", metadata={"k": "v"})
    store.delete("x/y/z")
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / ".iris-cloud" / "meta" / "x").exists()
    store.put("x", b"now a file")
    assert store.get("x") == b"now a file"


def test_concurrent_conditional_create_has_one_winner(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    winners: list[int] = []
    losers: list[BaseException] = []
    barrier = threading.Barrier(8)

    def put(i: int) -> None:
        barrier.wait()
        try:
            store.put("race/obj", str(i).encode() * 10_000)
            winners.append(i)
        except AlreadyExists as exc:
            losers.append(exc)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 7
    assert store.get("race/obj") == str(winners[0]).encode() * 10_000


def test_put_from_partly_read_file_continues_at_its_position(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"header|payload")
    store = FileStore(tmp_path / "store", fsync=True)
    with src.open("rb") as fh:
        fh.read(7)
        store.put("p", fh)
        assert fh.read() == b""
    assert store.get("p") == b"payload"


def test_download_to_replaces_atomically(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    store.put("x", b"new")
    target = tmp_path / "out"
    target.write_bytes(b"old")
    store.download_to("x", target)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s"]


def test_store_url_options(tmp_path: Path) -> None:
    s = FileStore.from_url(f"{tmp_path.as_uri()}?access=r&fsync=yes")
    assert (s.access.value, s.fsync, s.capabilities.can_write) == ("r", True, False)
    with pytest.raises(ConfigurationError, match="fsync"):
        FileStore.from_url(f"{tmp_path.as_uri()}?fsync=maybe")
    with pytest.raises(ConfigurationError, match="local directory"):
        FileStore.from_url("file://host/share")


def test_missing_sidecar_is_tolerated(tmp_path: Path) -> None:
    # Files dropped into the directory by other tools are objects too.
    (tmp_path / "dropped.jpg").write_bytes(b"jpeg")
    info = FileStore(tmp_path).info("dropped.jpg")
    assert (info.size, info.content_type, dict(info.metadata)) == (4, None, {})
