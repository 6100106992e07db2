"""Erasing deleted rows from a SQLite write-ahead log within a bounded time.

With ``secure_delete=ON`` a DELETE overwrites the row (and frees its overflow
pages zeroed) in the new version of each page, but in WAL mode the old
versions, body and all, stay in the ``-wal`` file until a checkpoint copies
the new pages into the database and the log is truncated. A truncating
checkpoint after every delete costs about fifteen times the delete itself
(``benchmarks/local_erase.py``), so the eraser runs one at most ``delay``
seconds after the first delete it was told of, on a timer thread, and at close.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

from iris_cloud.logs import get_logger

__all__ = ["WalEraser"]

log = get_logger("iris_cloud.providers.local")

# A checkpoint that found readers still on old pages is tried again this soon.
_BUSY_RETRY = 0.05


class WalEraser:
    """Truncates a database's WAL at most ``delay`` seconds after :meth:`deleted`.

    ``connection`` returns the open connection (``None`` once closed); ``lock``
    is the one that serialises its use. ``delay=0`` truncates in the calling
    thread, before :meth:`deleted` returns.
    """

    def __init__(
        self,
        connection: Callable[[], sqlite3.Connection | None],
        lock: threading.Lock,
        delay: float,
    ) -> None:
        self._connection = connection
        self._lock = lock
        self.delay = delay
        self._timer: threading.Timer | None = None
        self._timer_lock = threading.Lock()

    def deleted(self) -> None:
        """Rows were deleted: erase them from the log within ``delay`` seconds."""
        if self.delay == 0:
            with self._lock:
                self._checkpoint()
            return
        self._arm(self.delay)

    def _arm(self, delay: float) -> None:
        with self._timer_lock:
            if self._timer is not None:
                return
            timer = threading.Timer(delay, self._run)
            timer.daemon = True
            self._timer = timer
            timer.start()

    def _run(self) -> None:
        with self._timer_lock:
            self._timer = None
        with self._lock:
            done = self._checkpoint()
        if not done:
            self._arm(_BUSY_RETRY)

    def _checkpoint(self) -> bool:
        """Truncate the log (the caller holds the lock); False if readers kept it."""
        db = self._connection()
        if db is None:
            return True
        try:
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            # Locked by another process for the whole busy timeout: try later.
            log.warning(
                "erasing the queue database's log failed (%s); retrying", type(exc).__name__
            )
            return False
        return not busy

    def close(self) -> None:
        """Erase now what is pending (the caller holds the lock); no timer afterwards."""
        with self._timer_lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            self._checkpoint()
