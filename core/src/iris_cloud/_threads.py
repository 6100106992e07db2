"""Daemon worker threads with a bounded shutdown.

The standard ``ThreadPoolExecutor`` joins its threads at interpreter exit, so
one handler stuck in a socket read on a dead connection keeps the process
alive for ever. These threads are daemons: a stop waits for them up to a
deadline, and whatever still runs then does not hold the process.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from iris_cloud.logs import get_logger

__all__ = ["DaemonPool", "call_bounded"]

log = get_logger("iris_cloud.consumer")


class DaemonPool:
    """``workers`` daemon threads running submitted calls in order of submission."""

    def __init__(self, workers: int, name: str) -> None:
        self.workers = workers
        self._queue: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the next free worker (exceptions are the caller's to catch)."""
        self._queue.put(fn)

    def _work(self) -> None:
        while (fn := self._queue.get()) is not None:
            fn()

    def shutdown(self, timeout: float) -> int:
        """Let queued calls run, wait up to ``timeout`` s; returns how many workers still run."""
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(t.is_alive() for t in self._threads)


def call_bounded(fn: Callable[[], object], timeout: float, name: str) -> bool:
    """Run ``fn`` in a daemon thread, waiting up to ``timeout`` s; whether it returned.

    For closing SDK clients whose connection may be dead: their close can
    block on the socket, and a shutdown must not wait for it without a limit.
    Exceptions of ``fn`` are logged by class here (the caller is shutting down).
    """

    def run() -> None:
        try:
            fn()
        except Exception as exc:
            log.warning("%s failed: %s", name, type(exc).__name__)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        log.warning("%s did not finish within %.1fs; left behind", name, timeout)
        return False
    return True
