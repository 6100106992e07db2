"""The async twin of :class:`iris_cloud.stepped.SteppedBroker`: the same steps, awaited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TypeVar

from iris_cloud.aio.ports import AsyncMessageBroker
from iris_cloud.errors import IrisCloudError
from iris_cloud.messages import Message
from iris_cloud.stepped import BrokerSteps
from iris_cloud.steps import Steps, adrive

T = TypeVar("T")

__all__ = ["AsyncSteppedBroker", "run_connected"]


async def run_connected(connect: Callable[[], Awaitable[None]], steps: Steps[T]) -> T:
    """Await ``connect()``, then run ``steps``; if connecting fails they are closed unrun."""
    try:
        await connect()
    except BaseException:
        steps.close()
        raise
    return await adrive(steps)


class AsyncSteppedBroker(BrokerSteps, AsyncMessageBroker):
    """An :class:`AsyncMessageBroker` awaiting its provider's steps.

    Opening does no I/O: :meth:`connect` (the provider's: open clients, read
    the queue's settings) is awaited before the first step of every call.
    """

    async def connect(self) -> None:
        """Open what the first call needs; every call awaits it (a no-op once done)."""

    async def _run(self, steps: Steps[T]) -> T:
        return await run_connected(self.connect, steps)

    async def _may_send(self) -> None:
        await self.connect()

    async def verify(self, right: str) -> bool:
        """Confirm ``right`` without side effects (see ``MessageBroker.verify``)."""
        return await self._run(self._verify_steps(right))

    async def _send_batch(self, batch: list[Message]) -> None:
        await self._run(self._send_batch_steps(batch))

    async def _receive(self, max_messages: int, wait: float) -> list[Message]:
        return await self._run(self._receive_steps(max_messages, wait))

    async def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        return await self._run(self._dead_letters_steps(max_messages, wait))

    async def complete(self, message: Message) -> None:
        """Settle ``message`` as handled: the service forgets it."""
        await self._run(self._complete_steps(message))

    async def abandon(self, message: Message, delay: float | None = None) -> None:
        """Give ``message`` back for redelivery, after ``delay`` seconds where supported."""
        await self._run(self._abandon_steps(message, delay))

    async def complete_many(self, messages: Iterable[Message]) -> list[IrisCloudError | None]:
        """Complete several messages natively; one outcome each (see the port)."""
        return await self._run(self._complete_many_steps(list(messages)))

    async def abandon_many(
        self, messages: Iterable[Message], delay: float | None = None
    ) -> list[IrisCloudError | None]:
        """Give several messages back natively; one outcome each (see the port)."""
        return await self._run(self._abandon_many_steps(list(messages), delay))

    async def renew_lock(self, message: Message) -> datetime | None:
        """Extend the lock on ``message``; the new expiry."""
        return await self._run(self._renew_steps(message))

    async def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Move ``message`` to the dead-letter queue with ``reason`` and ``description``."""
        await self._run(self._dead_letter_steps(message, reason, description))
