"""Events (events queue), discriminated by ``ResultObjectType``.

IRIS adds event types without notice: :func:`parse_event` turns an unknown
type into a :class:`GenericEvent` that keeps every field, so a listener never
fails on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, cast

from pydantic import ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from iris_cloud.model.common import (
    MODEL_VERSION,
    DateTimeValue,
    IrisModel,
    OptionalGuid,
    OptionalInt,
    VersionString,
    require,
    validation_error,
)

__all__ = [
    "EVENT_TYPES",
    "AnyEvent",
    "Event",
    "GenericEvent",
    "GradingReceipt",
    "ImageReceipt",
    "OrderCancelled",
    "OrderCreationReceipt",
    "OrderGradedEvent",
    "ReadyForGradingEvent",
    "RequiredEvent",
    "RequiredImageReceipt",
    "RequiredOrderEvent",
    "ResultsDeliveryReceipt",
    "event_class",
    "parse_event",
]


class Event(IrisModel):
    """Fields every event carries. Concrete events derive from it.

    Repr hides the patient's LocalId (MRN) and the free-text ``ErrorMessage``.
    """

    transaction_id: OptionalGuid | None = None
    timestamp: DateTimeValue | None = None
    success: bool | None = None
    # IRIS error texts may quote the rejected order's patient data.
    error_message: str | None = Field(default=None, repr=False)
    result_object_type: str
    version: VersionString = Field(examples=[MODEL_VERSION])
    iris_order_id: OptionalInt | None = None
    order_local_id: str | None = None

    @property
    def require(self) -> RequiredEvent[Event]:
        """What IRIS always sends on this event, typed without ``None``.

        ``event.require.order_local_id`` is a ``str``; an absent field raises
        :class:`iris_cloud.errors.MissingField` naming its wire path.
        """
        return RequiredEvent(self)


class GenericEvent(Event):
    """An event whose ``ResultObjectType`` this model does not know.

    Every field beyond the common ones is kept (see :attr:`body`) and written
    back unchanged.
    """

    @property
    def body(self) -> dict[str, Any]:
        """The whole event as wire-named JSON data."""
        return self.to_dict()


class _KnownEvent(Event):
    def model_post_init(self, context: Any, /) -> None:
        # The type tag has a default for keyword construction; mark it as given
        # so that to_json() (which writes only given fields) always emits it.
        self.__pydantic_fields_set__.add("result_object_type")


class _OrderEvent(_KnownEvent):
    patient_local_id: str | None = Field(default=None, repr=False)

    @property
    def require(self) -> RequiredOrderEvent[_OrderEvent]:
        """What IRIS always sends on this event (see :class:`RequiredOrderEvent`)."""
        return RequiredOrderEvent(self)


class OrderCreationReceipt(_OrderEvent):
    """Answer to a submitted order. ``Success`` false (see :attr:`failed`) means rejected."""

    result_object_type: Literal["OrderCreationReceipt"] = "OrderCreationReceipt"

    @property
    def failed(self) -> bool:
        """Whether IRIS refused to create the order (``ErrorMessage`` says why)."""
        return self.success is False


class OrderCancelled(_OrderEvent):
    """The order was cancelled (Success / ErrorMessage carry no meaning here)."""

    result_object_type: Literal["OrderCancelled"] = "OrderCancelled"


class ImageReceipt(_OrderEvent):
    """One image was attached to the order."""

    result_object_type: Literal["ImageReceipt"] = "ImageReceipt"
    image_local_id: str | None = None
    iris_image_id: OptionalInt | None = None

    @property
    def require(self) -> RequiredImageReceipt:
        """What IRIS always sends on an image receipt (see :class:`RequiredImageReceipt`)."""
        return RequiredImageReceipt(self)


class ReadyForGradingEvent(_OrderEvent):
    """The order has its images and waits for a grader."""

    result_object_type: Literal["ReadyForGradingEvent"] = "ReadyForGradingEvent"


class GradingReceipt(_OrderEvent):
    """A grading was received for the order."""

    result_object_type: Literal["GradingReceipt"] = "GradingReceipt"


class OrderGradedEvent(_OrderEvent):
    """The order is graded; a result follows."""

    result_object_type: Literal["OrderGradedEvent"] = "OrderGradedEvent"


class ResultsDeliveryReceipt(_KnownEvent):
    """A result was delivered (or queued for delivery) to one endpoint."""

    result_object_type: Literal["ResultsDeliveryReceipt"] = "ResultsDeliveryReceipt"
    time_delivered: DateTimeValue | None = None
    delivery_type: str | None = None
    # A fax number or address, possibly the patient's own.
    endpoint: str | None = Field(default=None, repr=False)
    transmission_status: str | None = None


_E = TypeVar("_E", bound=Event, covariant=True)
_O = TypeVar("_O", bound=_OrderEvent, covariant=True)


class RequiredEvent(Generic[_E]):
    """The fields IRIS always sends on an event (``event.require``).

    Each attribute reads the event's field and raises
    :class:`iris_cloud.errors.MissingField` (a ``ValidationError``) with the
    field's wire name where it is absent or null.
    """

    __slots__ = ("_event",)

    def __init__(self, event: _E) -> None:
        self._event = event

    def _type(self) -> str:
        return type(self._event).__name__

    @property
    def transaction_id(self) -> str:
        """``TransactionId``."""
        return require(self._event.transaction_id, "TransactionId", self._type())

    @property
    def timestamp(self) -> datetime:
        """``Timestamp``."""
        return require(self._event.timestamp, "Timestamp", self._type())

    @property
    def order_local_id(self) -> str:
        """``OrderLocalId``: the ``Order.LocalId`` the event is about."""
        return require(self._event.order_local_id, "OrderLocalId", self._type())

    @property
    def iris_order_id(self) -> int:
        """``IrisOrderId``: IRIS's own number for the order."""
        return require(self._event.iris_order_id, "IrisOrderId", self._type())


