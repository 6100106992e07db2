"""Decisions written once, run by the sync ports and by the async ones.

What a port decides around its I/O (dead-letter a message that did not
decode, give a batch back when the claim-check store refuses our
credentials, keep a dead letter's pointer when its payload is gone, skip an
object already seen by ``watch``) is the same whether the I/O blocks or is
awaited. So it is written once, as a generator that yields a :class:`Call`
for each piece of I/O and is sent its result (or thrown its exception,
``CancelledError`` and ``KeyboardInterrupt`` too) back: :func:`drive` runs
it with plain calls, :func:`adrive` awaits them. A generator may also yield
other values, the output of a streaming decision (``watch``):
:func:`drive_stream` / :func:`adrive_stream` hand those on.

A :class:`Call` carries the bound method of whichever port runs the
decision: the sync driver calls it, the async driver awaits what it returns
(a plain value, from a call that does not block, is taken as it is).

A class with a sync and an async twin (``IrisClient`` and ``AsyncIrisClient``)
writes each public method once, as steps, under :class:`steps_method`: on a
:class:`Blocking` instance it is a plain method that drives its steps, on an
:class:`Awaiting` one a coroutine method that awaits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Concatenate, Generic, NamedTuple, ParamSpec, Self, TypeVar, overload

__all__ = [
    "Awaiting",
    "Blocking",
    "Call",
    "Steps",
    "StreamSteps",
    "adrive",
    "adrive_stream",
    "drive",
    "drive_stream",
    "steps_method",
]

T = TypeVar("T")
Y = TypeVar("Y")
P = ParamSpec("P")


_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class Call(NamedTuple):
    """One piece of I/O a decision needs: ``fn(*args, **kwargs)``, awaited when async."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = _NO_KWARGS


Steps = Generator[Call, Any, T]
"""A decision returning ``T``: yields :class:`Call`, is sent each call's result."""
StreamSteps = Generator["Call | Y", Any, None]
"""A streaming decision: yields :class:`Call` steps and output values of type ``Y``."""


def drive(steps: Steps[T]) -> T:
    """Run ``steps`` with blocking calls; return what the decision returns."""
    # The consumer drives one decision per message: a plain loop, without
    # the stream machinery that watch needs, keeps that cheap.
    try:
        step = steps.send(None)
        while True:
            failure = None  # the last one, if any, held this frame through its traceback
            try:
                value = step.fn(*step.args, **step.kwargs)
            except BaseException as exc:  # the decision's to handle or to let through
                failure = exc
            # Sent or thrown outside the except clause, so that what the
            # decision raises next is not chained to an exception it handled.
            step = steps.send(value) if failure is None else steps.throw(failure)
    except StopIteration as stop:
        result: T = stop.value
        return result
    finally:
        steps.close()


async def adrive(steps: Steps[T]) -> T:
    """Run ``steps`` awaiting each call; return what the decision returns."""
    try:
        step = steps.send(None)
        while True:
            failure = None
            try:
                value = step.fn(*step.args, **step.kwargs)
                if inspect.isawaitable(value):
                    value = await value
            except BaseException as exc:  # the decision's to handle, CancelledError too
                failure = exc
            step = steps.send(value) if failure is None else steps.throw(failure)
    except StopIteration as stop:
        result: T = stop.value
        return result
    finally:
        steps.close()


_DONE = object()


class _Run:
    """Where a decision stands: the next step, given the last call's result or error."""

    __slots__ = ("error", "steps", "value")

    def __init__(self, steps: StreamSteps[Any]) -> None:
        self.steps = steps
        self.value: Any = None
        self.error: BaseException | None = None

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
        except BaseException as exc:  # the decision's to handle or to let through
            # Also KeyboardInterrupt: raised where the call stands, as in straight-line code,
            # so the decision's clean-up (an upload's abort) still takes its steps.
            self.error = exc

    async def aperform(self, step: Call) -> None:
        """Make the call and await what it returns if that is awaitable; back to the decision."""
        try:
            result = step.fn(*step.args, **step.kwargs)
            self.value = await result if inspect.isawaitable(result) else result
        except BaseException as exc:  # the decision's to handle or to let through
            # Also CancelledError: the decision's clean-up awaits its steps before it goes on.
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


# ------------------------------------------------------------ one method, two twins


class Blocking:
    """The sync twin: its :class:`steps_method` methods block, driving their steps."""

    __slots__ = ()

    def _offload(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run blocking work that is not a port call (tagging an image): here, plainly."""
        return fn(*args, **kwargs)


class Awaiting:
    """The async twin: its :class:`steps_method` methods are coroutines awaiting their steps."""

    __slots__ = ()

    async def _offload(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run blocking work that is not a port call in a worker thread, off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)


class steps_method(Generic[P, T]):  # lower case: a decorator, like property
    """A method written once as steps, for a :class:`Blocking` and an :class:`Awaiting` class.

    The decorated function takes ``self`` and returns :data:`Steps`; read on a
    :class:`Blocking` instance it is a method returning ``T``, on an
    :class:`Awaiting` one a coroutine method returning ``T``, with the
    function's name, docstring and parameters either way.
    """

    def __init__(self, steps: Callable[Concatenate[Any, P], Steps[T]]) -> None:
        self.steps = steps
        self.__doc__ = steps.__doc__
        self.__name__ = steps.__name__
        signature = inspect.signature(steps)
        self._signature = signature.replace(
            parameters=list(signature.parameters.values())[1:],
            return_annotation=_unwrapped(signature.return_annotation),
        )

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: Awaiting, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...
    @overload
    def __get__(self, obj: Blocking, owner: type[Any]) -> Callable[P, T]: ...
    def __get__(self, obj: object, owner: type[Any]) -> Any:
        if obj is None:
            return self
        steps = self.steps
        method: Callable[..., Any]
        if isinstance(obj, Awaiting):

            async def method(*args: Any, **kwargs: Any) -> Any:
                return await adrive(steps(obj, *args, **kwargs))

        elif isinstance(obj, Blocking):

            def method(*args: Any, **kwargs: Any) -> Any:
                return drive(steps(obj, *args, **kwargs))

        else:
            raise TypeError(f"{type(obj).__name__} is neither Blocking nor Awaiting")
        functools.update_wrapper(method, steps, updated=())
        # Without ``self`` and returning ``T``: what callers of this method see.
        del method.__dict__["__wrapped__"]
        method.__dict__["__signature__"] = self._signature
        return method

    def __call__(self, obj: Any, /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Called on the class (``IrisClient.close(iris)``): the method of ``obj``."""
        return self.__get__(obj, type(obj))(*args, **kwargs)


def _unwrapped(annotation: Any) -> Any:
    """``T`` of a ``Steps[T]`` return annotation (a string under postponed annotations)."""
    if isinstance(annotation, str) and annotation.startswith("Steps[") and annotation.endswith("]"):
        return annotation[len("Steps[") : -1]
    return annotation
