"""``azuresb://NAMESPACE/QUEUE`` and ``azuresb://NAMESPACE/TOPIC/subscriptions/SUB``.

A :class:`MessageBroker` on Azure Service Bus with the synchronous
azure-servicebus client. One ``ServiceBusClient`` per broker; its sender,
receiver and dead-letter receiver are opened on first use and kept, so a
send-only credential never opens a receive link (and vice versa).

For a subscription URL, ``send`` goes to the topic and ``receive`` reads the
subscription. Credentials (keyword options only): ``connection_string`` (SAS
key, SAS signature, or ``UseDevelopmentEmulator=true``), ``sas_token``,
``credential`` (any azure-core token credential), or, when none is given and
azure-identity is installed, ``DefaultAzureCredential``.

A connection that goes silent (a NAT or firewall dropped its state: no FIN,
no RST) looks to the SDK like an empty queue for ever. So after
``probe_interval`` seconds (default 30) in which receives brought nothing,
the receiver is asked for a peek that must answer within ``probe_timeout``
seconds (default 10); when it does not, the receiver (and its connection) is
dropped, the receive raises :class:`~iris_cloud.errors.Unavailable`, and the
next receive opens a new one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from azure.servicebus import ServiceBusClient, ServiceBusReceiver, ServiceBusSender
from iris_cloud.ports import Message, MessageBroker, Sendable
from iris_cloud.steps import drive

from iris_cloud_azure._bus import ENVELOPE_RESERVE, ServiceBusCommon
from iris_cloud_azure.credentials import default_credential

__all__ = ["ENVELOPE_RESERVE", "ServiceBusBroker"]


class ServiceBusBroker(ServiceBusCommon, MessageBroker):
    """One Service Bus queue, or a topic and one of its subscriptions.

    ``capabilities.max_message_bytes`` starts at the standard tier's 256 KB
    and is replaced by the limit the service announces on the send link
    (1 MB and more on premium) when the sender opens, before the first send.
    """

    client_class = ServiceBusClient

    def __init__(self, client: ServiceBusClient, **options: Any) -> None:
        super().__init__(client, **options)
        self._lock = threading.Lock()

    @staticmethod
    def default_credential() -> Any:
        """``azure.identity.DefaultAzureCredential``."""
        return default_credential()

    # -- links -----------------------------------------------------------------------
    def _get_sender(self) -> ServiceBusSender:
        with self._lock:
            return drive(self._link_steps("send"))  # type: ignore[no-any-return]

    def _get_receiver(self, dead_letter: bool = False) -> ServiceBusReceiver:
        with self._lock:
            link = drive(self._link_steps("dead_letter" if dead_letter else "receive"))
            return link  # type: ignore[no-any-return]

    # -- rights ----------------------------------------------------------------------
    def verify(self, right: str) -> bool:
        """Send: open the send link (Service Bus checks the Send claim on the attach);
        receive: peek (the Listen claim). Nothing is sent or locked."""
        if right == "send":
            self._get_sender()
            return True
        return super().verify(right)

    # -- sending ---------------------------------------------------------------------
    def send(self, messages: Sendable | Iterable[Sendable]) -> list[str]:
        """Send one or more messages; see :meth:`MessageBroker.send`.

        The send link is opened first so the claim-check threshold is the
        limit this entity announces, not an assumed one.
        """
        self._get_sender()
        return super().send(messages)

    def _send_batch(self, batch: list[Message]) -> None:
        drive(self._send_batch_steps(self._get_sender(), batch))

    # -- receiving -------------------------------------------------------------------
    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        return drive(self._receive_steps(self._get_receiver(), max_messages, wait))

    def _drop_receiver(self, receiver: ServiceBusReceiver) -> None:
        with self._lock:
            if self._receiver is receiver:
                self._receiver = None
        # Closing a link on a dead connection can block: not on this thread.
        threading.Thread(target=receiver.close, name="sb-close-dead", daemon=True).start()

    def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        # The ``$deadletterqueue`` sub-queue, under peek-lock like the main one.
        receiver = self._get_receiver(dead_letter=True)
        return drive(self._receive_from_steps(receiver, max_messages, wait))

    def peek(self, max_messages: int = 1) -> list[Message]:
        """The oldest ``max_messages`` messages (a Service Bus peek), locked or not, untouched."""
        return drive(self._peek_steps(self._get_receiver(), max_messages))

    # -- settling --------------------------------------------------------------------
    def complete(self, message: Message) -> None:
        """Remove the message from the entity."""
        drive(self._settle_steps(message, "complete"))
        self._completed(message)

    def abandon(self, message: Message, delay: float | None = None) -> None:
        """Release the lock for immediate redelivery.

        Service Bus cannot delay an abandon (``capabilities.delayed_retry`` is
        False): ``delay`` is ignored and the message is redelivered at once.
        """
        drive(self._settle_steps(message, "abandon"))

    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Move the message to the entity's ``$deadletterqueue`` with reason and description."""
        drive(
            self._settle_steps(message, "dead_letter", reason=reason, error_description=description)
        )

    def renew_lock(self, message: Message) -> datetime | None:
        """Extend the message's lock by the entity's lock duration; returns the new expiry."""
        until: datetime = drive(self._settle_steps(message, "renew"))
        message.locked_until = until
        return until

    def close(self) -> None:
        """Close the links and the connection; the broker cannot be used afterwards."""
        with self._lock:
            links = self._take_links()
        drive(self._close_steps(links))
