"""Events: dispatch by ResultObjectType, generic fallback, construction."""

from __future__ import annotations

import json

import pytest
from iris_cloud.errors import ValidationError
from iris_cloud.model import (
    EVENT_TYPES,
    GenericEvent,
    GradingReceipt,
    ImageReceipt,
    OrderCancelled,
    OrderCreationReceipt,
    OrderGradedEvent,
    ReadyForGradingEvent,
    ResultsDeliveryReceipt,
    parse_event,
    sample_files,
)

BUNDLED = {p.name: p.read_bytes() for p in sample_files()}

CLASSES = {
    "event-grading-receipt.json": GradingReceipt,
    "event-image-receipt.json": ImageReceipt,
    "event-order-cancelled.json": OrderCancelled,
    "event-order-created.json": OrderCreationReceipt,
    "event-order-creation-failed.json": OrderCreationReceipt,
    "event-order-graded.json": OrderGradedEvent,
    "event-ready-for-grading.json": ReadyForGradingEvent,
    "event-results-delivery-receipt.json": ResultsDeliveryReceipt,
    "event-unknown-type.json": GenericEvent,
}


def test_all_seven_types_known() -> None:
    assert set(EVENT_TYPES) == {
        "OrderCreationReceipt",
        "OrderCancelled",
        "ImageReceipt",
        "ReadyForGradingEvent",
        "GradingReceipt",
        "OrderGradedEvent",
        "ResultsDeliveryReceipt",
    }


@pytest.mark.parametrize(("name", "cls"), sorted(CLASSES.items()))
def test_parse_event_dispatches(name: str, cls: type) -> None:
    event = parse_event(BUNDLED[name])
    assert type(event) is cls
    assert parse_event(event.to_json()) == event


def test_event_fields() -> None:
    image = parse_event(BUNDLED["event-image-receipt.json"])
    assert isinstance(image, ImageReceipt)
    assert image.iris_image_id == 3677459
    assert image.image_local_id == "52737144-4ed2-42f8-8801-af9da52fcb28"
    assert image.transaction_id == "DB816B37-07EC-43D0-9848-70BEC36F4024"
    delivery = parse_event(BUNDLED["event-results-delivery-receipt.json"])
    assert isinstance(delivery, ResultsDeliveryReceipt)
    assert delivery.delivery_type == "Fax" and delivery.transmission_status == "Pending"
    assert delivery.time_delivered is not None and delivery.time_delivered.year == 2022


def test_known_type_with_bad_field_is_an_error_not_generic() -> None:
    doc = json.loads(BUNDLED["event-image-receipt.json"])
    doc["IrisImageId"] = "three"
    with pytest.raises(ValidationError) as info:
        parse_event(json.dumps(doc))
    assert info.value.title == "invalid ImageReceipt"
    assert [e.path for e in info.value.errors] == ["IrisImageId"]


def test_typed_class_rejects_another_type() -> None:
    with pytest.raises(ValidationError) as info:
        OrderGradedEvent.from_json(BUNDLED["event-grading-receipt.json"])
    assert [e.path for e in info.value.errors] == ["ResultObjectType"]


def test_generic_event_construction_keeps_extras() -> None:
    event = GenericEvent(result_object_type="Future", version="2.4.0", Extra={"a": 1})
    assert event.to_dict() == {"ResultObjectType": "Future", "Version": "2.4.0", "Extra": {"a": 1}}
    assert parse_event(event.to_json()) == event


def test_constructed_typed_event_always_names_its_type() -> None:
    event = OrderGradedEvent(version="2.3.1", order_local_id="ORD1", iris_order_id=1)
    assert event.to_dict()["ResultObjectType"] == "OrderGradedEvent"
    assert type(parse_event(event.to_json())) is OrderGradedEvent
