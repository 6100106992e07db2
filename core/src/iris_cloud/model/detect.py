"""Tell what an IRIS JSON document is and parse it into the right class.

Detection reads a handful of top-level keys with a tiny pydantic model (the
document is parsed by pydantic-core, nothing is converted to Python dicts),
then the document is validated once by the class it belongs to. Results,
orders and known events, nearly every message, skip detection: their class is
guessed from a key's name and the parsed object checked against detection's
rules, so they are read once, not twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from pydantic import ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from iris_cloud.errors import FieldError, ValidationError
from iris_cloud.model.common import IrisModel, validation_error
from iris_cloud.model.event import _KNOWN_EVENT, EVENT_TYPES, AnyEvent, Event, event_class
from iris_cloud.model.grading import GradingSubmission
from iris_cloud.model.order import OrderRequest
from iris_cloud.model.result import OrderResult

__all__ = [
    "KNOWN_KINDS",
    "RESULT_OBJECT_TYPES",
    "AnyMessage",
    "MessageKind",
    "detect_kind",
    "kind_of",
    "message_class",
    "parse_message",
    "shown_kind",
]

MessageKind: TypeAlias = str
"""``"order"``, ``"result"``, ``"grading"`` or ``"event:<ResultObjectType>"``."""

AnyMessage: TypeAlias = OrderRequest | OrderResult | GradingSubmission | AnyEvent
"""Anything :func:`parse_message` returns."""

RESULT_OBJECT_TYPES = frozenset({"OrderResult", "OrderResults"})
"""``ResultObjectType`` values that mark an OrderResult rather than an event."""

KNOWN_KINDS = frozenset(
    {"order", "result", "grading", "invalid", "unknown"} | {f"event:{n}" for n in EVENT_TYPES}
)
"""The kinds :func:`shown_kind` shows as they are (besides ``event:other``)."""


def shown_kind(kind: str) -> str:
    """``kind`` as logs, metric labels and span attributes show it: a kind the model
    knows, else ``event:other``.

    An event's type is the sender's text (``ResultObjectType``): one it does not
    know could be anything, a patient's name too, so it is never shown.
    """
    return kind if kind in KNOWN_KINDS else "event:other"


class _Sniff(IrisModel):
    # Only the identifying top-level keys are read; everything else is skipped.
    model_config = ConfigDict(extra="ignore")

    result_object_type: str | None = None
    result_code: Any = None
    order_control_code: Any = None
    client_guid: Any = None
    local_id: Any = None
    od: Any = Field(default=None, validation_alias="OD", serialization_alias="OD")
    os: Any = Field(default=None, validation_alias="OS", serialization_alias="OS")


def _kind(sniff: _Sniff) -> MessageKind | None:
    given = sniff.model_fields_set
    tag = sniff.result_object_type
    if "result_code" in given or tag in RESULT_OBJECT_TYPES:
        return "result"
    if isinstance(tag, str):
        return f"event:{tag}"
    if "order_control_code" in given:
        return "order"
    if given & {"local_id", "od", "os"}:
        return "grading"
    if "client_guid" in given:
        return "order"
    return None


_UNKNOWN = FieldError(
    "",
    "message_kind",
    "cannot tell the message type: expected OrderControlCode (order), ResultObjectType "
    "(event), ResultCode (result) or LocalId (grading) at the top level",
)


def detect_kind(data: bytes | bytearray | str) -> MessageKind:
    """The kind of one JSON document, without validating it.

    Returns ``"order"``, ``"result"``, ``"grading"`` or ``"event:<ResultObjectType>"``.

    Raises:
        iris_cloud.errors.ValidationError: not a JSON object, or none of the
            keys that identify a message are present.
    """
    try:
        sniff = _Sniff.model_validate_json(data)
    except PydanticValidationError as exc:
        raise validation_error("invalid message", exc) from None
    kind = _kind(sniff)
    if kind is None:
        raise ValidationError("invalid message", [_UNKNOWN])
    return kind


def message_class(kind: MessageKind) -> type[IrisModel]:
    """The class that parses messages of ``kind`` (see :func:`detect_kind`)."""
    if kind == "order":
        return OrderRequest
    if kind == "result":
        return OrderResult
    if kind == "grading":
        return GradingSubmission
    if kind.startswith("event:"):
        return event_class(kind.removeprefix("event:"))
    raise ValueError(f"unknown message kind {kind!r}")


def kind_of(message: IrisModel) -> MessageKind:
    """The kind of a parsed message, as :func:`detect_kind` names it."""
    # By exact class first: isinstance on a pydantic class is an ABC check,
    # and the consumer asks for every message.
    kind = _KIND_OF_CLASS.get(type(message))
    if kind is not None:
        return kind
    if isinstance(message, Event):
        return f"event:{message.result_object_type}"
    if isinstance(message, OrderRequest):
        return "order"
    if isinstance(message, OrderResult):
        return "result"
    if isinstance(message, GradingSubmission):
        return "grading"
    raise TypeError(f"not an IRIS message: {type(message).__name__}")


_KIND_OF_CLASS: dict[type, MessageKind] = {
    OrderRequest: "order",
    OrderResult: "result",
    GradingSubmission: "grading",
    # A known event class parses only its own ResultObjectType (a Literal).
    **{cls: f"event:{tag}" for tag, cls in EVENT_TYPES.items()},
}


_NOT_AN_EVENT = frozenset({"ResultCode", "result_code"})
_NOT_AN_ORDER = _NOT_AN_EVENT | {"ResultObjectType", "result_object_type"}


def _is_result(result: OrderResult) -> bool:
    return "result_code" in result.model_fields_set


def _is_event(event: Event) -> bool:
    # A tag makes it an event unless a result code is given too.
    return not _NOT_AN_EVENT.intersection(event.model_extra or ())


def _is_order(order: OrderRequest) -> bool:
    return not _NOT_AN_ORDER.intersection(order.model_extra or ())


_Guess: TypeAlias = tuple[
    str, bytes, Callable[[bytes | bytearray | str], Any], Callable[[Any], bool]
]
# (a key's name, as text and as bytes; the class's validator; whether what it
# parsed is of that kind by detection's rules). The first name found decides,
# in detection's order: a result code before a tag before an order's code.
_GUESSES: tuple[_Guess, ...] = (
    ('"ResultCode"', b'"ResultCode"', OrderResult.model_validate_json, _is_result),
    ('"ResultObjectType"', b'"ResultObjectType"', _KNOWN_EVENT.validate_json, _is_event),
    ('"OrderControlCode"', b'"OrderControlCode"', OrderRequest.model_validate_json, _is_order),
)


def _fast_parse(data: bytes | bytearray | str) -> AnyMessage | None:
    """Parse results, orders and known events in one pass, guessing the class from a substring.

    The guess is only a shortcut: the parsed object itself is then checked
    against the rules of :func:`detect_kind` (every top-level key ends up in
    ``model_fields_set`` or the extras), so a wrong guess, for instance a key
    name inside a string value, falls back to exact detection. Invalid input
    also falls back, so that errors come from the exactly detected class.
    """
    text = isinstance(data, str)
    for name, raw, validate, confirmed in _GUESSES:
        if (name if text else raw) in data:  # type: ignore[operator]
            try:
                parsed: AnyMessage = validate(data)
            except PydanticValidationError:
                return None
            return parsed if confirmed(parsed) else None
    return None


def parse_message(data: bytes | bytearray | str) -> AnyMessage:
    """Detect what one JSON document is and parse it into that class.

    Returns an :class:`OrderRequest`, :class:`OrderResult`,
    :class:`GradingSubmission` or an event (:class:`GenericEvent` for an
    unknown ``ResultObjectType``).

    Raises:
        iris_cloud.errors.ValidationError: listing every failing field path;
            input values are never part of the error.
    """
    fast = _fast_parse(data)
    if fast is not None:
        return fast
    return _exact_parse(data)


def _exact_parse(data: bytes | bytearray | str) -> AnyMessage:
    """What :func:`parse_message` returns, by detection first (its guesses must agree)."""
    cls = message_class(detect_kind(data))
    try:
        message = cls.model_validate_json(data)
    except PydanticValidationError as exc:
        raise validation_error(f"invalid {cls.__name__}", exc) from None
    assert isinstance(message, AnyMessage)
    return message
