"""local:// and file:// under faults: a replaced database, WAL growth, disk errors, leftovers."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.errors import ConfigurationError, IrisCloudError, Unavailable, is_transient
from iris_cloud.model import Event
from iris_cloud.ports import Message
from iris_cloud.providers import local
from iris_cloud.providers.local import DATABASE_NAME, FileStore, LocalBroker
from iris_cloud.tempfiles import remove_stale_temp_files
from wfhelpers import sample

pytestmark = pytest.mark.timeout(60)


def event() -> bytes:
    data = sample("event-order-graded.json")
    data["TransactionId"] = str(uuid.uuid4())
    return json.dumps(data).encode()


def remove_database(directory: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (directory / (DATABASE_NAME + suffix)).unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_deleted_or_replaced_under_a_consumer_fails_loudly(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = LocalBroker(tmp_path, "events")
    broker.send(event())
    handled: list[str] = []
    app = IrisApp()
    app.on(Event)(lambda evt, ctx: handled.append(ctx.message.message_id))
    consumer = Consumer(app, broker, wait=0.1)
    consumer.start()
    deadline = time.monotonic() + 10
    while not handled:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    if how == "deleted":
        remove_database(tmp_path)
    else:
        other = tmp_path / "other"
        LocalBroker(other, "events").close()
        os.replace(other / DATABASE_NAME, tmp_path / DATABASE_NAME)
    # A sender opening the directory now writes to the new file, which the
    # consumer would never read: it must stop instead of polling the old one.
    with LocalBroker(tmp_path, "events") as sender:
        sender.send(event())
    with pytest.raises(ConfigurationError, match="deleted or replaced while open"):
        consumer.join(10)
    assert any("deleted or replaced" in r.getMessage() for r in caplog.records)
    broker.close()


def test_the_write_ahead_log_stays_bounded_and_idle_truncates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = LocalBroker(tmp_path, "results")
    wal = tmp_path / (DATABASE_NAME + "-wal")
    body = os.urandom(512 * 1024)
    largest = 0
    for _ in range(80):  # 40 MB through the log, one 512 KiB transaction at a time
        broker.send(Message(body=body))
        (got,) = broker.receive(1)
        broker.complete(got)
        largest = max(largest, wal.stat().st_size)
    assert largest <= local.WAL_SIZE_LIMIT + 2 * len(body)
    monkeypatch.setattr(local, "IDLE_TRUNCATE_SECONDS", 0.0)
    assert broker.receive(1, wait=0.05) == []
    assert wal.stat().st_size == 0
    broker.close()


def test_a_full_database_names_the_sqlite_error_and_the_file(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path, "events")
    broker.send(event())
    db = broker._conn()
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count={pages}")  # what a full disk looks like to SQLite
    with pytest.raises(Unavailable) as info:
        broker.send(Message(body=os.urandom(256 * 1024)))
    text = str(info.value)
    assert "SQLITE_FULL" in text and str(tmp_path / DATABASE_NAME) in text
    assert is_transient(info.value)
    broker.close()


def test_a_read_only_database_names_the_sqlite_error_and_the_file(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path, "events")
    broker._conn().execute("PRAGMA query_only=1")  # as a read-only mount answers writes
    with pytest.raises(Unavailable, match=r"is read-only \(SQLITE_READONLY\)") as info:
        broker.send(event())
    assert str(tmp_path / DATABASE_NAME) in str(info.value)
    broker.close()


@pytest.mark.parametrize(
    ("code", "transient"), [(errno.ENOSPC, True), (errno.EROFS, True), (errno.ENAMETOOLONG, False)]
)
def test_store_disk_errors_say_their_class(code: int, transient: bool) -> None:
    with pytest.raises(IrisCloudError) as info, local._fs_errors("put an object"):
        raise OSError(code, os.strerror(code))
    assert errno.errorcode[code] in str(info.value)
    assert isinstance(info.value, Unavailable) is transient


def age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_stale_temp_files_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    (tmp_path / "2026" / "site").mkdir(parents=True)
    stale = tmp_path / "2026" / "site" / ".ORD1.pdf.abc123.part"
    fresh = tmp_path / ".ORD2.pdf.def456.part"  # a save in progress in another process
    kept = [tmp_path / "ORD3.pdf", tmp_path / "notes.part"]  # results, not temp files
    for path in (stale, fresh, *kept):
        path.write_bytes(b"%PDF-")
    for path in (stale, *kept):
        age(path, 2 * 3600)
    outside = tmp_path.parent / f"outside-{uuid.uuid4().hex}"
    outside.mkdir()
    (outside / ".x.part").write_bytes(b"")
    age(outside / ".x.part", 2 * 3600)
    (tmp_path / "link").symlink_to(outside, target_is_directory=True)
    assert remove_stale_temp_files(tmp_path) == 1
    assert not stale.exists() and fresh.exists() and all(p.exists() for p in kept)
    assert (outside / ".x.part").exists()  # symlinks are not followed


def test_a_linked_temp_directory_is_not_swept(tmp_path: Path) -> None:
    """A store whose .iris-cloud/tmp was replaced by a link removes nothing through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "someone-elses.part"
    victim.write_bytes(b"")
    age(victim, 2 * 3600)
    root = tmp_path / "store"
    (root / ".iris-cloud").mkdir(parents=True)
    (root / ".iris-cloud" / "tmp").symlink_to(outside, target_is_directory=True)
    assert remove_stale_temp_files(root / ".iris-cloud" / "tmp", hidden_only=False) == 0
    FileStore(root).close()
    assert victim.exists()


def test_a_file_store_removes_what_killed_puts_left(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("a.bin", b"x", overwrite=True)  # staged under a name there
    tmp = tmp_path / ".iris-cloud" / "tmp"
    leftovers = [tmp / f"{uuid.uuid4().hex}.part", tmp / f"{uuid.uuid4().hex}.json"]
    for path in leftovers:
        path.write_bytes(b"half")
        age(path, 2 * 3600)
    FileStore(tmp_path, access="r")  # may not write: leaves them
    assert all(p.exists() for p in leftovers)
    FileStore(tmp_path)
    assert not any(p.exists() for p in leftovers)
    assert store.get("a.bin") == b"x"


SHM_DMS_BYTE = 128
"""The byte of ``-shm`` every SQLite connection holds a shared lock on (unix VFS)."""

TAKE_DMS = f"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, {SHM_DMS_BYTE})
except OSError:
    sys.exit(1)  # held by the other process's connections, as it must be
sys.exit(0)
"""


def test_opening_another_endpoint_keeps_the_process_s_sqlite_locks(tmp_path: Path) -> None:
    # Closing any descriptor of a file drops all of a process's POSIX locks on
    # it; a second endpoint opened on the same database must not do that to
    # the first one's -shm lock, or another process may truncate the -shm
    # under our mapping (SIGBUS).
    first = LocalBroker(tmp_path, "events")
    first.send(event())
    second = LocalBroker(tmp_path, "results")
    shm = tmp_path / (DATABASE_NAME + "-shm")
    taken = subprocess.run([sys.executable, "-c", TAKE_DMS, str(shm)], check=False)
    assert taken.returncode == 1
    second.close()
    first.close()
