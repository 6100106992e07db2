"""Saving result documents from async code: :func:`save_result`, awaited.

The same names, versions, atomic writes and span as
:func:`iris_cloud.workflows.save_result`, by the same code
(:func:`~iris_cloud.workflows.results.save_steps`): an
:class:`~iris_cloud.aio.AsyncObjectStore`'s calls are awaited; a directory is
written in a worker thread (file creation, links and ``fsync`` block).
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from iris_cloud.steps import adrive
from iris_cloud.workflows.results import DEFAULT_TEMPLATE, UNSET, save_steps

if TYPE_CHECKING:
    from iris_cloud.aio.ports import AsyncObjectStore
    from iris_cloud.model import OrderResult

__all__ = ["save_result"]


async def save_result(
    result: OrderResult,
    target: str | os.PathLike[str] | AsyncObjectStore,
    template: str = DEFAULT_TEMPLATE,
    *,
    delivered_at: datetime | None = None,
    on_conflict: Literal["number", "replace", "error"] = "number",
    unset: str = UNSET,
) -> str | None:
    """Decode ``result``'s document and write it under ``target`` by ``template``.

    ``target`` is a directory or an :class:`~iris_cloud.aio.AsyncObjectStore`;
    the rest is :func:`iris_cloud.workflows.save_result`'s: a redelivered
    result is not saved twice, a different one of the same name is numbered
    (``on_conflict``), ``None`` when the result carries no document.
    """
    steps = save_steps(
        result,
        target,
        template,
        delivered_at=delivered_at,
        on_conflict=on_conflict,
        unset=unset,
        in_thread=asyncio.to_thread,
    )
    return await adrive(steps)
