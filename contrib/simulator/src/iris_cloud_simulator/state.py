"""The simulator's persisted state: orders, images, processed messages and an outbox.

One SQLite database (WAL) in the state directory. Every decision the
simulator takes (an order created, an image attached, a grading) is written in
one transaction together with the messages it must send (the *outbox*) and
the id of the message that caused it. Messages leave the outbox only after
the broker accepted them, so a crash at any point loses nothing: after a
restart the outbox is sent again (with the same message ids, which a
deduplicating consumer recognises) and a redelivered order is recognised by
its message id and not applied twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iris_cloud.private import connect_private, wal_mode
from iris_cloud.tracing import trace_properties

__all__ = ["OPEN_STATUSES", "ImageRow", "OrderRow", "OutboxRow", "State", "Transaction", "now_iso"]

OPEN_STATUSES = ("AwaitingImages", "QueuedForGrading")
"""Statuses in which an order can still change, be cancelled or receive images."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    local_id TEXT PRIMARY KEY,
    iris_order_id INTEGER NOT NULL,
    client_guid TEXT,
    site_local_id TEXT,
    patient_local_id TEXT,
    status TEXT NOT NULL,
    workflow TEXT NOT NULL,
    request TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    grading TEXT,
    created_at TEXT NOT NULL,
    queued_at TEXT,
    graded_at TEXT
);
CREATE TABLE IF NOT EXISTS images (
    order_local_id TEXT NOT NULL,
    name TEXT NOT NULL,
    image_local_id TEXT,
    iris_image_id INTEGER NOT NULL,
    laterality TEXT,
    taken TEXT,
    received TEXT NOT NULL,
    PRIMARY KEY (order_local_id, name)
);
CREATE INDEX IF NOT EXISTS images_by_name ON images (name);
CREATE TABLE IF NOT EXISTS pending_images (
    name TEXT PRIMARY KEY,
    order_local_id TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    received TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_by_order ON pending_images (order_local_id);
CREATE TABLE IF NOT EXISTS seen_objects (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS processed (message_id TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    role TEXT NOT NULL,
    message_id TEXT NOT NULL,
    correlation_id TEXT,
    subject TEXT,
    properties TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS order_traces (local_id TEXT PRIMARY KEY, properties TEXT NOT NULL);
"""

# IRIS ids look like the documented examples (seven digits); they only need
# to be unique within one state directory.
_COUNTER_START = {"iris_order_id": 1_094_030, "iris_image_id": 3_677_459}


def now_iso() -> str:
    """The current time as ISO 8601 with offset, as IRIS writes it."""
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class OrderRow:
    """One order as the simulator keeps it."""

    local_id: str
    iris_order_id: int
    client_guid: str | None
    site_local_id: str | None
    patient_local_id: str | None
    status: str
    workflow: str
    request: str
    request_hash: str
    grading: str | None
    created_at: str
    queued_at: str | None
    graded_at: str | None

    @property
    def is_open(self) -> bool:
        """Whether the order can still change (not graded, completed or cancelled)."""
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class ImageRow:
    """One image attached to an order."""

    order_local_id: str
    name: str
    image_local_id: str | None
    iris_image_id: int
    laterality: str | None
    taken: str | None
    received: str


@dataclass(frozen=True)
class OutboxRow:
    """A message waiting to be sent to the broker of ``role``."""

    id: int
    role: str
    message_id: str
    correlation_id: str | None
    subject: str | None
    properties: dict[str, Any]
    body: bytes


class Transaction:
    """The state operations available inside :meth:`State.transaction`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # -- idempotency -----------------------------------------------------------
    def processed(self, message_id: str) -> bool:
        """Whether a message with this id was already applied."""
        row = self._conn.execute(
            "SELECT 1 FROM processed WHERE message_id = ?", (message_id,)
        ).fetchone()
        return row is not None

    def mark_processed(self, message_id: str) -> None:
        """Record that the message with this id has been applied."""
        self._conn.execute(
            "INSERT OR IGNORE INTO processed (message_id, at) VALUES (?, ?)",
            (message_id, now_iso()),
        )

    def next_id(self, name: str) -> int:
        """The next value of a counter (IRIS order / image ids)."""
        row = self._conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        value = (row[0] if row else _COUNTER_START.get(name, 1)) + 1
        self._conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )
        return int(value)

    # -- orders ----------------------------------------------------------------
    def order(self, local_id: str) -> OrderRow | None:
        """The order with this LocalId, if the simulator knows it."""
        row = self._conn.execute(
            "SELECT local_id, iris_order_id, client_guid, site_local_id, patient_local_id, "
            "status, workflow, request, request_hash, grading, created_at, queued_at, "
            "graded_at FROM orders WHERE local_id = ?",
            (local_id,),
        ).fetchone()
        return OrderRow(*row) if row else None

    def insert_order(self, row: OrderRow) -> None:
        """Store a new order, and the current trace context (its handling's) with it."""
        trace = trace_properties()
        if trace:
            self._conn.execute(
                "INSERT OR REPLACE INTO order_traces VALUES (?, ?)",
                (row.local_id, json.dumps(trace)),
            )
        self._conn.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.local_id,
                row.iris_order_id,
                row.client_guid,
                row.site_local_id,
                row.patient_local_id,
                row.status,
                row.workflow,
                row.request,
                row.request_hash,
                row.grading,
                row.created_at,
                row.queued_at,
                row.graded_at,
            ),
        )

    def update_order(self, local_id: str, **changes: Any) -> None:
        """Change columns of an order (names checked against the table)."""
        allowed = {
            "status",
            "request",
            "request_hash",
            "grading",
            "queued_at",
            "graded_at",
            "site_local_id",
            "workflow",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot update order columns {sorted(unknown)}")
        assignments = ", ".join(f"{k} = ?" for k in changes)
        self._conn.execute(
            f"UPDATE orders SET {assignments} WHERE local_id = ?",  # noqa: S608 - names checked
            (*changes.values(), local_id),
        )

    # -- images ----------------------------------------------------------------
    def images(self, order_local_id: str) -> list[ImageRow]:
        """The images attached to an order, in the order they arrived."""
        rows = self._conn.execute(
            "SELECT order_local_id, name, image_local_id, iris_image_id, laterality, taken, "
            "received FROM images WHERE order_local_id = ? ORDER BY iris_image_id",
            (order_local_id,),
        ).fetchall()
        return [ImageRow(*r) for r in rows]

    def add_image(
        self,
        order_local_id: str,
        name: str,
        *,
        image_local_id: str | None,
        laterality: str | None,
        taken: str | None,
    ) -> ImageRow | None:
        """Attach an image to an order; ``None`` when it was attached already."""
        exists = self._conn.execute(
            "SELECT 1 FROM images WHERE order_local_id = ? AND name = ?", (order_local_id, name)
        ).fetchone()
        if exists:
            return None
        row = ImageRow(
            order_local_id=order_local_id,
            name=name,
            image_local_id=image_local_id,
            iris_image_id=self.next_id("iris_image_id"),
            laterality=laterality,
            taken=taken,
            received=now_iso(),
        )
        self._conn.execute(
            "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                row.order_local_id,
                row.name,
                row.image_local_id,
                row.iris_image_id,
                row.laterality,
                row.taken,
                row.received,
            ),
        )
        return row

    def seen(self, name: str) -> bool:
        """Whether the image watcher already looked at this object."""
        return (
            self._conn.execute("SELECT 1 FROM seen_objects WHERE name = ?", (name,)).fetchone()
            is not None
        )

    def mark_seen(self, name: str) -> None:
        """Record that the image watcher has looked at this object."""
        self._conn.execute("INSERT OR IGNORE INTO seen_objects (name) VALUES (?)", (name,))

    def add_pending(self, name: str, order_local_id: str, identifiers: dict[str, Any]) -> None:
        """Keep an Order First image whose order has not arrived yet."""
        self._conn.execute(
            "INSERT OR IGNORE INTO pending_images VALUES (?, ?, ?, ?)",
            (name, order_local_id, json.dumps(identifiers), now_iso()),
        )

    def take_pending(self, order_local_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Remove and return the images that waited for this order."""
        rows = self._conn.execute(
            "SELECT name, identifiers FROM pending_images WHERE order_local_id = ? "
            "ORDER BY received, name",
            (order_local_id,),
        ).fetchall()
        self._conn.execute("DELETE FROM pending_images WHERE order_local_id = ?", (order_local_id,))
        return [(name, json.loads(ids)) for name, ids in rows]

    def order_trace(self, local_id: str) -> dict[str, Any]:
        """The trace context the order was created in (``{}`` if none): what the
        simulator sends for it later, outside that handling, continues it."""
        row = self._conn.execute(
            "SELECT properties FROM order_traces WHERE local_id = ?", (local_id,)
        ).fetchone()
        return dict(json.loads(row[0])) if row else {}

    # -- outbox ----------------------------------------------------------------
    def enqueue(
        self,
        role: str,
        message_id: str,
        body: bytes,
        *,
        correlation_id: str | None,
        subject: str | None,
        properties: dict[str, Any],
    ) -> None:
        """Add a message to the outbox (sent after the transaction commits).

        It keeps the current trace context (the handling of the message that
        caused it), so that its send, from the outbox later, continues that trace.
        """
        properties = {**properties, **trace_properties()}
        self._conn.execute(
            "INSERT INTO outbox (role, message_id, correlation_id, subject, properties, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (role, message_id, correlation_id, subject, json.dumps(properties), body),
        )


class State:
    """The SQLite state of one simulator (``<state_dir>/simulator.sqlite3``).

    Thread-safe: one connection, transactions serialised by a lock. Two
    simulators must not share a state directory at once.
    """

    FILE_NAME = "simulator.sqlite3"

    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir).expanduser()
        self.path = self.dir / self.FILE_NAME
        self._lock = threading.RLock()
        # It holds the orders' requests, patient data included.
        self._conn = connect_private(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        wal_mode(self._conn, 30.0)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic change: committed when the block ends, rolled back on an exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def seen(self, name: str) -> bool:
        """Whether the image watcher already looked at the object ``name``."""
        with self._lock:
            return Transaction(self._conn).seen(name)

    def attached(self, name: str) -> bool:
        """Whether the object ``name`` is an image of some order already."""
        with self._lock:
            row = self._conn.execute("SELECT 1 FROM images WHERE name = ? LIMIT 1", (name,))
            return row.fetchone() is not None

    def order(self, local_id: str) -> OrderRow | None:
        """The order with this LocalId (committed state)."""
        with self._lock:
            return Transaction(self._conn).order(local_id)

    def outbox(self, limit: int = 500) -> list[OutboxRow]:
        """The oldest messages waiting to be sent."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, role, message_id, correlation_id, subject, properties, body "
                "FROM outbox ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            OutboxRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), bytes(r[6])) for r in rows
        ]

    def sent(self, ids: list[int]) -> None:
        """Remove messages the broker accepted from the outbox."""
        with self._lock:
            self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def orders(self) -> list[OrderRow]:
        """Every order, oldest first (for tests and status displays)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT local_id, iris_order_id, client_guid, site_local_id, patient_local_id, "
                "status, workflow, request, request_hash, grading, created_at, queued_at, "
                "graded_at FROM orders ORDER BY iris_order_id"
            ).fetchall()
        return [OrderRow(*r) for r in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
