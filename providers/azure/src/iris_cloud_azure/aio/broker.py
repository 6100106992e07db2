"""``azuresb://`` for asyncio: :class:`AsyncServiceBusBroker` on ``azure.servicebus.aio``.

The same URLs, options, capabilities, errors and decisions as
:class:`~iris_cloud_azure.broker.ServiceBusBroker` (both are
:class:`~iris_cloud_azure._bus.ServiceBusCommon`); only the I/O is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver, ServiceBusSender
from iris_cloud.aio import AsyncMessageBroker
from iris_cloud.logs import get_logger
from iris_cloud.ports import Message, Sendable
from iris_cloud.steps import adrive

from iris_cloud_azure._bus import ServiceBusCommon
from iris_cloud_azure.credentials import default_credential

__all__ = ["AsyncServiceBusBroker"]

log = get_logger("iris_cloud_azure.broker")


class AsyncServiceBusBroker(ServiceBusCommon, AsyncMessageBroker):
    """One Service Bus queue, or a topic and one of its subscriptions, awaited.

    See :class:`~iris_cloud_azure.broker.ServiceBusBroker`; ``claim_check`` is
    an :class:`~iris_cloud.aio.AsyncObjectStore`.
    """

    client_class = ServiceBusClient
    enter_method = "__aenter__"

    def __init__(self, client: ServiceBusClient, **options: Any) -> None:
        super().__init__(client, **options)
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    @staticmethod
    def default_credential() -> Any:
        """``azure.identity.aio.DefaultAzureCredential``."""
        return default_credential(aio=True)

    # -- links -----------------------------------------------------------------------
    async def _get_sender(self) -> ServiceBusSender:
        async with self._lock:
            return await adrive(self._link_steps("send"))  # type: ignore[no-any-return]

    async def _get_receiver(self, dead_letter: bool = False) -> ServiceBusReceiver:
        async with self._lock:
            link = await adrive(self._link_steps("dead_letter" if dead_letter else "receive"))
            return link  # type: ignore[no-any-return]

    # -- rights ----------------------------------------------------------------------
    async def verify(self, right: str) -> bool:
        """Send: open the send link (the Send claim); receive: peek (the Listen claim)."""
        if right == "send":
            await self._get_sender()
            return True
        return await super().verify(right)

    # -- sending ---------------------------------------------------------------------
    async def send(self, messages: Sendable | Iterable[Sendable]) -> list[str]:
        """Send one or more messages, the send link opened first (its limit decides the claim
        check); see :meth:`iris_cloud.ports.MessageBroker.send`."""
        await self._get_sender()
        return await super().send(messages)

    async def _send_batch(self, batch: list[Message]) -> None:
        await adrive(self._send_batch_steps(await self._get_sender(), batch))

    # -- receiving -------------------------------------------------------------------
    async def _receive(self, max_messages: int, wait: float) -> list[Message]:
        return await adrive(self._receive_steps(await self._get_receiver(), max_messages, wait))

    def _drop_receiver(self, receiver: ServiceBusReceiver) -> None:
        if self._receiver is receiver:
            self._receiver = None
        # Closing a link on a dead connection can hang: not awaited by the receive.
        task = asyncio.get_running_loop().create_task(_close_quietly(receiver))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        receiver = await self._get_receiver(dead_letter=True)
        return await adrive(self._receive_from_steps(receiver, max_messages, wait))

    async def peek(self, max_messages: int = 1) -> list[Message]:
        """The oldest ``max_messages`` messages (a Service Bus peek), locked or not, untouched."""
        return await adrive(self._peek_steps(await self._get_receiver(), max_messages))

    # -- settling --------------------------------------------------------------------
    async def complete(self, message: Message) -> None:
        """Remove the message from the entity."""
        await adrive(self._settle_steps(message, "complete"))
        await self._completed(message)

    async def abandon(self, message: Message, delay: float | None = None) -> None:
        """Release the lock for immediate redelivery (``delay`` is ignored: Service Bus
        cannot delay an abandon)."""
        await adrive(self._settle_steps(message, "abandon"))

    async def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Move the message to the entity's ``$deadletterqueue`` with reason and description."""
        steps = self._settle_steps(
            message, "dead_letter", reason=reason, error_description=description
        )
        await adrive(steps)

    async def renew_lock(self, message: Message) -> datetime | None:
        """Extend the message's lock by the entity's lock duration; returns the new expiry."""
        until: datetime = await adrive(self._settle_steps(message, "renew"))
        message.locked_until = until
        return until

    async def close(self) -> None:
        """Close the links and the connection; the broker cannot be used afterwards."""
        async with self._lock:
            links = self._take_links()
        await adrive(self._close_steps(links))


async def _close_quietly(receiver: ServiceBusReceiver) -> None:
    try:
        await asyncio.wait_for(receiver.close(), 30)
    except Exception as exc:  # a dead link: nothing more to release
        log.debug("closing a dead receiver failed (%s)", type(exc).__name__)
