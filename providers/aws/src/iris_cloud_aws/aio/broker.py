"""``awssqs://`` for asyncio: :class:`AsyncSqsBroker` on aiobotocore.

The same URLs, options, capabilities, wire format, errors and decisions as
:class:`~iris_cloud_aws.broker.SqsBroker` (both are
:class:`~iris_cloud_aws._sqs.SqsCommon`); the calls to SQS are awaited.
Opening does no I/O: the client opens, the queue's URL is resolved and its
attributes read on the first call (or :meth:`AsyncSqsBroker.connect`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from iris_cloud.aio import AsyncObjectStore
from iris_cloud.aio.stepped import AsyncSteppedBroker
from iris_cloud.ports import Message
from iris_cloud.steps import adrive

from iris_cloud_aws._sqs import SqsCommon
from iris_cloud_aws.aio._session import AioAwsSession, LazyClient

__all__ = ["AsyncSqsBroker"]


class AsyncSqsBroker(SqsCommon, AsyncSteppedBroker):
    """One SQS queue (standard or FIFO), awaited; see :class:`~iris_cloud_aws.broker.SqsBroker`.

    ``claim_check`` is an :class:`~iris_cloud.aio.AsyncObjectStore`; ``session``
    an aiobotocore ``AioSession``. ``capabilities`` are the queue's once
    connected (the fallback limits before).
    """

    store_class = AsyncObjectStore
    session_class = AioAwsSession
    _sleep = staticmethod(asyncio.sleep)

    def __init__(self, session: AioAwsSession, **options: Any) -> None:
        super().__init__(session, **options)
        self._lazy = LazyClient(session, "sqs", self._target)
        self._connecting = asyncio.Lock()
        self._connected = False

    async def connect(self) -> None:
        """Open the client, resolve the queue and read its attributes, once."""
        if self._connected:
            return
        async with self._connecting:
            if not self._connected:
                self._sqs = await self._lazy.open()
                await adrive(self._setup_steps())
                self._connected = True

    async def _prepare(self, msg: Message) -> Message:
        return await self._run(self._prepare_steps(msg))

    async def close(self) -> None:
        """Close the SQS client's connection pool."""
        await self._lazy.close()
