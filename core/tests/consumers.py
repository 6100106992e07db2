"""Both consumers behind the sync consumer's interface, so one test runs on each.

``open_consumer("sync", ...)`` is :meth:`Consumer.from_profile`;
``open_consumer("async", ...)`` is an :class:`~iris_cloud.aio.AsyncConsumer` on
the profile's async brokers, its coroutines run on a loop in a thread
(:class:`BlockingAsyncConsumer`): the test's handlers are plain functions,
which the async consumer runs in its worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

from iris_cloud import aio
from iris_cloud.aio import AsyncConsumer, AsyncMessageBroker, AsyncObjectStore
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, ConsumerStats, IrisApp
from iris_cloud.testing.blocking import LoopThread, shared_loop

ENGINES = ("sync", "async")

Consume = Callable[..., Any]
"""``consume(app, profile, roles=..., **settings)``: a consumer of the test's engine
(the ``consume`` fixture of conftest.py)."""


def async_brokers(
    profile: Profile, roles: Iterable[str]
) -> tuple[dict[str, AsyncMessageBroker], AsyncObjectStore | None]:
    """The profile's ``roles`` as async brokers sharing one async claim-check store."""
    claim = None
    if profile.claim_check is not None:
        claim = aio.open_store(
            profile.claim_check.url, **profile.claim_check.resolved_options("claim_check")
        )
    brokers: dict[str, AsyncMessageBroker] = {}
    for role in roles:
        endpoint = profile.endpoint(role)
        broker = aio.open_broker(endpoint.url, claim_check=claim, **endpoint.resolved_options(role))
        broker.claim_check_max_bytes = profile.claim_check_max_bytes
        brokers[role] = broker
    return brokers, claim


class BlockingAsyncConsumer:
    """An :class:`AsyncConsumer` driven from sync test code on a :class:`LoopThread`."""

    def __init__(
        self, consumer: AsyncConsumer, claim: AsyncObjectStore | None, loop: LoopThread
    ) -> None:
        self.consumer = consumer
        self.claim = claim
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
        if self.claim is not None:
            self.loop.run(self.claim.close())

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
    brokers, claim = async_brokers(profile, roles)
    kwargs.setdefault("settings", profile.consumer)
    consumer = AsyncConsumer(app, brokers, close_brokers=True, **kwargs)
    return BlockingAsyncConsumer(consumer, claim, shared_loop())
