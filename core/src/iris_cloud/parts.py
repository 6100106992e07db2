"""Parts of an upload in flight, at most a given number at a time: in threads or as tasks.

A provider uploading in parts (S3 multipart, Azure staged blocks) reads a
part, hands it on, and reads the next only while fewer than ``limit`` are in
flight, so memory stays at about ``(limit + 1)`` parts whatever the size.
The decision of what to read and send is a step function
(:mod:`iris_cloud.steps`) that yields ``Call(pool.submit, ...)`` and
``Call(pool.results)``: :class:`PartPool` runs the parts in worker threads
for a sync port, :class:`AsyncPartPool` as tasks for an async one. The first
failure of a part is raised by the next ``submit`` or by ``results``;
``drain`` waits for the parts still in flight, so that an upload is aborted
only once none of its parts can land after the abort.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

__all__ = ["AsyncPartPool", "PartPool"]


class PartPool:
    """At most ``limit`` blocking part uploads in worker threads; ``close`` when done."""

    def __init__(self, limit: int, name: str) -> None:
        self._limit = limit
        self._pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix=name)
        self._futures: list[Future[Any]] = []
        self._pending: set[Future[Any]] = set()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` once fewer than ``limit`` parts are in flight."""
        if len(self._pending) >= self._limit:
            done, self._pending = wait(self._pending, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
        future = self._pool.submit(fn, *args, **kwargs)
        self._futures.append(future)
        self._pending.add(future)

    def results(self) -> list[Any]:
        """Every part's result, in the order submitted, once all are done."""
        return [future.result() for future in self._futures]

    def drain(self) -> None:
        """Wait until no part is in flight, whatever each one's outcome (before an abort)."""
        wait(self._pending)

    def close(self) -> None:
        """Drop what has not started and wait for what runs."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class AsyncPartPool:
    """At most ``limit`` awaited part uploads as tasks; ``await close()`` when done."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._tasks: list[asyncio.Future[Any]] = []
        self._pending: set[asyncio.Future[Any]] = set()

    async def submit(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        """Start ``fn(*args, **kwargs)`` once fewer than ``limit`` parts are in flight."""
        if len(self._pending) >= self._limit:
            done, self._pending = await asyncio.wait(
                self._pending, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()
        task = asyncio.ensure_future(fn(*args, **kwargs))
        self._tasks.append(task)
        self._pending.add(task)

    async def results(self) -> list[Any]:
        """Every part's result, in the order submitted, once all are done."""
        return [await task for task in self._tasks]

    async def drain(self) -> None:
        """Wait until no part is in flight, whatever each one's outcome (before an abort).

        Waited for, not cancelled: a cancelled request may still land on the server.
        """
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        """Cancel what still runs and wait until it has stopped."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
