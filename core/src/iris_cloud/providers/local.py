"""The embedded default: ``local://`` queues in SQLite and ``file://`` stores on disk.

No cloud and no server: state lives in a directory, shared by every process
that opens it.

``local:///DIR?queue=NAME`` — one SQLite database (WAL) per directory
(``DIR/queues.sqlite3``) holds every queue in it. Peek-lock is a visibility
timeout: a received message gets a lock token and becomes invisible until
``lock_seconds`` later. A receive claims messages in one ``BEGIN IMMEDIATE``
transaction, so several processes may consume one queue and never hold the
same message at once. A consumer that dies (even SIGKILL) holds nothing: its
locks expire and the messages are delivered again with ``delivery_count + 1``.
After ``max_delivery_count`` deliveries a message moves to ``NAME$dlq``, as
does one dead-lettered explicitly (with reason and description). ``receive``
long-polls by re-checking the table every 10-100 ms until ``wait`` runs out.

The write-ahead log is checkpointed every 4,000 pages (16 MB) and truncated
back to 16 MB after a checkpoint; a receive that finds the queue empty
truncates it to nothing, at most every 30 s. So the log stays under about
16 MB plus the largest single transaction (one send batch) wherever
checkpoints can complete. If the database file is deleted or replaced under
an open endpoint (its inode changes), the next send or receive raises
:class:`~iris_cloud.errors.ConfigurationError` instead of going on with the
unlinked file (a consumer stops with it): reopen the endpoint. A full disk, a
read-only file or an I/O error raises :class:`~iris_cloud.errors.Unavailable`
naming the SQLite error class and the database file.

Options (URL query or keyword): ``lock_seconds`` (30), ``max_delivery_count``
(10), ``max_message_bytes`` (1 MiB), ``access`` (``rw`` | ``w`` | ``r``, see
below), ``synchronous`` (SQLite's setting: ``NORMAL``, the default, survives a
process crash and keeps the database intact on a power loss, which may undo
the last settlements; ``FULL`` loses nothing on a power loss; ``OFF`` is
faster but a power loss may corrupt the database — for throw-away state only)
``erase_after`` (seconds, default 1: see below) and the keyword
``claim_check``. Lock and delivery
settings belong to the opened endpoint, not the queue. Times are wall-clock
(processes share them), so a clock jump shortens or lengthens held locks.

Bodies carry patient data. The database and its ``-wal`` / ``-shm`` files
are created 0600 (the directory 0700 if missing), whatever the umask. A
completed message is overwritten in place (``secure_delete=ON``), and the
write-ahead log, which still holds its old pages, is truncated by a
checkpoint at most ``erase_after`` seconds later (and at ``close``): after
that, no file of the queue holds its body or properties. ``erase_after=0``
truncates at every completion, which makes a completion about fifteen times
slower (``benchmarks/local_erase.py``). Dead-lettered messages keep their
body until they are completed from ``NAME$dlq``.

``file:///DIR`` — objects are plain files under DIR (created if missing), so
the tree can be browsed. A put streams into a temporary file in
``DIR/.iris-cloud/tmp`` — one without a name (``O_TMPFILE``) where the
filesystem has them, so a killed put leaves nothing — and publishes it
atomically: with ``overwrite=False`` by a hard link, which fails if the name
exists, so two writers cannot both create one object; with ``overwrite=True``
by a rename over it. Content type and metadata live in a JSON sidecar under
``DIR/.iris-cloud/meta`` (hidden from ``list``; names under ``.iris-cloud/``
are reserved), written only for an object that has them; it names the
version it describes, so a reader racing an overwrite sees the new content
with no metadata for a moment, never with the old one's. ``list`` returns
name, size, etag and time (as S3 does; ``info`` adds content type and
metadata). Besides the core's name checks, no symbolic link below DIR is
followed (each directory is opened relative to its parent with
``O_NOFOLLOW``; DIR itself may be one): a link cannot lead out of the store
or into its reserved directory, and an object that is a link is refused.
Objects, sidecars and ``download_to`` output
are created 0600 and the directories the store creates 0700, whatever the
umask (objects are patient images and reports). Options: ``access``,
``fsync`` (flush data to disk before the rename; default off, as ``cp``).

``access="rw" | "w" | "r"`` emulates the credentials IRIS hands out: ``w`` may
only send / put; ``r`` may only receive (and settle) / read and list.
Anything else raises :class:`~iris_cloud.errors.PermissionDenied` naming the
missing right.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import sqlite3
import stat
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

from iris_cloud._nofollow import UNSAFE_DIRECTORY, LinkOnTheWay, open_below, open_dirs
from iris_cloud.decoding import decode_each
from iris_cloud.errors import (
    AlreadyExists,
    ConfigurationError,
    IrisCloudError,
    LockLost,
    NotFound,
    PermissionDenied,
    Unavailable,
    is_transient,
)
from iris_cloud.hookspecs import hookimpl
from iris_cloud.logs import get_logger
from iris_cloud.portlogic import held_by, raise_outcome
from iris_cloud.ports import (
    Capabilities,
    Message,
    MessageBroker,
    ObjectInfo,
    ObjectStore,
)
from iris_cloud.private import FILE_MODE, connect_private, open_private, private_dir, wal_mode
from iris_cloud.providers._common import (
    BROKER_RIGHTS,
    DEAD_LETTER_SUFFIX,
    DEFAULT_LOCK_SECONDS,
    DEFAULT_MAX_DELIVERY_COUNT,
    MAX_DELIVERY_REASON,
    STORE_RIGHTS,
    Access,
    check_properties,
    check_queue_name,
    merge_options,
    non_negative_float,
    parse_bool,
    positive_float,
    positive_int,
    require_handle,
)
from iris_cloud.providers._wal_erase import WalEraser
from iris_cloud.tempfiles import remove_stale_temp_files

__all__ = [
    "DATABASE_NAME",
    "FileStore",
    "LocalBroker",
    "iris_cloud_async_broker_schemes",
    "iris_cloud_async_store_schemes",
    "iris_cloud_broker_schemes",
    "iris_cloud_public_options",
    "iris_cloud_store_schemes",
]

log = get_logger("iris_cloud.providers.local")

DATABASE_NAME = "queues.sqlite3"

RESERVED_DIR = ".iris-cloud"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    visible_at REAL NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lock_token TEXT,
    enqueued_at REAL NOT NULL,
    message_id TEXT NOT NULL,
    correlation_id TEXT,
    content_type TEXT,
    subject TEXT,
    properties TEXT NOT NULL,
    dead_letter_reason TEXT,
    dead_letter_description TEXT,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at, id);
"""
_COLUMNS = (
    "id, delivery_count, enqueued_at, message_id, correlation_id, content_type, subject, "
    "properties, dead_letter_reason, dead_letter_description, body"
)
# Every settlement applies only while the caller still holds the lock.
_HELD = " WHERE id = ? AND queue = ? AND lock_token = ? AND visible_at > ?"
_MIN_POLL = 0.01
_MAX_POLL = 0.1
WAL_CHECKPOINT_PAGES = 4000
"""Pages of write-ahead log after which SQLite checkpoints it (16 MB at 4 KiB pages)."""
WAL_SIZE_LIMIT = 16 * 1024 * 1024
"""Bytes the write-ahead log is truncated back to after a checkpoint."""
IDLE_TRUNCATE_SECONDS = 30.0
"""Least time between truncating checkpoints that an idle receive runs."""
# SQLite primary result codes that are the disk's, not the caller's.
_SQLITE_DISK = {8: "is read-only", 10: "had an I/O error", 13: "is full", 14: "cannot be opened"}


