"""``gcppubsub://`` for asyncio: :class:`AsyncPubSubBroker` on the generated async clients.

The same URLs, options, wire mapping, capabilities, errors and decisions as
:class:`~iris_cloud_gcp.broker.PubSubBroker` (both are
:class:`~iris_cloud_gcp._pubsub.PubSubCommon`), on
``google.pubsub_v1.PublisherAsyncClient`` / ``SubscriberAsyncClient``. The
sync library batches publishes behind futures; here a batch is published in
requests of at most 1,000 messages and 10 MB, awaited. The clients open, and
a subscription's settings are read, on the first call (or
:meth:`AsyncPubSubBroker.connect`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from google.pubsub_v1 import PublisherAsyncClient, PubsubMessage, SubscriberAsyncClient
from iris_cloud.aio.stepped import AsyncSteppedBroker
from iris_cloud.errors import IrisCloudError
from iris_cloud.ports import Message
from iris_cloud.steps import adrive

from iris_cloud_gcp._pubsub import SERVER_REQUEST_LIMIT, PubSubCommon, raise_publish_failures
from iris_cloud_gcp.aio._clients import async_publisher_client, async_subscriber_client
from iris_cloud_gcp.errors import map_error

__all__ = ["AsyncPubSubBroker"]

MAX_REQUEST_MESSAGES = 1000
"""Messages Pub/Sub takes in one publish request."""

Item = tuple[bytes, dict[str, str], Message]


class AsyncPubSubBroker(PubSubCommon, AsyncSteppedBroker):
    """A Pub/Sub topic (send) and/or subscription (receive) endpoint, awaited.

    See :class:`~iris_cloud_gcp.broker.PubSubBroker`; ``claim_check`` is an
    :class:`~iris_cloud.aio.AsyncObjectStore`. ``capabilities`` are the
    subscription's once connected.
    """

    _sleep = staticmethod(asyncio.sleep)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._clients = asyncio.Lock()
        self._connected = False

    async def connect(self) -> None:
        """Read the subscription's ack deadline and dead-letter policy, once."""
        if not self._connected:
            await adrive(self._setup_steps())
            self._connected = True

    async def _get_publisher(self) -> PublisherAsyncClient:
        async with self._clients:
            self._check_open()
            if self._publisher is None:
                self._publisher = async_publisher_client(
                    self._auth, self._emulator_host, self._keepalive
                )
            return self._publisher  # type: ignore[no-any-return]

    async def _get_subscriber(self) -> SubscriberAsyncClient:
        async with self._clients:
            self._check_open()
            if self._subscriber is None:
                self._subscriber = async_subscriber_client(
                    self._auth, self._emulator_host, self._keepalive
                )
            return self._subscriber  # type: ignore[no-any-return]

    # -- sending ----------------------------------------------------------------
    async def _publish(self, topic: str, items: list[Item], right: str) -> None:
        """Publish every item in requests Pub/Sub takes; raise once for all failures."""
        publisher = await self._get_publisher()
        failures: list[tuple[str, IrisCloudError]] = []
        for request in _requests(items):
            messages = [
                PubsubMessage(
                    data=data, attributes=attributes, ordering_key=self._ordering_key_of(m)
                )
                for data, attributes, m in request
            ]
            try:
                await publisher.publish(topic=topic, messages=messages, timeout=self._timeout)
            except Exception as exc:
                mapped = map_error(exc, right=right, target=topic)
                if mapped is None:
                    raise
                mapped.__cause__ = exc
                failures.extend((m.message_id, mapped) for _, _, m in request)
        raise_publish_failures(failures, len(items), topic)

    async def close(self) -> None:
        """Close both clients' channels."""
        async with self._clients:
            if self._closed:
                return
            self._closed = True
            clients = [self._publisher, self._subscriber]
            self._publisher = self._subscriber = None
        for client in clients:
            if client is not None:
                await client.transport.close()


def _requests(items: list[Item]) -> list[list[Item]]:
    """``items`` in publish requests of at most 1,000 messages and the request size limit."""
    requests: list[list[Item]] = [[]]
    used = 0
    for item in items:
        size = len(item[0]) + sum(len(k) + len(v) for k, v in item[1].items())
        current = requests[-1]
        if current and (len(current) >= MAX_REQUEST_MESSAGES or used + size > SERVER_REQUEST_LIMIT):
            requests.append([])
            used = 0
        requests[-1].append(item)
        used += size
    return [r for r in requests if r]
