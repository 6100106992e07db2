"""Duplicate suppression: remember which messages were handled, in SQLite.

Brokers deliver at least once, and IRIS may send the same event twice. The
consumer asks :meth:`Dedupe.seen` before running a handler, then
:meth:`Dedupe.claim` s the keys (in the shared file, so a second process or
thread holding another copy defers it instead of running the side effect
too), and calls :meth:`Dedupe.mark` after the handler succeeded (before the
message is completed) or :meth:`Dedupe.release` after it failed. A claim
expires after its ``ttl`` unless :meth:`Dedupe.refresh` ed, so the claim of a
process that crashed lapses. Keys are the broker message id and, when the
body has one, the IRIS ``TransactionId`` (``tx:<id>``). Entries older than
the retention are pruned as new ones arrive.

:class:`DedupeBackend` is what the consumer needs of such a store;
:class:`~iris_cloud.dedupestore.StoreDedupe` is the one shared across hosts,
in an object store. :func:`open_dedupe` opens either from a setting.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from iris_cloud.private import connect_private, wal_mode

if TYPE_CHECKING:
    from iris_cloud.config import Endpoint

__all__ = ["Dedupe", "DedupeBackend", "open_dedupe"]


@runtime_checkable
class DedupeBackend(Protocol):
    """What the consumer asks of a dedupe store (see the module docstring for the order)."""

    def seen(self, keys: Iterable[str]) -> bool:
        """Whether any of ``keys`` was marked handled within the retention."""
        ...

    def claim(self, keys: Iterable[str], ttl: float) -> str | None:
        """Claim ``keys`` for ``ttl`` seconds: a token, or ``None`` when held or handled."""
        ...

    def refresh(self, token: str, ttl: float) -> None:
        """Extend the claim ``token`` to ``ttl`` seconds from now."""
        ...

    def release(self, token: str) -> None:
        """Drop the claim ``token`` (its handler failed)."""
        ...

    def mark(self, keys: Iterable[str], token: str | None = None) -> None:
        """Remember ``keys`` as handled, dropping the claim ``token``."""
        ...

    def close(self) -> None:
        """Release what the store holds open."""
        ...


def open_dedupe(
    spec: str | os.PathLike[str] | Endpoint | Mapping[str, Any], *, retention_days: float = 14.0
) -> DedupeBackend:
    """The dedupe store ``spec`` names: a SQLite path, or an object-store URL / endpoint.

    A string with ``://`` (``s3://bucket/dedupe/``, ``file:///srv/dedupe``) or
    an endpoint table (``{url = ..., options...}``) opens that store with its
    provider and shares handled markers through it
    (:class:`~iris_cloud.dedupestore.StoreDedupe`); any other string is the
    path of a SQLite file (:class:`Dedupe`).
    """
    from iris_cloud.config import Endpoint

    if isinstance(spec, str) and "://" in spec:
        spec = Endpoint(url=spec)
    elif isinstance(spec, Mapping):
        spec = Endpoint.model_validate(spec)
    if not isinstance(spec, Endpoint):
        return Dedupe(spec, retention_days=retention_days)
    from iris_cloud.dedupestore import StoreDedupe
    from iris_cloud.plugins import open_store

    store = open_store(spec.url, **spec.resolved_options("dedupe"))
    try:
        return StoreDedupe(store, retention_days=retention_days, close_store=True)
    except BaseException:
        store.close()
        raise


class Dedupe:
    """A thread-safe set of handled keys, in a SQLite file or in memory (``path=None``)."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, retention_days: float = 14.0
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else None
        self.retention = retention_days * 86400.0
        self._lock = threading.Lock()
        if self.path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            self._db = connect_private(self.path, check_same_thread=False, isolation_level=None)
        if self.path is not None:
            # WAL lets a second consumer process share the file safely.
            wal_mode(self._db, 5.0)
            self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS handled (key TEXT PRIMARY KEY, at REAL NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS claims "
            "(key TEXT PRIMARY KEY, token TEXT NOT NULL, until REAL NOT NULL)"
        )
        self._marks = 0

    def seen(self, keys: Iterable[str]) -> bool:
        """Whether any of ``keys`` was marked handled within the retention."""
        wanted = [k for k in keys if k]
        if not wanted:
            return False
        cutoff = time.time() - self.retention
        marks = ",".join("?" * len(wanted))
        with self._lock:
            row = self._db.execute(
                f"SELECT 1 FROM handled WHERE key IN ({marks}) AND at >= ? LIMIT 1",  # noqa: S608 - placeholders only
                (*wanted, cutoff),
            ).fetchone()
        return row is not None

    def claim(self, keys: Iterable[str], ttl: float) -> str | None:
        """Claim ``keys`` for ``ttl`` seconds; the claim's token, or ``None`` when taken.

        ``None`` when any key is claimed by someone else (another thread or
        process on this file) and the claim has not expired, or was handled
        meanwhile. Atomic across processes (one SQLite write transaction).
        """
        wanted = [k for k in keys if k]
        token = uuid.uuid4().hex
        if not wanted:
            return token
        now = time.time()
        marks = ",".join("?" * len(wanted))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                taken = self._db.execute(
                    f"SELECT 1 FROM claims WHERE key IN ({marks}) AND until > ? "  # noqa: S608 - placeholders only
                    f"UNION ALL SELECT 1 FROM handled WHERE key IN ({marks}) AND at >= ? LIMIT 1",
                    (*wanted, now, *wanted, now - self.retention),
                ).fetchone()
                if taken is None:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO claims VALUES (?, ?, ?)",
                        [(k, token, now + ttl) for k in wanted],
                    )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return None if taken is not None else token

    def refresh(self, token: str, ttl: float) -> None:
        """Extend the claim ``token`` to ``ttl`` seconds from now (a long handler's)."""
        with self._lock:
            self._db.execute(
                "UPDATE claims SET until = ? WHERE token = ?", (time.time() + ttl, token)
            )

    def release(self, token: str) -> None:
        """Drop the claim ``token`` (its handler failed: another copy may run)."""
        with self._lock:
            self._db.execute("DELETE FROM claims WHERE token = ?", (token,))

    def mark(self, keys: Iterable[str], token: str | None = None) -> None:
        """Remember ``keys`` as handled now, dropping the claim ``token`` with it."""
        now = time.time()
        rows = [(k, now) for k in keys if k]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO handled VALUES (?, ?)", rows)
                if token is not None:
                    self._db.execute("DELETE FROM claims WHERE token = ?", (token,))
                self._marks += 1
                if self._marks % 1000 == 0:
                    self._db.execute("DELETE FROM handled WHERE at < ?", (now - self.retention,))
                    self._db.execute("DELETE FROM claims WHERE until < ?", (now,))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM handled").fetchone()
        return int(count)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"Dedupe(path={str(self.path) if self.path else ':memory:'!r})"
