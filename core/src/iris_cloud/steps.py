"""Decisions written once, run by the sync ports and by the async ones.

What a port decides around its I/O (dead-letter a message that did not
decode, give a batch back when the claim-check store refuses our
credentials, keep a dead letter's pointer when its payload is gone, skip an
object already seen by ``watch``) is the same whether the I/O blocks or is
awaited. So it is written once, as a generator that yields a :class:`Call`
for each piece of I/O and is sent its result (or thrown its exception)
back: :func:`drive` runs it with plain calls, :func:`adrive` awaits them. A
generator may also yield other values, the output of a streaming decision
(``watch``): :func:`drive_stream` / :func:`adrive_stream` hand those on.

A :class:`Call` carries the bound method of whichever port runs the
decision: the sync driver calls it, the async driver awaits what it returns
(a plain value, from a call that does not block, is taken as it is).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Call", "Steps", "StreamSteps", "adrive", "adrive_stream", "drive", "drive_stream"]

T = TypeVar("T")
Y = TypeVar("Y")


@dataclass(frozen=True, slots=True)
class Call:
    """One piece of I/O a decision needs: ``fn(*args, **kwargs)``, awaited when async."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


Steps = Generator[Call, Any, T]
"""A decision returning ``T``: yields :class:`Call`, is sent each call's result."""
StreamSteps = Generator["Call | Y", Any, None]
"""A streaming decision: yields :class:`Call` steps and output values of type ``Y``."""


def drive(steps: Steps[T]) -> T:
    """Run ``steps`` with blocking calls; return what the decision returns."""
    box: list[T] = []
    for _ in drive_stream(_returning(steps, box)):
        pass
    return box[0]


async def adrive(steps: Steps[T]) -> T:
    """Run ``steps`` awaiting each call; return what the decision returns."""
    box: list[T] = []
    async for _ in adrive_stream(_returning(steps, box)):
        pass
    return box[0]


def _returning(steps: Steps[T], box: list[T]) -> StreamSteps[Any]:
    box.append((yield from steps))


_DONE = object()


class _Run:
    """Where a decision stands: the next step, given the last call's result or error."""

    __slots__ = ("error", "steps", "value")

    def __init__(self, steps: StreamSteps[Any]) -> None:
        self.steps = steps
        self.value: Any = None
        self.error: Exception | None = None

    def next(self) -> Any:
        """The next step or output value; ``_DONE`` once the decision returned."""
        try:
            if self.error is not None:
                return self.steps.throw(self.error)
            return self.steps.send(self.value)
        except StopIteration:
            return _DONE
        finally:
            self.value, self.error = None, None

    def perform(self, step: Call) -> None:
        """Make the call; its result or exception goes back to the decision."""
        try:
            self.value = step.fn(*step.args, **step.kwargs)
        except Exception as exc:  # the decision's to handle or to let through
            self.error = exc

    async def aperform(self, step: Call) -> None:
        """Make the call and await what it returns if that is awaitable; back to the decision."""
        try:
            result = step.fn(*step.args, **step.kwargs)
            self.value = await result if inspect.isawaitable(result) else result
        except Exception as exc:  # the decision's to handle or to let through
            self.error = exc


def drive_stream(steps: StreamSteps[Y]) -> Iterator[Y]:
    """Run a streaming decision with blocking calls, yielding its output values."""
    run = _Run(steps)
    with contextlib.closing(steps):
        while (step := run.next()) is not _DONE:
            if isinstance(step, Call):
                run.perform(step)
            else:
                yield step


async def adrive_stream(steps: StreamSteps[Y]) -> AsyncIterator[Y]:
    """Run a streaming decision awaiting each call, yielding its output values."""
    run = _Run(steps)
    with contextlib.closing(steps):
        while (step := run.next()) is not _DONE:
            if isinstance(step, Call):
                await run.aperform(step)
            else:
                yield step
