"""Files that can hold patient data: created 0600 in 0700 directories, whatever the umask.

Every file and directory the framework creates that may hold PHI or secrets
goes through these helpers: the ``local://`` queue database, ``file://``
objects and their metadata sidecars, ``download_to`` output, saved results,
the dedupe and upload-receipt databases and the simulator's state.

Directories are created ``0700`` (each missing parent too); a directory that
already exists keeps its mode, since it is the operator's. Files are created
``0600``, and a file of ours that already exists with a wider mode (written by
an older version, or under another umask) is narrowed when it is opened again.
SQLite gives its ``-wal`` and ``-shm`` files the database file's mode, so a
database opened through :func:`connect_private` keeps all three private.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "connect_private",
    "open_private",
    "partial_file",
    "private_dir",
    "wal_mode",
    "write_private",
]

DIR_MODE = 0o700
FILE_MODE = 0o600
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and its missing parents with mode 0700; return it.

    Existing directories are left as they are. Safe against a concurrent
    creator (another process making the same directory).
    """
    target = Path(path)
    missing: list[Path] = []
    probe = target
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        # mkdir's mode passes through the umask; chmod does not.
        os.chmod(directory, DIR_MODE)
    return target


def _ours_and_wide(st: os.stat_result) -> bool:
    return bool(stat.S_IMODE(st.st_mode) & ~FILE_MODE) and st.st_uid == os.geteuid()


def _narrow(fd: int) -> None:
    if _ours_and_wide(os.fstat(fd)):
        os.fchmod(fd, FILE_MODE)


def open_private(
    path: str | os.PathLike[str], flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
) -> int:
    """``os.open`` of ``path`` that creates it 0600 (or narrows a wider file of ours).

    Returns the file descriptor; the caller closes it (e.g. with ``os.fdopen``).
    Add ``os.O_EXCL`` to ``flags`` to refuse an existing file.
    """
    fd = os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
    try:
        _narrow(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def partial_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A private file that becomes ``path`` only when the ``with`` block completes.

    Written as ``.NAME.<random>.part`` (mkstemp's name) beside ``path`` (0600, its directory 0700
    if missing) and renamed over ``path`` at the end; removed if the block
    raises, so ``path`` is never a partial download.
    """
    target = Path(path)
    private_dir(target.parent)
    # mkstemp creates the file 0600.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to ``path`` (replacing its content), the file 0600."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with os.fdopen(open_private(path), "wb") as out:
        out.write(raw)


def connect_private(path: str | os.PathLike[str], **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect(path, **kwargs)`` with the database, its WAL and SHM files 0600.

    The parent directory is created 0700 if missing. The database file is
    created (empty) 0600 before SQLite opens it; SQLite then creates the side
    files with the same mode. Side files left wider by an older version are
    narrowed.
    """
    target = Path(path)
    private_dir(target.parent)
    try:
        os.close(open_private(target, os.O_RDWR | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        _narrow_in_place(target)
    for suffix in _SQLITE_SIDE_FILES:
        _narrow_in_place(target.with_name(target.name + suffix))
    connection: sqlite3.Connection = sqlite3.connect(target, **kwargs)
    return connection


def _narrow_in_place(path: Path) -> None:
    """Narrow an existing regular file of ours to 0600 without opening it for I/O.

    This process may already hold SQLite connections to it, and closing any
    ordinary descriptor of a file drops every POSIX lock the process holds on
    it: on ``-shm`` that lets another process take the file for its own and
    truncate it under our mapping (SIGBUS). An ``O_PATH`` descriptor carries
    no locks; symlinks are not followed.
    """
    o_path = getattr(os, "O_PATH", 0)
    if not o_path:  # not Linux: no descriptor at all
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISREG(st.st_mode) and _ours_and_wide(st):
            os.chmod(path, FILE_MODE)
        return
    try:
        fd = os.open(path, o_path | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and _ours_and_wide(st):
            os.chmod(f"/proc/self/fd/{fd}", FILE_MODE)
    finally:
        os.close(fd)


def wal_mode(db: sqlite3.Connection, timeout: float) -> None:
    """Put ``db`` in WAL mode, waiting out another process doing the same.

    Switching a new database to WAL takes an exclusive lock, and SQLite answers
    a second process that asks at that moment "database is locked" at once,
    without its busy handler; once one has switched, the mode is in the file.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