def _local_path(url: str, scheme: str) -> Path:
    """The directory a ``local:`` / ``file:`` URL names (absolute, or relative to the cwd)."""
    parts = urlsplit(url)
    if parts.scheme != scheme:
        raise ConfigurationError(f"expected a {scheme}:// URL")
    if parts.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"{scheme}:// URLs name a local directory: '{scheme}:///absolute/dir' "
            f"or '{scheme}:relative/dir', not host {parts.netloc!r}"
        )
    path = unquote(parts.path)
    if not path:
        raise ConfigurationError(f"{scheme}:// URL needs a directory, e.g. '{scheme}:///var/iris'")
    return Path(path)


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, explicit: bool = True) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error); autocommit if not ``explicit``."""
    if not explicit:
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        # SQLite rolls back by itself on some errors (a full disk), and
        # a failed COMMIT leaves the transaction open: roll back only
        # what is still open, so that the error shows, not ROLLBACK's.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class _sqlite_errors:
    """SQLite errors as framework errors, in one place.

    A class rather than a generator context manager: it wraps every settle
    call, and this is several times cheaper.
    """

    __slots__ = ("action", "database")

    def __init__(self, action: str, database: Path | None = None) -> None:
        self.action = action
        self.database = database

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None or not isinstance(exc, sqlite3.Error):
            return
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            raise Unavailable(f"cannot {self.action}: the queue database stayed locked") from exc
        code = getattr(exc, "sqlite_errorcode", None)
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        what = _SQLITE_DISK.get(code & 0xFF) if code is not None else None
        if what is not None:
            # The disk's failure, not the caller's: say which file and what
            # class of error (SQLite's messages name no values, only this).
            where = self.database or "the queue database"
            raise Unavailable(f"cannot {self.action}: {where} {what} ({name})") from exc
        raise IrisCloudError(f"cannot {self.action}: SQLite error {name}: {text}") from exc


# -- broker ----------------------------------------------------------------------


class _Handle:
    """Which row of which queue a received message is."""

    __slots__ = ("queue", "row")

    def __init__(self, queue: str, row: int) -> None:
        self.queue = queue
        self.row = row


class LocalBroker(MessageBroker):
    """A queue in the SQLite database of a directory, shared by processes."""

    scheme: ClassVar[str] = "local"
    capabilities: Capabilities = Capabilities(
        max_message_bytes=1024 * 1024,
        max_batch=500,
        max_batch_bytes=None,
        native_dead_letter=True,
        delayed_retry=True,
        lock_renewal=True,
        max_delivery_count=DEFAULT_MAX_DELIVERY_COUNT,
        delivery_count_exact=True,
        peek=True,
        completes_for_all=True,
        batch_settle=True,
    )

    def __init__(
        self,
        directory: str | os.PathLike[str],
        queue: str,
        *,
        lock_seconds: float = DEFAULT_LOCK_SECONDS,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        max_message_bytes: int | None = None,
        access: str = "rw",
        synchronous: str = "NORMAL",
        erase_after: float = 1.0,
        claim_check: ObjectStore | None = None,
    ) -> None:
        super().__init__(claim_check=claim_check)
        self.directory = Path(directory)
        self.queue = check_queue_name(queue)
        self.dead_letter_queue = queue + DEAD_LETTER_SUFFIX
        self.lock_seconds = positive_float("lock_seconds")(lock_seconds)
        self.max_delivery_count = positive_int("max_delivery_count")(max_delivery_count)
        self.access = Access(access, BROKER_RIGHTS)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL"):
            raise ConfigurationError("option 'synchronous' must be OFF, NORMAL or FULL")
        erase_after = non_negative_float("erase_after")(erase_after)
        self.capabilities = replace(
            type(self).capabilities,
            max_delivery_count=self.max_delivery_count,
            max_message_bytes=max_message_bytes or type(self).capabilities.max_message_bytes,
        )
        self._lock = threading.Lock()
        self.database = self.directory / DATABASE_NAME
        self._truncated_at = time.monotonic()
        with _sqlite_errors(f"open the queue database in {self.directory}", self.database):
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) where needed.
            self._db: sqlite3.Connection | None = connect_private(
                self.database,
                timeout=30.0,
                isolation_level=None,
                check_same_thread=False,
            )
            wal_mode(self._db, 30.0)
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # Checkpoints are what fsync in WAL mode: every 16 MB of log rather
            # than SQLite's 4 MB keeps one settle per message cheap, and bounds
            # the log on a small disk (truncated back to 16 MB afterwards).
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            # Bodies carry patient data: a delete zeroes the row and the pages
            # it frees (FAST leaves freed overflow pages as they were), and the
            # eraser truncates the log that still holds the old pages.
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
            self._identity = _identity(self.database)
        self._eraser = WalEraser(lambda: self._db, self._lock, erase_after)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``local:///DIR?queue=NAME[&lock_seconds=&max_delivery_count=&access=...]``."""
        directory = _local_path(url, "local")
        claim_check = options.pop("claim_check", None)
        opts = merge_options(
            url,
            options,
            {
                "queue": str,
                "lock_seconds": positive_float("lock_seconds"),
                "max_delivery_count": positive_int("max_delivery_count"),
                "max_message_bytes": positive_int("max_message_bytes"),
                "access": str,
                "synchronous": str,
                "erase_after": non_negative_float("erase_after"),
            },
        )
        queue = opts.pop("queue", None)
        if not queue:
            raise ConfigurationError("local:// URL needs a queue: 'local:///DIR?queue=NAME'")
        return cls(directory, queue, claim_check=claim_check, **opts)

    def __repr__(self) -> str:
        return (
            f"LocalBroker(directory={str(self.directory)!r}, queue={self.queue!r}, "
            f"access={self.access.value!r})"
        )

    @property
    def destination(self) -> str:
        """The queue's name."""
        return self.queue

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise ConfigurationError(f"{self!r} is closed")
        return self._db

    def _current(self) -> sqlite3.Connection:
        """The connection, after checking that the file is still the one it opened.

        A connection keeps reading an unlinked database for ever, so a queue
        file deleted or replaced under it would go unnoticed: messages sent
        to the new file would never be received. Fail loudly instead.
        """
        db = self._conn()
        if _identity(self.database) != self._identity:
            log.error("queue database %s was deleted or replaced while open", self.database)
            raise ConfigurationError(
                f"the queue database {self.database} was deleted or replaced while open; "
                "reopen the endpoint"
            )
        return db

    def _truncate_when_idle(self) -> None:
        """Checkpoint and empty the write-ahead log, at most every IDLE_TRUNCATE_SECONDS."""
        now = time.monotonic()
        if now - self._truncated_at < IDLE_TRUNCATE_SECONDS:
            return
        self._truncated_at = now
        with self._lock, _sqlite_errors("checkpoint the queue database", self.database):
            # Returns "busy" rather than failing while another process reads;
            # the next idle receive tries again.
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    # sending
    def _may_send(self) -> None:
        self.access.require("send", f"send to queue {self.queue!r}")

    def _send_batch(self, batch: list[Message]) -> None:
        now = time.time()
        rows = []
        for m in batch:
            check_properties(m.properties)
            rows.append(
                (
                    self.queue,
                    now,
                    now,
                    m.message_id,
                    m.correlation_id,
                    m.content_type,
                    m.subject,
                    json.dumps(m.properties, ensure_ascii=False),
                    m.body,
                )
            )
        with self._lock, _sqlite_errors(f"send to queue {self.queue!r}", self.database):
            db = self._current()
            with _transaction(db):
                db.executemany(
                    "INSERT INTO messages (queue, visible_at, enqueued_at, message_id, "
                    "correlation_id, content_type, subject, properties, body) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

    # receiving
    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        return self._poll(self.queue, max_messages, wait, self.max_delivery_count)

    def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        return self._poll(self.dead_letter_queue, max_messages, wait, None)

    def verify(self, right: str) -> bool:
        """The broker's own rights decide (see ``access``); see :meth:`MessageBroker.verify`."""
        super().verify(right)  # checks the name of the right
        self.access.require(right, f"{right} on queue {self.queue!r}")
        return True

    def peek(self, max_messages: int = 1) -> list[Message]:
        """The oldest ``max_messages`` messages of the queue, locked or not, left as they are."""
        self.access.require("receive", f"peek at queue {self.queue!r}")
        if max_messages < 1:
            raise ConfigurationError("max_messages must be at least 1")
        with self._lock, _sqlite_errors(f"peek at queue {self.queue!r}", self.database):
            rows = (
                self._conn()
                .execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE queue = ? "  # noqa: S608 - constant columns
                    "ORDER BY id LIMIT ?",
                    (self.queue, max_messages),
                )
                .fetchall()
            )
        return decode_each(
            rows, lambda row: self._message(self.queue, row), lambda row: Message(b"")
        )

    def _poll(self, queue: str, max_messages: int, wait: float, limit: int | None) -> list[Message]:
        self.access.require("receive", f"receive from queue {queue!r}")
        if max_messages < 1:
            raise ConfigurationError("max_messages must be at least 1")
        deadline = time.monotonic() + max(0.0, wait)
        pause = _MIN_POLL
        while True:
            got = self._claim(queue, max_messages, limit)
            left = deadline - time.monotonic()
            if got or left <= 0:
                if not got:
                    self._truncate_when_idle()
                return got
            # Another process may send at any time; polling is the only signal
            # SQLite gives, so back off briefly instead of spinning.
            time.sleep(min(pause, left))
            pause = min(pause * 2, _MAX_POLL)

    def _claim(self, queue: str, max_messages: int, limit: int | None) -> list[Message]:
        token = uuid.uuid4().hex
        with self._lock, _sqlite_errors(f"receive from queue {queue!r}", self.database):
            db = self._current()
            # BEGIN IMMEDIATE takes the write lock before reading, so no other
            # process can claim the rows we select: one holder per message.
            with _transaction(db):
                rows = self._select_ready(db, queue, max_messages, limit)
                now = time.time()
                if rows:
                    # Only "?" placeholders are interpolated; values are bound.
                    placeholders = ",".join("?" * len(rows))
                    db.execute(
                        "UPDATE messages SET lock_token = ?, visible_at = ?, "  # noqa: S608
                        f"delivery_count = delivery_count + 1 WHERE id IN ({placeholders})",
                        (token, now + self.lock_seconds, *(r[0] for r in rows)),
                    )
        locked_until = datetime.fromtimestamp(now + self.lock_seconds, UTC)
        return decode_each(
            rows,
            lambda row: self._message(queue, row, token, locked_until),
            lambda row: Message(
                b"",
                lock_token=token,
                locked_until=locked_until,
                dead_letter_reason=row[8],
                dead_letter_description=row[9],
                raw=_Handle(queue, row[0]),
            ),
        )

    def _select_ready(
        self, db: sqlite3.Connection, queue: str, max_messages: int, limit: int | None
    ) -> list[tuple[Any, ...]]:
        while True:
            now = time.time()
            rows: list[tuple[Any, ...]] = db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE queue = ? AND visible_at <= ? "  # noqa: S608 - constant columns
                "ORDER BY visible_at, id LIMIT ?",
                (queue, now, max_messages),
            ).fetchall()
            if limit is None:
                return rows
            spent = [r for r in rows if r[1] >= limit]
            if not spent:
                return rows
            # Delivered max_delivery_count times and released again (lock
            # expired or abandoned): it goes to the dead-letter queue now, as
            # Service Bus does, and we look for others.
            db.executemany(
                "UPDATE messages SET queue = ?, visible_at = ?, lock_token = NULL, "
                "delivery_count = 0, dead_letter_reason = ?, dead_letter_description = ? "
                "WHERE id = ?",
                [
                    (
                        self.dead_letter_queue,
                        now,
                        MAX_DELIVERY_REASON,
                        f"delivered {r[1]} times (max_delivery_count={limit})",
                        r[0],
                    )
                    for r in spent
                ],
            )

    def _message(
        self,
        queue: str,
        row: tuple[Any, ...],
        token: str | None = None,
        locked_until: datetime | None = None,
    ) -> Message:
        # Without a token the row is peeked, not claimed: no delivery is counted.
        (
            row_id,
            delivery_count,
            enqueued_at,
            message_id,
            correlation_id,
            content_type,
            subject,
            properties,
            reason,
            description,
            body,
        ) = row
        return Message(
            body=bytes(body),
            message_id=message_id,
            correlation_id=correlation_id,
            content_type=content_type,
            subject=subject,
            properties=json.loads(properties),
            delivery_count=delivery_count + (token is not None),
            enqueued_at=datetime.fromtimestamp(enqueued_at, UTC),
            lock_token=token,
            locked_until=locked_until,
            dead_letter_reason=reason,
            dead_letter_description=description,
            raw=None if token is None else _Handle(queue, row_id),
        )

    # settlement
    def _settle(self, message: Message, action: str, sql: str, args: tuple[Any, ...]) -> None:
        """Run ``sql`` (ending in the lock check) for a held message, else raise LockLost."""
        raise_outcome(self._settle_many([message], action, sql, args))

    def _settle_many(
        self, messages: list[Message], action: str, sql: str, args: tuple[Any, ...]
    ) -> list[IrisCloudError | None]:
        """Run ``sql`` for each held message in one transaction; one outcome each."""
        outcomes, groups = held_by(messages, lambda m: self._settle_handle(m, action), _one)
        held = [(index, messages[index], handle) for index, handle in groups.get(None, [])]
        if not held:
            return outcomes
        try:
            with self._lock, _sqlite_errors(action, self.database):
                db = self._conn()
                with _transaction(db, len(held) > 1):
                    now = time.time()
                    counts = [
                        db.execute(
                            sql + _HELD, (*args, handle.row, handle.queue, message.lock_token, now)
                        ).rowcount
                        for _, message, handle in held
                    ]
        except IrisCloudError as exc:  # nothing was settled
            for index, _, _ in held:
                outcomes[index] = exc
            return outcomes
        for (index, message, _), count in zip(held, counts, strict=True):
            if count != 1:
                outcomes[index] = LockLost(
                    f"cannot {action} message {message.message_id}: its lock expired or it was "
                    "settled; it will be (or was) delivered again"
                )
        return outcomes

    def _settle_handle(self, message: Message, action: str) -> _Handle:
        if "receive" not in self.access.rights:
            self.access.require("receive", f"{action} messages of queue {self.queue!r}")
        handle = require_handle(message, _Handle)
        if handle.queue != self.queue and handle.queue != self.dead_letter_queue:
            raise ConfigurationError(f"message was received from another queue than {self.queue}")
        return handle

    def complete(self, message: Message) -> None:
        """Delete ``message``; :class:`LockLost` if its lock is gone."""
        raise_outcome(self.complete_many([message]))

    def complete_many(self, messages: Iterable[Message]) -> list[IrisCloudError | None]:
        """Delete several messages in one transaction; one outcome each (see the port)."""
        batch = list(messages)
        outcomes = self._settle_many(batch, "complete", "DELETE FROM messages", ())
        if any(o is None for o in outcomes):
            self._eraser.deleted()
        return self._completed_many(batch, outcomes)

    def abandon_many(
        self, messages: Iterable[Message], delay: float | None = None
    ) -> list[IrisCloudError | None]:
        """Release several messages in one transaction; one outcome each (see the port)."""
        if delay is not None and delay < 0:
            raise ConfigurationError("abandon delay must not be negative")
        return self._settle_many(
            list(messages),
            "abandon",
            "UPDATE messages SET lock_token = NULL, visible_at = ?",
            (time.time() + (delay or 0.0),),
        )

    def abandon(self, message: Message, delay: float | None = None) -> None:
        """Release ``message`` for redelivery, after ``delay`` seconds if given."""
        raise_outcome(self.abandon_many([message], delay))

    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Move ``message`` to ``NAME$dlq`` with ``reason`` and ``description``."""
        handle = require_handle(message, _Handle)
        if handle.queue != self.queue:
            raise ConfigurationError("a dead-lettered message cannot be dead-lettered again")
        self._settle(
            message,
            "dead-letter",
            "UPDATE messages SET queue = ?, lock_token = NULL, visible_at = ?, "
            "delivery_count = 0, dead_letter_reason = ?, dead_letter_description = ?",
            (self.dead_letter_queue, time.time(), reason, description),
        )

    def renew_lock(self, message: Message) -> datetime:
        """Hold ``message`` for another ``lock_seconds``; returns the new expiry."""
        until = time.time() + self.lock_seconds
        self._settle(message, "renew the lock of", "UPDATE messages SET visible_at = ?", (until,))
        message.locked_until = datetime.fromtimestamp(until, UTC)
        return message.locked_until

    def close(self) -> None:
        """Close the database connection; messages stay in the directory."""
        with self._lock:
            if self._db is not None:
                self._eraser.close()
                self._db.close()
                self._db = None


def _one(handle: _Handle) -> None:
    """One group: every message of a batch settles in the one database."""


def _identity(path: Path) -> tuple[int, int] | None:
    """Device and inode of ``path``, or ``None`` when it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


