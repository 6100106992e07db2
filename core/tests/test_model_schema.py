"""JSON Schema export per message type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from iris_cloud.model import SCHEMA_TYPES, detect_kind, json_schema, sample_files, schema_file_name
from iris_cloud.model.schema import GENERIC_EVENT_SCHEMA

EXPECTED = {
    "order",
    "result",
    "grading",
    "event:OrderCreationReceipt",
    "event:OrderCancelled",
    "event:ImageReceipt",
    "event:ReadyForGradingEvent",
    "event:GradingReceipt",
    "event:OrderGradedEvent",
    "event:ResultsDeliveryReceipt",
    "event:generic",
}


def test_schema_types() -> None:
    assert set(SCHEMA_TYPES) == EXPECTED


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_schema_is_json_with_wire_names(kind: str) -> None:
    schema = json_schema(kind)
    json.dumps(schema)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is True
    assert "Version" in schema["required"]
    assert all(name[0].isupper() or name == "$schema" for name in schema["properties"])


def test_required_fields_in_order_schema() -> None:
    schema = json_schema("order")
    assert set(schema["required"]) == {"Version", "ClientGuid", "OrderControlCode", "Order"}
    order = schema["$defs"]["Order"]
    assert order["required"] == ["LocalId"]
    assert "CPTCode" in order["properties"]


def test_lookup_by_class_or_event_name() -> None:
    assert json_schema("OrderRequest")["title"] == "OrderRequest"
    assert json_schema("orderGradedEvent")["title"] == "OrderGradedEvent"
    assert json_schema("GenericEvent")["title"] == "GenericEvent"
    assert schema_file_name("event:OrderGradedEvent") == "event-OrderGradedEvent.schema.json"
    with pytest.raises(KeyError):
        json_schema("invoice")


@pytest.mark.parametrize("sample", sample_files(), ids=lambda p: p.name)
def test_samples_validate_against_exported_schema(sample: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    kind = detect_kind(sample.read_bytes())
    if kind not in SCHEMA_TYPES:
        kind = GENERIC_EVENT_SCHEMA
    schema = json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(json.loads(sample.read_bytes()))
