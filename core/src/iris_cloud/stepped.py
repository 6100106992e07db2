"""Brokers whose provider writes each operation once, as steps, for both kinds of port.

A provider whose sync and async clients take the same calls (boto3 and
aiobotocore, the Pub/Sub clients) writes ``send``, ``receive``, the
settlements and ``verify`` once as steps (:mod:`iris_cloud.steps`) in a class
both its brokers inherit. :class:`SteppedBroker` (here) drives those steps
with blocking calls, :class:`~iris_cloud.aio.stepped.AsyncSteppedBroker`
awaits them; the provider's two broker classes then hold only their clients.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

from iris_cloud.errors import IrisCloudError
from iris_cloud.messages import Message
from iris_cloud.ports import MessageBroker
from iris_cloud.steps import Steps, drive

__all__ = ["BrokerSteps", "SteppedBroker"]

T = TypeVar("T")


class BrokerSteps(ABC):
    """The operations a stepped broker writes as steps (one class for the sync and async one)."""

    @abstractmethod
    def _verify_steps(self, right: str) -> Steps[bool]:
        """``verify``: whether the credentials hold ``right``."""

    @abstractmethod
    def _send_batch_steps(self, batch: list[Message]) -> Steps[None]:
        """``_send_batch``: send messages that fit one service call."""

    @abstractmethod
    def _receive_steps(self, max_messages: int, wait: float) -> Steps[list[Message]]:
        """``_receive``: raw messages, an empty list when none came within ``wait``."""

    @abstractmethod
    def _dead_letters_steps(self, max_messages: int, wait: float) -> Steps[list[Message]]:
        """``_receive_dead_letters``: raw messages from the dead-letter queue."""

    @abstractmethod
    def _complete_steps(self, message: Message) -> Steps[None]:
        """``complete``, the claim-check cleanup included."""

    @abstractmethod
    def _abandon_steps(self, message: Message, delay: float | None) -> Steps[None]:
        """``abandon``: give ``message`` back, after ``delay`` where supported."""

    @abstractmethod
    def _complete_many_steps(self, messages: list[Message]) -> Steps[list[IrisCloudError | None]]:
        """``complete_many``: one outcome per message, the claim-check cleanup included."""

    @abstractmethod
    def _abandon_many_steps(
        self, messages: list[Message], delay: float | None
    ) -> Steps[list[IrisCloudError | None]]:
        """``abandon_many``: one outcome per message."""

    @abstractmethod
    def _renew_steps(self, message: Message) -> Steps[datetime]:
        """``renew_lock``: the new expiry, also set on ``message.locked_until``."""

    @abstractmethod
    def _dead_letter_steps(self, message: Message, reason: str, description: str) -> Steps[None]:
        """``dead_letter``: move ``message`` to the dead-letter queue."""


class SteppedBroker(BrokerSteps, MessageBroker):
    """A :class:`MessageBroker` running its provider's steps with blocking calls."""

    def _run(self, steps: Steps[T]) -> T:
        return drive(steps)

    def verify(self, right: str) -> bool:
        """Confirm ``right`` without side effects (see :meth:`MessageBroker.verify`)."""
        return self._run(self._verify_steps(right))

    def _send_batch(self, batch: list[Message]) -> None:
        self._run(self._send_batch_steps(batch))

    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        return self._run(self._receive_steps(max_messages, wait))

    def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        return self._run(self._dead_letters_steps(max_messages, wait))

    def complete(self, message: Message) -> None:
        """Settle ``message`` as handled: the service forgets it."""
        self._run(self._complete_steps(message))

    def abandon(self, message: Message, delay: float | None = None) -> None:
        """Give ``message`` back for redelivery, after ``delay`` seconds where supported."""
        self._run(self._abandon_steps(message, delay))

    def complete_many(self, messages: Iterable[Message]) -> list[IrisCloudError | None]:
        """Complete several messages natively; one outcome each (see the port)."""
        return self._run(self._complete_many_steps(list(messages)))

    def abandon_many(
        self, messages: Iterable[Message], delay: float | None = None
    ) -> list[IrisCloudError | None]:
        """Give several messages back natively; one outcome each (see the port)."""
        return self._run(self._abandon_many_steps(list(messages), delay))

    def renew_lock(self, message: Message) -> datetime | None:
        """Extend the lock on ``message``; the new expiry."""
        return self._run(self._renew_steps(message))

    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Move ``message`` to the dead-letter queue with ``reason`` and ``description``."""
        self._run(self._dead_letter_steps(message, reason, description))