# -- store ------------------------------------------------------------------------


class _fs_errors:
    """Filesystem errors of the store's own files as framework errors, in one place.

    A class rather than a generator: a put passes through it several times.
    """

    __slots__ = ("action",)

    def __init__(self, action: str) -> None:
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None or isinstance(exc, IrisCloudError) or not isinstance(exc, OSError):
            return
        action = self.action
        if isinstance(
            exc, (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)
        ):
            # mkdir of a parent that is a file, or a link onto a directory.
            raise ConfigurationError(
                f"cannot {action}: a parent of it is an object, or it is a directory"
            ) from exc
        if isinstance(exc, PermissionError):
            raise PermissionDenied(
                f"cannot {action}: the filesystem denies write access to the store directory",
                right="write",
            ) from exc
        code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        text = f"cannot {action}: {exc.strerror or type(exc).__name__} ({code})"
        if is_transient(exc):
            raise Unavailable(text) from exc
        raise IrisCloudError(text) from exc


def _unlink_at(name: str, dir_fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _write_all(out_fd: int, data: memoryview) -> None:
    written = 0
    while written < len(data):
        written += os.write(out_fd, data[written:])


def _copy_stream(src: IO[bytes], out_fd: int, chunk: int) -> None:
    """Copy ``src`` to ``out_fd`` in bounded memory; in the kernel when ``src`` is a file."""
    if isinstance(src, io.BytesIO):
        # Bytes already in memory (put(bytes)): read() of a whole BytesIO made
        # from bytes returns those bytes, not a copy (getbuffer() would copy).
        _write_all(out_fd, memoryview(src.read()))
        return
    try:
        in_fd = src.fileno()
        regular = stat.S_ISREG(os.fstat(in_fd).st_mode)
    except (AttributeError, OSError, ValueError):
        regular = False
    if regular:
        offset = src.tell()
        end = os.fstat(in_fd).st_size
        try:
            while offset < end:
                sent = os.sendfile(out_fd, in_fd, offset, min(end - offset, 1 << 30))
                if sent == 0:
                    break
                offset += sent
            src.seek(offset)
            return
        except OSError:
            # sendfile refused (e.g. an exotic filesystem): continue in user space
            # from where it stopped.
            src.seek(offset)
    buf = bytearray(chunk)
    view = memoryview(buf)
    readinto = getattr(src, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(view)
            if not n:
                break
            _write_all(out_fd, view[:n])
        else:
            data = src.read(chunk)
            if not data:
                break
            _write_all(out_fd, memoryview(data))


_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)
_UNNAMED_FILE = os.O_WRONLY | _O_TMPFILE | os.O_CLOEXEC
_EARLY_CHECK_BYTES = 1024 * 1024
"""Above this size (or unknown) a conditional put looks for the name before
writing: writing it only to be refused costs more than the look."""


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


class FileStore(ObjectStore):
    """Objects as files under a directory, metadata in hidden JSON sidecars."""

    scheme: ClassVar[str] = "file"
    capabilities: Capabilities = Capabilities(
        conditional_create=True, signed_urls=False, native_watch=False
    )
    copy_chunk: ClassVar[int] = 1024 * 1024

    def __init__(
        self, root: str | os.PathLike[str], *, access: str = "rw", fsync: bool = False
    ) -> None:
        self.root = Path(root).absolute()
        self.access = Access(access, STORE_RIGHTS)
        self.fsync = fsync
        rights = self.access.rights
        self.capabilities = replace(
            type(self).capabilities,
            can_read="read" in rights,
            can_list="list" in rights,
            can_write="write" in rights,
        )
        try:
            private_dir(self.root)
        except OSError as exc:
            raise ConfigurationError(f"cannot create store directory {self.root}: {exc}") from exc
        self._real_root = os.path.realpath(self.root)
        self._tmp = self.root / RESERVED_DIR / "tmp"
        self._meta = self.root / RESERVED_DIR / "meta"
        # The root and the staging directory, opened once (without following
        # links below the root) and kept: every call works relative to them.
        self._fds: dict[str, int] = {}
        self._fds_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _close_all, self._fds)
        # Unnamed temp files (O_TMPFILE, linked in by /proc/self/fd) need both.
        self._unnamed = bool(_O_TMPFILE) and os.path.isdir("/proc/self/fd")
        if "write" in rights:
            # What puts killed mid-write left (their names are ours, never objects').
            remove_stale_temp_files(self._tmp, hidden_only=False, suffixes=(".part", ".json"))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``file:///DIR[?access=r|w|rw&fsync=true]``."""
        root = _local_path(url, "file")
        opts = merge_options(url, options, {"access": str, "fsync": parse_bool("fsync")})
        return cls(root, **opts)

    def __repr__(self) -> str:
        return f"FileStore(root={str(self.root)!r}, access={self.access.value!r})"

    @property
    def container(self) -> str:
        """The store's directory."""
        return str(self.root)

    def close(self) -> None:
        """Close the store's directory descriptors (reopened if the store is used again)."""
        with self._fds_lock:
            _close_all(self._fds)

    # paths
    def _fd(self, key: str) -> int:
        """The kept descriptor of the root (``"root"``) or the staging directory (``"tmp"``)."""
        fd = self._fds.get(key)
        if fd is not None:
            return fd
        with self._fds_lock:
            fd = self._fds.get(key)
            if fd is None:
                root = self._fds.get("root")
                if root is None:
                    root = self._fds["root"] = os.open(self._real_root, _DIR_OPEN)
                fd = root if key == "root" else self._open_tmp(root)
                self._fds[key] = fd
        return fd

    def _open_tmp(self, root: int) -> int:
        try:
            return open_dirs(root, [RESERVED_DIR, "tmp"], create=True)
        except (LinkOnTheWay, NotADirectoryError):
            raise ConfigurationError(UNSAFE_DIRECTORY.format(base=self._real_root)) from None

    def _forget(self) -> bool:
        """Drop the kept descriptors of directories removed under us; whether there were any.

        The next call reopens them. If the store's directory itself was
        removed, it is made again (as opening the store would), so that a put
        after it works as before.
        """
        with self._fds_lock:
            gone = [key for key, fd in self._fds.items() if os.fstat(fd).st_nlink == 0]
            for key in gone:
                os.close(self._fds.pop(key))
            if "root" in gone:
                private_dir(self.root)
        return bool(gone)

    @staticmethod
    def _split(name: str) -> tuple[list[str], str]:
        """The directories and the file name of a checked object name."""
        if "/" not in name:
            if name == RESERVED_DIR:
                raise ConfigurationError(f"object names under {RESERVED_DIR}/ are reserved")
            return [], name
        parts = name.split("/")
        if "" in parts:  # "a//b" and "a/" name what "a/b" and "a" name on disk
            parts = [p for p in parts if p]
        if parts[0] == RESERVED_DIR:
            raise ConfigurationError(f"object names under {RESERVED_DIR}/ are reserved")
        return parts[:-1], parts[-1]

    @contextlib.contextmanager
    def _at(self, name: str, dirs: list[str], *, create: bool) -> Iterator[int]:
        """The open directory ``name`` lives in (the root's kept descriptor, or one opened)."""
        if not dirs:
            yield self._fd("root")
            return
        fd = self._dir(name, dirs, create=create)
        try:
            yield fd
        finally:
            os.close(fd)

    def _dir(self, name: str, dirs: list[str], *, create: bool) -> int:
        """A new descriptor of the directory ``name`` lives in, no link followed on the way.

        Core checks reject '..' and absolute names; not following links
        keeps a symlink inside the tree from leading out of it, or into the
        reserved directory.
        """
        try:
            return open_dirs(self._fd("root"), dirs, create=create)
        except LinkOnTheWay:
            raise ConfigurationError(
                f"object name {name!r} passes through a symbolic link, which is not followed: "
                f"it could lead outside the store root or into its reserved {RESERVED_DIR}/"
            ) from None

    def _linked(self, name: str) -> ConfigurationError:
        return ConfigurationError(
            f"object {name!r} is a symbolic link, which is not followed: "
            "it could lead outside the store root"
        )

    def _sidecar(self, name: str, *, create: bool = False) -> tuple[int, str]:
        """The open directory of ``name``'s sidecar and the sidecar's file name in it.

        Opened below the root without following links (``.iris-cloud`` and
        ``meta`` included): a symlink planted there cannot redirect a write,
        read or delete of metadata (:class:`ConfigurationError`).
        """
        dirs, leaf = self._split(name)
        fd = open_below(Path(self._real_root), [RESERVED_DIR, "meta", *dirs], create=create)
        return fd, f"{leaf}.json"

    @staticmethod
    def _write_sidecar(fd: int, leaf: str, meta: dict[str, Any]) -> None:
        # Written beside it and renamed over it: a reader sees old or new, whole.
        tmp = f".{uuid.uuid4().hex}.part"
        out = os.open(tmp, _NEW_FILE, FILE_MODE, dir_fd=fd)
        try:
            with os.fdopen(out, "w", encoding="utf-8") as fh:
                json.dump(meta, fh)
            os.replace(tmp, leaf, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=fd)
            raise

    @staticmethod
    def _etag(st: os.stat_result) -> str:
        # A put links or renames a new file into place, so the inode changes with every version.
        return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"

    def _info_from(self, name: str, st: os.stat_result, meta: dict[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            name=name,
            size=st.st_size,
            content_type=meta.get("content_type"),
            metadata=dict(meta.get("metadata") or {}),
            etag=self._etag(st),
            last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
        )

    def _read_sidecar(self, name: str, etag: str) -> dict[str, Any]:
        try:
            fd, leaf = self._sidecar(name)
        except FileNotFoundError:
            return {}
        try:
            src = os.open(leaf, _READ_FILE, dir_fd=fd)
            with os.fdopen(src, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # A planted link as the sidecar itself fails here (ELOOP).
            raise IrisCloudError(
                f"metadata of {name!r} is unreadable ({type(exc).__name__})"
            ) from exc
        finally:
            os.close(fd)
        if not isinstance(data, dict):
            return {}
        # A sidecar names the version it describes: one left by an earlier
        # version of the name (put without metadata, a delete cut short) is
        # not this object's. Sidecars of older releases name none.
        return data if data.get("etag", etag) == etag else {}

    # writing
    def _put(
        self,
        name: str,
        stream: IO[bytes],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> ObjectInfo:
        self.access.require("write", f"put {name!r}")
        dirs, leaf = self._split(name)
        described = content_type is not None or bool(metadata)
        errors = _fs_errors(f"put {name!r}")
        meta_fd = -1
        meta_leaf = ""
        dir_fd = -1
        try:
            with errors:
                # Opened before anything is created or written, without following
                # links: a link planted under .iris-cloud refuses the put before
                # data or metadata goes anywhere.
                if described or overwrite:
                    # No sidecar directory (FileNotFoundError): no old metadata to remove.
                    with contextlib.suppress(FileNotFoundError):
                        meta_fd, meta_leaf = self._sidecar(name, create=described)
                dir_fd, fd, tmp, tmp_dir = self._stage(name, dirs, unnamed=not overwrite)
            try:
                with errors:
                    if not overwrite and (size is None or size > _EARLY_CHECK_BYTES):
                        # Early answer; the link below is what makes it atomic.
                        with contextlib.suppress(FileNotFoundError):
                            os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
                            raise AlreadyExists(f"object {name!r} already exists (overwrite=False)")
                # Errors of the source (or a full disk) propagate unchanged.
                _copy_stream(stream, fd, self.copy_chunk)
                if self.fsync:
                    os.fsync(fd)
                st = os.fstat(fd)
                with errors:
                    # A link fails if the name exists: the atomic conditional
                    # create. A file without a name (tmp == "") leaves nothing
                    # behind if anything fails; a named one is removed below.
                    self._publish(
                        name,
                        tmp or f"/proc/self/fd/{fd}",
                        tmp_dir if tmp else None,
                        dir_fd,
                        leaf,
                        link=not overwrite,
                    )
                    if overwrite:
                        tmp = ""  # renamed into place: no temp name is left
            finally:
                os.close(fd)
                if tmp:
                    _unlink_at(tmp, tmp_dir)
            if meta_fd >= 0:
                with errors:
                    if described:
                        meta = {"content_type": content_type, "metadata": metadata}
                        self._write_sidecar(meta_fd, meta_leaf, {**meta, "etag": self._etag(st)})
                    else:
                        # The metadata of the version this one replaced is no longer anyone's.
                        _unlink_at(meta_leaf, meta_fd)
        finally:
            if dirs and dir_fd >= 0:
                os.close(dir_fd)
            if meta_fd >= 0:
                os.close(meta_fd)
        return ObjectInfo(
            name=name,
            size=st.st_size,
            content_type=content_type,
            metadata=metadata,  # put_metadata's own copy: the caller holds no reference
            etag=self._etag(st),
            last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
        )

    def _stage(self, name: str, dirs: list[str], *, unnamed: bool) -> tuple[int, int, str, int]:
        """The directory ``name`` goes in (made if missing) and a new temp file for it.

        Returns the directory's descriptor (a new one if ``dirs``, else the
        kept root's) and what :meth:`_temp_file` returns. A directory removed
        under us (the store's, or a now-empty one a concurrent delete pruned)
        is made again.
        """
        for attempt in range(5):
            dir_fd = -1
            try:
                dir_fd = self._dir(name, dirs, create=True) if dirs else self._fd("root")
                return (dir_fd, *self._temp_file(dir_fd, unnamed=unnamed))
            except BaseException as exc:
                # ENOENT making a directory in, or a file in, a removed directory
                # (EPERM for O_TMPFILE there).
                removed = isinstance(exc, FileNotFoundError | PermissionError) and (
                    (bool(dirs) and dir_fd >= 0 and os.fstat(dir_fd).st_nlink == 0)
                    or self._forget()
                )
                if dirs and dir_fd >= 0:
                    os.close(dir_fd)
                if attempt == 4 or not removed:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _temp_file(self, dir_fd: int, *, unnamed: bool) -> tuple[int, str, int]:
        """A new private file, its name ('' for none) and the directory it is in.

        Without a name (O_TMPFILE) in ``dir_fd``, the directory it is then
        linked into, where the filesystem has them: a killed put leaves
        nothing, and no staging directory is needed. Otherwise named, in the
        staging directory. Private, created exclusively: objects are
        patients' images.
        """
        if unnamed and self._unnamed:
            try:
                return os.open(".", _UNNAMED_FILE, FILE_MODE, dir_fd=dir_fd), "", dir_fd
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
                self._unnamed = False  # none on this filesystem: named ones from now on
        tmp_dir = self._fd("tmp")
        tmp = f"{uuid.uuid4().hex}.part"
        return os.open(tmp, _NEW_FILE, FILE_MODE, dir_fd=tmp_dir), tmp, tmp_dir

    def _publish(
        self, name: str, src: str, src_dir: int | None, dir_fd: int, leaf: str, *, link: bool
    ) -> None:
        """Link (``link``: fails if ``leaf`` exists) or rename ``src`` to ``leaf`` in ``dir_fd``."""
        again = -1
        try:
            for attempt in range(5):
                try:
                    if link:
                        # follow_symlinks: /proc/self/fd/N names the open file, not a link.
                        os.link(
                            src, leaf, src_dir_fd=src_dir, dst_dir_fd=dir_fd, follow_symlinks=True
                        )
                    else:
                        os.replace(src, leaf, src_dir_fd=src_dir, dst_dir_fd=dir_fd)
                    return
                except FileExistsError as exc:
                    raise AlreadyExists(
                        f"object {name!r} already exists (overwrite=False)"
                    ) from exc
                except FileNotFoundError:
                    if attempt == 4 or os.fstat(dir_fd).st_nlink:
                        raise
                # A concurrent delete pruned the (then empty) directory after it was
                # opened, or the store's directory was removed: make it again.
                if again >= 0:
                    os.close(again)
                self._forget()
                dir_fd = again = self._dir(name, self._split(name)[0], create=True)
        finally:
            if again >= 0:
                os.close(again)

    # reading
    def _open_file(self, name: str) -> int:
        """A read descriptor of ``name``'s file; :class:`NotFound` if there is none."""
        dirs, leaf = self._split(name)
        try:
            with self._at(name, dirs, create=False) as dir_fd:
                return os.open(leaf, _READ_FILE, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"object {name!r} not found in {self.root}") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._linked(name) from None
            raise

    def _open_read(self, name: str) -> IO[bytes]:
        self.access.require("read", f"read {name!r}")
        fd = self._open_file(name)
        try:
            return os.fdopen(fd, "rb")
        except IsADirectoryError as exc:
            os.close(fd)
            raise NotFound(f"object {name!r} not found in {self.root} (it is a directory)") from exc
        except BaseException:
            os.close(fd)
            raise

    def download_to(self, name: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Copy ``name`` to ``path`` in the kernel; the file appears only when complete."""
        src = self.open_read(name)  # rights, name checks and NotFound, as for any store
        target = Path(path)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.part"
        try:
            private_dir(target.parent)
            with (
                src,
                os.fdopen(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as out,
            ):
                _copy_stream(src, out.fileno(), self.copy_chunk)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return self.info(name)

    def _info(self, name: str) -> ObjectInfo:
        self.access.require("read", f"read the properties of {name!r}")
        dirs, leaf = self._split(name)
        try:
            with self._at(name, dirs, create=False) as dir_fd:
                st = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"object {name!r} not found in {self.root}") from exc
        if stat.S_ISLNK(st.st_mode):
            raise self._linked(name)
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(f"object {name!r} not found in {self.root} (it is a directory)")
        return self._info_from(name, st, self._read_sidecar(name, self._etag(st)))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        self.access.require("list", f"list {self.root}")
        head = prefix.rpartition("/")[0]
        start = self.root
        if head:
            parents, last = self._split(head)
            dirs = [*parents, last]
            try:
                os.close(self._dir(head, dirs, create=False))  # no link on the way
            except (FileNotFoundError, NotADirectoryError):
                return iter(())
            start = self.root.joinpath(*dirs)
        return self._walk(start, f"{head}/" if head else "", prefix)

    def _walk(self, directory: Path, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        items: list[tuple[str, bool, os.DirEntry[str]]] = []
        for entry in entries:
            if not rel and entry.name == RESERVED_DIR:
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            # Sorting directories as "name/" gives the global name order S3
            # uses: "a-b" sorts before "a/c" because '-' < '/'.
            key = f"{rel}{entry.name}/" if is_dir else f"{rel}{entry.name}"
            if key.startswith(prefix) or (is_dir and prefix.startswith(key)):
                items.append((key, is_dir, entry))
        items.sort(key=lambda item: item[0])
        for key, is_dir, entry in items:
            if is_dir:
                yield from self._walk(Path(entry.path), key, prefix)
            elif entry.is_file(follow_symlinks=False):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted while we listed
                yield self._info_from(key, st, {})

    def _delete(self, name: str) -> None:
        self.access.require("delete", f"delete {name!r}")
        dirs, leaf = self._split(name)
        try:
            with self._at(name, dirs, create=False) as dir_fd:
                # unlink removes a planted link itself, never what it points at.
                os.unlink(leaf, dir_fd=dir_fd)
        except IsADirectoryError as exc:
            raise NotFound(f"object {name!r} not found in {self.root} (it is a directory)") from exc
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"object {name!r} not found in {self.root}") from exc
        self._prune([], dirs)
        self._delete_sidecar(name)

    def _delete_sidecar(self, name: str) -> None:
        try:
            fd, leaf = self._sidecar(name)
        except FileNotFoundError:
            return
        except ConfigurationError:
            # The object is gone; a planted link is left alone, not followed.
            log.warning("metadata of a deleted object sits behind a symbolic link: left alone")
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leaf, dir_fd=fd)
        finally:
            os.close(fd)
        self._prune([RESERVED_DIR, "meta"], self._split(name)[0])

    def _prune(self, kept: list[str], dirs: list[str]) -> None:
        """Remove now-empty directories ``kept/dirs...`` bottom up (names can become objects again).

        Each is removed relative to its parent, opened without following links.
        """
        fds: list[int] = []
        try:
            with contextlib.suppress(OSError):  # gone, or a link: nothing to prune
                fds.append(open_dirs(self._fd("root"), kept, create=False))
                for part in dirs[:-1]:
                    fds.append(open_dirs(fds[-1], [part], create=False))
            for parent, part in zip(reversed(fds), reversed(dirs[: len(fds)]), strict=False):
                try:
                    os.rmdir(part, dir_fd=parent)
                except OSError:
                    return  # not empty (or gone): someone else's objects live there
        finally:
            for fd in fds:
                os.close(fd)


@hookimpl
def iris_cloud_public_options() -> dict[str, frozenset[str]]:
    """Every ``local://`` and ``file://`` option: none holds a secret."""
    return {
        "local": frozenset(
            {
                "queue",
                "lock_seconds",
                "max_delivery_count",
                "max_message_bytes",
                "access",
                "synchronous",
                "erase_after",
            }
        ),
        "file": frozenset({"access", "fsync"}),
    }


@hookimpl
def iris_cloud_broker_schemes() -> dict[str, type[MessageBroker]]:
    """``local://`` SQLite queues."""
    return {"local": LocalBroker}


@hookimpl
def iris_cloud_store_schemes() -> dict[str, type[ObjectStore]]:
    """``file://`` directory stores."""
    return {"file": FileStore}


@hookimpl
def iris_cloud_async_broker_schemes() -> dict[str, str]:
    """``local://`` SQLite queues, async (imported when first opened)."""
    return {"local": "iris_cloud.aio.builtin:AsyncLocalBroker"}


@hookimpl
def iris_cloud_async_store_schemes() -> dict[str, str]:
    """``file://`` directory stores, async."""
    return {"file": "iris_cloud.aio.builtin:AsyncFileStore"}
