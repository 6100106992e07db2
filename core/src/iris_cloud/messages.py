"""Messages as the ports carry them, and the IRIS conventions for building them.

:class:`Message` is what :class:`~iris_cloud.ports.MessageBroker` sends and
receives; :func:`message_for` builds one from an IRIS model with the ids and
properties every side of this library uses (the client, the simulator, and
``broker.send(model)``). This module sits below the ports and the client, which
both import it: it imports neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from iris_cloud.model import IrisModel, OrderRequest

__all__ = ["Message", "PropertyValue", "Sendable", "message_for", "order_message"]

PropertyValue = str | int | float | bool


@dataclass
class Message:
    """One message, outgoing or received.

    For sending, set ``body`` and whichever headers matter; ``message_id`` is
    generated when left empty. On a received message the broker also fills
    ``delivery_count``, ``enqueued_at``, ``lock_token`` and ``locked_until``;
    settle it with the broker that returned it.
    """

    body: bytes
    message_id: str = ""
    correlation_id: str | None = None
    content_type: str | None = "application/json"
    subject: str | None = None
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    delivery_count: int = 0
    enqueued_at: datetime | None = None
    lock_token: str | None = None
    locked_until: datetime | None = None
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None
    raw: Any = field(default=None, repr=False, compare=False)
    """The provider's own handle (receipt handle, ack id, SDK message)."""
    claim_check_name: str | None = field(default=None, repr=False, compare=False)
    """On a received message whose body came from the broker's claim-check store:
    the payload's object name there (``None`` for a body that travelled inline)."""
    claim_check_fetched: bool = field(default=False, repr=False, compare=False)
    """On a received message: whether its body was fetched from a claim-check store
    (the broker's own or one of its ``claim_check_sources``)."""

    def __repr__(self) -> str:
        # Bodies carry patient data: a repr shows only their size.
        return (
            f"Message(message_id={self.message_id!r}, correlation_id={self.correlation_id!r}, "
            f"subject={self.subject!r}, body=<{len(self.body)} bytes>, "
            f"delivery_count={self.delivery_count})"
        )

    @property
    def size(self) -> int:
        """Bytes of body plus property keys and values, as services count them."""
        return len(self.body) + sum(len(k) + len(str(v)) for k, v in self.properties.items())

    @classmethod
    def coerce(cls, value: Sendable) -> Message:
        """A :class:`Message` from what callers pass to ``send``.

        A pydantic model is sent as its JSON by alias (wire names); an IRIS
        model as :func:`message_for` makes it (the ids and
        properties an :class:`~iris_cloud.client.IrisClient` gives it).
        """
        if isinstance(value, Message):
            return value
        if isinstance(value, str):
            return cls(body=value.encode("utf-8"))
        if isinstance(value, bytes | bytearray | memoryview):
            return cls(body=bytes(value))
        if isinstance(value, BaseModel):
            return _model_message(value)
        if isinstance(value, Mapping):
            raise TypeError(_MAPPING_REFUSED)
        raise TypeError(
            f"cannot send a {type(value).__name__}; pass bytes, str, a pydantic model or Message"
        )


def _model_message(model: BaseModel) -> Message:
    # Imported here: the model costs its import time only to those who send models.
    from iris_cloud.model import Event, GradingSubmission, OrderRequest, OrderResult

    if isinstance(model, Event | GradingSubmission | OrderRequest | OrderResult):
        return message_for(model)
    return Message(body=model.model_dump_json(by_alias=True).encode("utf-8"))


_MAPPING_REFUSED = (
    "cannot send a dict or other mapping: serialise it first (json.dumps) or pass a pydantic model"
)

Sendable = Message | bytes | bytearray | memoryview | str | BaseModel
"""One message as ``send`` takes it."""


def order_message(order: OrderRequest, transaction_id: str) -> Message:
    """The broker message for ``order`` (ids and properties as the module docstring says)."""
    code = str(order.order_control_code)
    local_id = order.order.local_id
    return Message(
        body=order.to_json().encode("utf-8"),
        message_id=transaction_id,
        correlation_id=local_id,
        content_type="application/json",
        subject="OrderRequest",
        properties={
            "MessageType": "OrderRequest",
            "OrderControlCode": code,
            "OrderLocalId": local_id,
            "TransactionId": transaction_id,
        },
    )


def message_for(message: IrisModel, transaction_id: str | None = None) -> Message:
    """The broker message for any IRIS model, with the ids every side of this library uses.

    ``message_id`` is the TransactionId (the event's / result's own when it
    has one, else ``transaction_id``, else a new GUID), ``correlation_id`` the
    order's LocalId, ``subject`` and property ``MessageType`` the message type
    (``OrderRequest``, ``GradingSubmission``, ``OrderResult`` or the event's
    ``ResultObjectType``). The simulator sends events and results with it.
    """
    from iris_cloud.model import Event, GradingSubmission, OrderRequest, OrderResult

    own = getattr(message, "transaction_id", None)
    txid = str(own) if own else (transaction_id or str(uuid.uuid4()))
    if isinstance(message, OrderRequest):
        return order_message(message, txid)
    local_id: str | None
    if isinstance(message, GradingSubmission):
        kind, local_id = "GradingSubmission", message.local_id
    elif isinstance(message, OrderResult):
        kind, local_id = "OrderResult", message.order.local_id if message.order else None
    elif isinstance(message, Event):
        kind, local_id = message.result_object_type, message.order_local_id
    else:
        raise TypeError(f"not an IRIS message: {type(message).__name__}")
    properties: dict[str, str | int | float | bool] = {"MessageType": kind, "TransactionId": txid}
    if local_id:
        properties["OrderLocalId"] = local_id
    return Message(
        body=message.to_json().encode("utf-8"),
        message_id=txid,
        correlation_id=local_id,
        subject=kind,
        properties=properties,
    )
