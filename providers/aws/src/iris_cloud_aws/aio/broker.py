"""``awssqs://`` for asyncio: :class:`AsyncSqsBroker` on aiobotocore.

The same URLs, options, capabilities, wire format, errors and decisions as
:class:`~iris_cloud_aws.broker.SqsBroker` (both are
:class:`~iris_cloud_aws._sqs.SqsCommon`); the calls to SQS are awaited.
Opening does no I/O: the client opens, the queue's URL is resolved and its
attributes read on the first call (or :meth:`AsyncSqsBroker.connect`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from iris_cloud.aio import AsyncMessageBroker, AsyncObjectStore
from iris_cloud.ports import Message
from iris_cloud.steps import Steps, adrive

from iris_cloud_aws._sqs import SqsCommon
from iris_cloud_aws.aio._session import AioAwsSession, LazyClient, run_connected

__all__ = ["AsyncSqsBroker"]


class AsyncSqsBroker(SqsCommon, AsyncMessageBroker):
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

    async def _run(self, steps: Steps[Any]) -> Any:
        return await run_connected(self.connect, steps)

    async def verify(self, right: str) -> bool:
        """As :meth:`SqsBroker.verify <iris_cloud_aws.broker.SqsBroker.verify>`: nothing is
        sent or taken."""
        return bool(await self._run(self._verify_steps(right)))

    async def _may_send(self) -> None:
        await self.connect()

    async def _prepare(self, msg: Message) -> Message:
        return await self._run(self._prepare_steps(msg))  # type: ignore[no-any-return]

    async def _send_batch(self, batch: list[Message]) -> None:
        await self._run(self._send_batch_steps(batch))

    async def _receive(self, max_messages: int, wait: float) -> list[Message]:
        await self.connect()
        return await adrive(self._receive_from_steps(self.queue_url, max_messages, wait))

    async def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        return await self._run(self._dead_letters_steps(max_messages, wait))  # type: ignore[no-any-return]

    async def complete(self, message: Message) -> None:
        """Delete ``message`` from its queue (DeleteMessage); LockLost once its lock ran out."""
        await self._run(self._complete_steps(message))

    async def abandon(self, message: Message, delay: float | None = None) -> None:
        """Make ``message`` visible again now, or after ``delay`` seconds (whole, <= 12 h)."""
        await self._run(self._abandon_steps(message, delay))

    async def renew_lock(self, message: Message) -> datetime:
        """Extend the visibility timeout by ``lock_seconds`` (or the queue's) from now."""
        return await self._run(self._renew_steps(message))  # type: ignore[no-any-return]

    async def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Send ``message`` as received to the dead-letter queue with the reason, then delete it."""
        await self._run(self._dead_letter_steps(message, reason, description))

    async def close(self) -> None:
        """Close the SQS client's connection pool."""
        await self._lazy.close()
