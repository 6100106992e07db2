"""AsyncIrisClient: :class:`~iris_cloud.client.IrisClient` for services on asyncio.

    from iris_cloud.aio import AsyncIrisClient

    async with AsyncIrisClient.from_profile("dev") as iris:
        ref = await iris.upload_image("right-eye.jpg")       # Image First
        sent = await iris.submit_order(order)                # validated, images checked
        await iris.cancel_order("ORD-1")

The same methods, arguments, validation, errors and results as the sync
client, awaited: both run the one implementation in
:mod:`iris_cloud.clientcore`, this one on async ports
(:func:`iris_cloud.aio.open_broker` / :func:`~iris_cloud.aio.open_store`,
opened from the profile on first use). ``validate_order`` does no I/O and
stays a plain call; the endpoints are awaited (``await iris.images``);
tagging an Order First image and reading its identifiers back run in a
worker thread.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

from iris_cloud.aio.ports import AsyncMessageBroker, AsyncObjectStore, _Closing
from iris_cloud.clientcore import ClientCore
from iris_cloud.ports import MessageBroker, ObjectStore
from iris_cloud.steps import Awaiting, adrive
from iris_cloud.workflows.order_first import ExamIdentifiers, read_exam_identifiers

__all__ = ["AsyncIrisClient"]


class AsyncIrisClient(Awaiting, ClientCore[AsyncMessageBroker, AsyncObjectStore], _Closing):
    """Send orders, images and gradings for one profile (or explicit endpoints), awaited.

    Takes the arguments of :class:`~iris_cloud.client.IrisClient`; ``orders``,
    ``gradings`` and ``images``, when given, are async endpoints (and stay
    the caller's). Use it with ``async with`` or ``await close()``; tasks of
    one event loop may share it.
    """

    _openers: ClassVar[dict[str, str]] = {
        "broker": "open_async_broker",
        "store": "open_async_store",
    }
    _other_twins_ports = (MessageBroker, ObjectStore)
    _ports_hint = (
        "is a sync endpoint: pass one from iris_cloud.aio.open_broker / open_store, "
        "or use iris_cloud.client.IrisClient"
    )

    _opening: asyncio.Lock | None = None
    """Held while an endpoint opens, so concurrent first calls open it once."""

    async def _endpoint(self, role: str) -> Any:
        if self._opening is None:  # made on the loop that uses it, with no await in between
            self._opening = asyncio.Lock()
        async with self._opening:
            return await adrive(self._endpoint_steps(role))

    @staticmethod
    async def read_exam_identifiers(
        source: bytes | str | os.PathLike[str],
    ) -> ExamIdentifiers | None:
        """The identifiers an Order First upload wrote into an image (read in a worker thread).

        See :func:`~iris_cloud.workflows.order_first.read_exam_identifiers`.
        """
        return await asyncio.to_thread(read_exam_identifiers, source)
