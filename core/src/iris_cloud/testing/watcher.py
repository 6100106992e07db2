"""Run ``ObjectStore.watch`` in a thread for a test, knowing when it has started."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, Self

from iris_cloud.ports import ObjectInfo, ObjectStore

__all__ = ["Watcher"]


class Watcher:
    """``store.watch(prefix, **options)`` in a background thread, recording what it yields.

    Entering waits until the watch has listed what exists (every ``watch``
    does that first, to skip it), so objects written afterwards are new to
    it; no sleeping on the clock. Leaving stops it and re-raises what it
    raised.
    """

    def __init__(self, store: ObjectStore, prefix: str = "", **options: Any) -> None:
        self.store = store
        self.prefix = prefix
        self.options = options
        self.seen: list[ObjectInfo] = []
        self.stop = threading.Event()
        self._listed = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="iris-cloud-watcher", daemon=True)

    def _run(self) -> None:
        try:
            for obj in self.store.watch(self.prefix, stop=self.stop, **self.options):
                self.seen.append(obj)
        except BaseException as exc:  # re-raised in the test's thread by __exit__
            self._error = exc
            self._listed.set()

    def __enter__(self) -> Self:
        original = self.store.list

        def listing(prefix: str = "") -> Any:
            items = list(original(prefix))
            self._listed.set()
            return iter(items)

        # Only this instance, only until the first listing is seen.
        self.store.list = listing  # type: ignore[method-assign]
        self._thread.start()
        started = self._listed.wait(60)
        del self.store.list
        if self._error is not None:
            raise self._error
        assert started, "the watch did not list the store within 60 s"
        return self

    def wait_for(self, count: int, timeout: float = 20.0) -> list[ObjectInfo]:
        """What was seen once ``count`` objects arrived or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline and self._error is None:
            time.sleep(0.05)
        return list(self.seen)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        self._thread.join(30)
        if self._error is not None and exc is None:
            raise self._error
