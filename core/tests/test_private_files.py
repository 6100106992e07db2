"""Patient data at rest (issue 12 §3): private files and directories, erased queue bodies.

Every test runs under umask 000, the worst case: whatever the project creates
that can hold PHI must still come out 0600 (files) in 0700 directories.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from iris_cloud.dedupe import Dedupe
from iris_cloud.ports import Message
from iris_cloud.private import connect_private, open_private, private_dir
from iris_cloud.providers.local import LocalBroker
from iris_cloud.providers.memory import MemoryStore
from iris_cloud.workflows import UploadReceipts
from iris_cloud.workflows.results import save_result
from test_workflows_results import result


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """Mode of everything under ``root`` (root excluded), by relative path."""
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in sorted(root.rglob("*"))
    }


def assert_private(root: Path) -> None:
    found = modes(root)
    assert found, f"nothing was created under {root}"
    wrong = {
        name: oct(mode)
        for name, mode in found.items()
        if mode != (0o700 if (root / name).is_dir() else 0o600)
    }
    assert not wrong, f"not private: {wrong}"


def test_helpers_create_private_and_narrow_what_exists(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "a" / "b" / "c")
    assert made.is_dir()
    private_dir(made)  # again: no error
    os.close(open_private(made / "f"))
    assert_private(tmp_path)
    # A file left 0644 by an older version is narrowed when opened again.
    wide = tmp_path / "wide"
    wide.write_bytes(b"x")
    wide.chmod(0o644)
    os.close(open_private(wide, os.O_RDONLY))
    assert stat.S_IMODE(wide.stat().st_mode) == 0o600
    # An existing directory is the operator's: its mode is kept.
    (tmp_path / "shared").mkdir(mode=0o755)
    private_dir(tmp_path / "shared" / "sub")
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "shared" / "sub").stat().st_mode) == 0o700


def test_sqlite_side_files_follow_the_database(tmp_path: Path) -> None:
    db = connect_private(tmp_path / "d" / "x.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (v)")
    db.execute("INSERT INTO t VALUES (1)")
    assert {"x.sqlite3", "x.sqlite3-wal", "x.sqlite3-shm"} <= set(os.listdir(tmp_path / "d"))
    assert_private(tmp_path)
    db.close()


def test_local_queue_files_are_private(tmp_path: Path) -> None:
    with LocalBroker(tmp_path / "state" / "queues", "orders") as broker:
        broker.send(b"{}")
        assert broker.receive(wait=1.0)
        assert_private(tmp_path)


def test_file_store_objects_sidecars_and_downloads_are_private(tmp_path: Path) -> None:
    from iris_cloud.providers.local import FileStore

    store = FileStore(tmp_path / "images")
    store.put("site/order/img.jpg", b"jpeg", content_type="image/jpeg", metadata={"k": "v"})
    store.put("site/order/img.jpg", b"jpeg2", metadata={"k": "v2"}, overwrite=True)
    assert (tmp_path / "images/.iris-cloud/meta/site/order/img.jpg.json").exists()
    store.download_to("site/order/img.jpg", tmp_path / "out" / "deep" / "img.jpg")
    assert_private(tmp_path)


def test_download_to_of_any_store_is_private(tmp_path: Path) -> None:
    store = MemoryStore(f"c-{uuid.uuid4().hex}")
    store.put("r.pdf", b"%PDF")
    store.download_to("r.pdf", tmp_path / "dl" / "r.pdf")
    assert_private(tmp_path)


def test_dedupe_and_receipts_databases_are_private(tmp_path: Path) -> None:
    dedupe = Dedupe(tmp_path / "dedupe" / "handled.sqlite3")
    dedupe.mark(["m1"])
    receipts = UploadReceipts(tmp_path / "receipts" / "uploads.sqlite3")
    receipts.add("images", "a.jpg", 3)
    assert_private(tmp_path)
    dedupe.close()
    receipts.close()


def test_saved_results_and_their_directories_are_private(tmp_path: Path) -> None:
    saved = save_result(result(), tmp_path / "results", template="{MMddyyyy}/{orderLocalId}.pdf")
    assert saved is not None
    assert_private(tmp_path)


# -- completed bodies leave the queue's files ------------------------------------


def body_tokens(count: int) -> tuple[bytes, list[bytes]]:
    """A body made of ``count`` distinct tokens, so that any surviving fragment is found."""
    tokens = [f"<phi-{uuid.uuid4().hex}>".encode() for _ in range(count)]
    return b"".join(tokens), tokens


def left_in_files(directory: Path, tokens: list[bytes]) -> list[str]:
    data = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    return [name for name, content in data.items() if any(t in content for t in tokens)]


@pytest.mark.parametrize("tokens", [2, 400], ids=["inline-body", "overflow-pages"])
@pytest.mark.parametrize("erase_after", [0.0, 0.2])
def test_completed_body_is_erased_from_the_queue_files(
    tmp_path: Path, tokens: int, erase_after: float
) -> None:
    body, marks = body_tokens(tokens)
    # A property carries PHI as well.
    prop = f"Quixotely-{uuid.uuid4().hex}"
    with LocalBroker(tmp_path, "q", erase_after=erase_after) as broker:
        broker.send([Message(body=b"x" * n) for n in range(1, 30)])
        broker.send(Message(body=body, properties={"name": prop}))
        got = broker.receive(max_messages=50, wait=1.0)
        assert any(m.body == body for m in got)
        broker.send(Message(body=b"still-queued"))
        # While it is held, the body is in the files (the test can see it).
        assert left_in_files(tmp_path, marks)
        for m in got:
            broker.complete(m)
        deadline = time.monotonic() + erase_after + 10.0
        while left_in_files(tmp_path, [*marks, prop.encode()]):
            assert time.monotonic() < deadline, "completed body still in the queue files"
            time.sleep(0.05)
        # The queue itself is intact.
        (rest,) = broker.receive(wait=1.0)
        assert rest.body == b"still-queued"
        broker.complete(rest)


def test_close_erases_what_is_pending_even_with_another_process_open(tmp_path: Path) -> None:
    body, marks = body_tokens(50)
    # Another endpoint on the same database keeps the log from being removed at close.
    other = LocalBroker(tmp_path, "other")
    try:
        with LocalBroker(tmp_path, "q", erase_after=3600) as broker:
            broker.send(body)
            (m,) = broker.receive(wait=1.0)
            broker.complete(m)
        assert not left_in_files(tmp_path, marks)
    finally:
        other.close()


def test_erase_after_is_checked(tmp_path: Path) -> None:
    from iris_cloud.errors import ConfigurationError

    for bad in ("-1", "inf", "soon"):
        with pytest.raises(ConfigurationError, match="erase_after"):
            LocalBroker.from_url(f"local://{tmp_path}/q?queue=q&erase_after={bad}")
