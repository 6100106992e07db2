"""Both consumers behind the sync consumer's interface, so one test runs on each.

``open_consumer("sync", ...)`` is :meth:`Consumer.from_profile`;
``open_consumer("async", ...)`` is :meth:`AsyncConsumer.from_profile`, its
coroutines run on a loop in a thread
(:class:`~iris_cloud.testing.blocking.BlockingConsumer`): the test's handlers
are plain functions, which the async consumer runs in its worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from iris_cloud.aio import AsyncConsumer
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.testing.blocking import BlockingConsumer, shared_loop

ENGINES = ("sync", "async")

Consume = Callable[..., Any]
"""``consume(app, profile, roles=..., **settings)``: a consumer of the test's engine
(the ``consume`` fixture of conftest.py)."""


def open_consumer(
    engine: str, app: IrisApp, profile: Profile, roles: Iterable[str], **kwargs: Any
) -> Any:
    """A consumer of ``engine`` (``sync`` / ``async``) on the profile's ``roles``."""
    if engine == "sync":
        return Consumer.from_profile(app, profile, roles=tuple(roles), **kwargs)
    loop = shared_loop()
    consumer = loop.run(AsyncConsumer.from_profile(app, profile, roles, **kwargs))
    return BlockingConsumer(consumer, loop)