class RequiredOrderEvent(RequiredEvent[_O]):
    """:class:`RequiredEvent` of an order's event, with the patient's ``LocalId``."""

    __slots__ = ()

    @property
    def patient_local_id(self) -> str:
        """``PatientLocalId``."""
        return require(self._event.patient_local_id, "PatientLocalId", self._type())


class RequiredImageReceipt(RequiredOrderEvent[ImageReceipt]):
    """:class:`RequiredOrderEvent` of an :class:`ImageReceipt`, with the image's ids."""

    __slots__ = ()

    @property
    def image_local_id(self) -> str:
        """``ImageLocalId``: the ``Image.LocalId`` of the request."""
        return require(self._event.image_local_id, "ImageLocalId", "ImageReceipt")

    @property
    def iris_image_id(self) -> int:
        """``IrisImageId``: IRIS's own number for the image."""
        return require(self._event.iris_image_id, "IrisImageId", "ImageReceipt")


AnyEvent = (
    OrderCreationReceipt
    | OrderCancelled
    | ImageReceipt
    | ReadyForGradingEvent
    | GradingReceipt
    | OrderGradedEvent
    | ResultsDeliveryReceipt
    | GenericEvent
)
"""Any event :func:`parse_event` can return."""

EVENT_TYPES: dict[str, type[Event]] = {
    cls.model_fields["result_object_type"].default: cls
    for cls in (
        OrderCreationReceipt,
        OrderCancelled,
        ImageReceipt,
        ReadyForGradingEvent,
        GradingReceipt,
        OrderGradedEvent,
        ResultsDeliveryReceipt,
    )
}
"""The event classes by ``ResultObjectType``."""


# The known events in one validator that picks the class by the tag: one pass
# over the document where reading the tag and then validating take two. An
# unknown tag (a GenericEvent) fails it, as does an invalid event, and is read
# the two-pass way, which also gives the errors. Built from EVENT_TYPES, the one
# list of them, so no type checker can follow it.
_KNOWN_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(
    cast(
        Any,
        Annotated[
            Union[tuple(EVENT_TYPES.values())],  # noqa: UP007 - a union built from a tuple
            Field(discriminator="result_object_type"),
        ],
    )
)


class _EventTag(IrisModel):
    # Reads only the discriminator; everything else is skipped, not converted.
    model_config = ConfigDict(extra="ignore")

    result_object_type: str


def event_class(result_object_type: str) -> type[Event]:
    """The class for a ``ResultObjectType``: a concrete event, else :class:`GenericEvent`."""
    return EVENT_TYPES.get(result_object_type, GenericEvent)


def parse_event(data: bytes | bytearray | str) -> AnyEvent:
    """Parse one event body into its class by ``ResultObjectType``.

    Raises:
        iris_cloud.errors.ValidationError: the body is not a valid event (every
            failing field path listed, input values never shown).
    """
    try:
        return _KNOWN_EVENT.validate_json(data)
    except PydanticValidationError:
        return _parse_event_by_tag(data)


def _parse_event_by_tag(data: bytes | bytearray | str) -> AnyEvent:
    """What :func:`parse_event` returns, the tag read first (its one pass must agree)."""
    try:
        tag = _EventTag.model_validate_json(data).result_object_type
    except PydanticValidationError as exc:
        raise validation_error("invalid event", exc) from None
    cls = event_class(tag)
    try:
        event = cls.model_validate_json(data)
    except PydanticValidationError as exc:
        raise validation_error(f"invalid {cls.__name__}", exc) from None
    assert isinstance(event, AnyEvent)
    return event
