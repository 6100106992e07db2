"""Both consumers behind the sync consumer's interface, so one test runs on each.

``open_consumer("sync", ...)`` is :meth:`Consumer.from_profile`;
``open_consumer("async", ...)`` is :meth:`AsyncConsumer.from_profile`, its
coroutines run on a loop in a thread (:class:`BlockingAsyncConsumer`): the
test's handlers are plain functions, which the async consumer runs in its
worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

from iris_cloud.aio import AsyncConsumer
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, ConsumerStats, IrisApp
from iris_cloud.testing.blocking import LoopThread, shared_loop

ENGINES = ("sync", "async")

Consume = Callable[..., Any]
"""``consume(app, profile, roles=..., **settings)``: a consumer of the test's engine
(the ``consume`` fixture of conftest.py)."""


class BlockingAsyncConsumer:
    """An :class:`AsyncConsumer` driven from sync test code on a :class:`LoopThread`."""

    def __init__(self, consumer: AsyncConsumer, loop: LoopThread) -> None:
        self.consumer = consumer
        self.loop = loop

    def run_until(
        self,
        predicate: Callable[[ConsumerStats], bool] | None = None,
        timeout: float | None = None,
    ) -> ConsumerStats:
        return self.loop.run(self.consumer.run_until(predicate, timeout))

    def snapshot(self) -> ConsumerStats:
        return self.consumer.snapshot()

    def stop(self) -> None:
        self.consumer.stop()

    @property
    def stopping(self) -> bool:
        return self.consumer.stopping

    def close(self) -> None:
        self.loop.run(self.consumer.close())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_consumer(
    engine: str, app: IrisApp, profile: Profile, roles: Iterable[str], **kwargs: Any
) -> Any:
    """A consumer of ``engine`` (``sync`` / ``async``) on the profile's ``roles``."""
    if engine == "sync":
        return Consumer.from_profile(app, profile, roles=tuple(roles), **kwargs)
    loop = shared_loop()
    consumer = loop.run(AsyncConsumer.from_profile(app, profile, roles, **kwargs))
    return BlockingAsyncConsumer(consumer, loop)
