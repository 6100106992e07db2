"""Every sample message parses, round-trips, and keeps what it was given."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from iris_cloud.errors import ValidationError
from iris_cloud.model import (
    Cpt,
    EvaluationType,
    Gender,
    GenderContext,
    GenericEvent,
    GradingSubmission,
    IrisModel,
    Laterality,
    OrderControlCode,
    OrderCreationReceipt,
    OrderRequest,
    OrderResult,
    ResultsDeliveryReceipt,
    detect_kind,
    kind_of,
    parse_message,
    sample_files,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "iris" / "examples"
BUNDLED = {p.name: p.read_bytes() for p in sample_files()}


def _shared_files() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(SHARED.glob("*.json")) + sorted((SHARED / "quirks").glob("*.json"))


def _load(name: str) -> Any:
    return json.loads(BUNDLED[name])


def test_bundle_holds_every_sample() -> None:
    # 16 documented examples + 3 quirks; a lost file would silently shrink coverage.
    assert len(BUNDLED) == 19
    assert {"order-new.json", "result-final.json", "event-unknown-type.json"} <= set(BUNDLED)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/iris/examples not beside the clone")
def test_bundle_matches_shared_examples() -> None:
    shared = {p.name: p.read_bytes() for p in _shared_files()}
    assert shared == BUNDLED


EXPECTED_KINDS = {
    "event-grading-receipt.json": "event:GradingReceipt",
    "event-image-receipt.json": "event:ImageReceipt",
    "event-order-cancelled.json": "event:OrderCancelled",
    "event-order-created.json": "event:OrderCreationReceipt",
    "event-order-creation-failed.json": "event:OrderCreationReceipt",
    "event-order-graded.json": "event:OrderGradedEvent",
    "event-ready-for-grading.json": "event:ReadyForGradingEvent",
    "event-results-delivery-receipt.json": "event:ResultsDeliveryReceipt",
    "grading-1.json": "grading",
    "grading-2.json": "grading",
    "grading-3.json": "grading",
    "grading-4.json": "grading",
    "order-cancel.json": "order",
    "order-new.json": "order",
    "order-update.json": "order",
    "result-final.json": "result",
    "event-unknown-type.json": "event:OrderReopenedEvent",
    "order-go-library.json": "order",
    "order-typescript-library.json": "order",
}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_sample_detected_and_parsed(name: str) -> None:
    data = BUNDLED[name]
    assert detect_kind(data) == EXPECTED_KINDS[name]
    message = parse_message(data)
    assert kind_of(message) == EXPECTED_KINDS[name]
    # str input takes the same path as bytes
    assert parse_message(data.decode()) == message


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_sample_round_trips(name: str) -> None:
    message = parse_message(BUNDLED[name])
    again = parse_message(message.to_json())
    assert type(again) is type(message)
    assert again == message
    assert again.to_dict() == message.to_dict()
    # A second cycle is byte-stable: normalisation happens once, on first read.
    assert parse_message(again.to_json()).to_json() == again.to_json()


def _normalise(value: Any) -> Any:
    """The documented wire form of a quirk value, for comparison with our output."""
    if isinstance(value, dict):
        renamed = {
            {"Zip": "PostalCode", "Street": "Street1", "Value": "Gender"}.get(k, k): v
            for k, v in value.items()
        }
        if "DateTimeOffset" in renamed:
            renamed["Taken"] = renamed.pop("DateTimeOffset")
        return {k: _normalise(v) for k, v in renamed.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _same_meaning(original: Any, dumped: Any, path: str = "") -> None:
    """Every key the sender gave comes back, with a value of the same meaning."""
    if isinstance(original, dict):
        assert isinstance(dumped, dict), path
        assert set(original) == set(dumped), path
        for key in original:
            _same_meaning(original[key], dumped[key], f"{path}.{key}")
    elif isinstance(original, list):
        assert isinstance(dumped, list) and len(original) == len(dumped), path
        for i, (a, b) in enumerate(zip(original, dumped, strict=True)):
            _same_meaning(a, b, f"{path}[{i}]")
    elif isinstance(original, str) and original != dumped:
        # Only typed scalars may change their text: dates to ISO, "" to null.
        assert (original == "" and dumped is None) or _equal_instant(original, dumped), path
    else:
        assert original == dumped, path


def _equal_instant(a: str, b: Any) -> bool:
    if not isinstance(b, str):
        return False
    try:
        return _us_or_iso_datetime(a) == _us_or_iso_datetime(b)
    except ValueError:
        return False


def _us_or_iso_datetime(text: str) -> datetime:
    if "/" in text:
        return datetime.strptime(text, "%m/%d/%Y")
    if "T" not in text:
        return datetime.fromisoformat(text)
    head, _, tail = text.partition(".")
    if tail:
        # .NET writes 7 fractional digits; Python keeps 6 (100 ns are dropped).
        digits = re.match(r"\d*", tail).group()  # type: ignore[union-attr]
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_given_field_comes_back(name: str) -> None:
    original = _normalise(_load(name))
    dumped = parse_message(BUNDLED[name]).to_dict()
    _same_meaning(original, dumped)


def test_unknown_fields_kept_at_every_level() -> None:
    doc = _load("result-final.json")
    doc["FutureRoot"] = {"nested": [1, {"x": None}]}
    doc["Gradings"]["OD"]["Findings"][0]["Confidence"] = 0.93
    doc["Images"][1]["Camera"]["Firmware"] = "9.1"
    doc["Patient"]["Name"]["Suffix"] = "Jr"
    message = parse_message(json.dumps(doc))
    assert isinstance(message, OrderResult)
    assert message.model_extra == {"FutureRoot": {"nested": [1, {"x": None}]}}
    out = message.to_dict()
    assert out["FutureRoot"] == {"nested": [1, {"x": None}]}
    assert out["Gradings"]["OD"]["Findings"][0]["Confidence"] == 0.93
    assert out["Images"][1]["Camera"]["Firmware"] == "9.1"
    assert out["Patient"]["Name"]["Suffix"] == "Jr"


def test_unknown_enum_codes_kept() -> None:
    doc = _load("order-new.json")
    doc["OrderControlCode"] = "ZZ"
    doc["Order"]["EvaluationTypes"] = ["DR", "RetinaAI"]
    doc["Camera"]["Images"][0]["Laterality"] = "OX"
    doc["Patient"]["Genders"][0]["Gender"] = "Q"
    doc["Patient"]["Genders"][1]["Context"] = "LegalGender"
    message = parse_message(json.dumps(doc))
    assert isinstance(message, OrderRequest)
    assert message.order_control_code == "ZZ"
    assert not isinstance(message.order_control_code, OrderControlCode)
    assert message.order.evaluation_types == [EvaluationType.DR, "RetinaAI"]
    assert message.camera is not None and message.camera.images is not None
    assert message.camera.images[0].laterality == "OX"
    out = message.to_dict()
    assert out["OrderControlCode"] == "ZZ"
    assert out["Order"]["EvaluationTypes"] == ["DR", "RetinaAI"]
    assert out["Patient"]["Genders"] == [
        {"Context": "IdentityGender", "Gender": "Q"},
        {"Context": "LegalGender", "Gender": "M"},
    ]


def test_known_codes_become_enum_members() -> None:
    message = parse_message(BUNDLED["order-new.json"])
    assert isinstance(message, OrderRequest)
    assert message.order_control_code is OrderControlCode.NEW
    assert message.camera is not None and message.camera.images is not None
    assert message.camera.images[0].laterality is Laterality.OD
    assert message.patient is not None and message.patient.genders is not None
    assert message.patient.genders[0].context is GenderContext.IDENTITY_GENDER
    assert message.patient.genders[0].gender is Gender.MALE


def test_unknown_event_type_is_generic_with_whole_body() -> None:
    body = _load("event-unknown-type.json")
    event = parse_message(BUNDLED["event-unknown-type.json"])
    assert isinstance(event, GenericEvent)
    assert event.result_object_type == "OrderReopenedEvent"
    assert event.iris_order_id == 42
    assert event.model_extra == {
        "ReopenedBy": "qa.reviewer",
        "Reason": {"Code": 7, "Text": "second read"},
    }
    assert event.body["Reason"] == {"Code": 7, "Text": "second read"}
    assert set(event.body) == set(body)
    assert event.body["Timestamp"] in ("2025-02-01T00:00:00Z", body["Timestamp"])


def test_failed_creation_is_a_receipt_with_success_false() -> None:
    event = parse_message(BUNDLED["event-order-creation-failed.json"])
    assert isinstance(event, OrderCreationReceipt)
    assert event.failed
    assert event.error_message == "Site PC9999 is not configured for this organization"
    ok = parse_message(BUNDLED["event-order-created.json"])
    assert isinstance(ok, OrderCreationReceipt) and not ok.failed


def test_documented_quirks_of_the_examples() -> None:
    order = parse_message(BUNDLED["order-new.json"])
    assert isinstance(order, OrderRequest)
    assert order.order.cpt_code == "57554"
    assert order.order.scheduled_time == datetime(2025, 1, 1)
    assert order.patient is not None and order.patient.dob == date(2000, 1, 1)
    assert order.camera is not None and order.camera.images is not None
    taken = order.camera.images[0].taken
    assert taken == datetime(2022, 1, 1, 17, 42, 18, 693677, tzinfo=UTC)
    result = parse_message(BUNDLED["result-final.json"])
    assert isinstance(result, OrderResult)
    assert result.timestamp is None and result.transaction_id is None
    assert result.order is not None and result.order.serviced is not None
    assert result.cpt == Cpt(
        code="92250", description="Fundus photography with interpretation and report"
    )
    assert result.gradings is not None and result.gradings.os is not None
    assert result.gradings.os.findings is None


def test_go_library_order() -> None:
    order = parse_message(BUNDLED["order-go-library.json"])
    assert isinstance(order, OrderRequest)
    assert order.version == "V2.3.1"
    assert order.patient is not None
    assert order.patient.dob == date(1958, 3, 15)
    assert order.patient.marital_status is None  # "" means unset
    assert order.patient.name is not None and order.patient.name.middle == "J"
    assert order.patient.address is not None and order.patient.address.postal_code == ""
    assert order.camera is not None and order.camera.images is not None
    assert order.camera.images[0].taken == datetime(2024, 5, 2, 10, 11, 12, tzinfo=UTC)
    assert order.order.created_time is None and order.order.scheduled_time is None
    assert order.health_plan is not None and order.health_plan.effective_date is None
    out = order.to_dict()
    assert out["Camera"]["Images"][0]["Taken"].startswith("2024-05-02T10:11:12")
    assert "DateTimeOffset" not in out["Camera"]["Images"][0]
    assert out["Site"]["Address"] == {"Street1": "", "City": "", "PostalCode": ""}


def test_typescript_library_order() -> None:
    order = parse_message(BUNDLED["order-typescript-library.json"])
    assert isinstance(order, OrderRequest)
    assert order.version == "V2.3.1"
    assert order.camera is not None and order.camera.name == ""
    assert order.patient is not None and order.patient.genders is not None
    assert order.patient.genders[0].gender is Gender.FEMALE
    assert order.to_dict()["Patient"]["Genders"] == [{"Context": "BirthGender", "Gender": "F"}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("03/15/1958", date(1958, 3, 15)),
        ("3/5/1958", date(1958, 3, 5)),
        ("1958-03-15", date(1958, 3, 15)),
        ("3/5/1958 12:00:00 AM", date(1958, 3, 5)),
        ("", None),
    ],
)
def test_dob_forms(text: str, expected: date | None) -> None:
    doc = _load("order-update.json")
    doc["Patient"]["Dob"] = text
    order = parse_message(json.dumps(doc))
    assert isinstance(order, OrderRequest) and order.patient is not None
    assert order.patient.dob == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-01-03T09:15:00.1234567-05:00", "2022-01-03T14:15:00.123456+00:00"),
        ("2022-01-03T14:15:00Z", "2022-01-03T14:15:00+00:00"),
        ("2022-01-03T14:15:00+00:00", "2022-01-03T14:15:00+00:00"),
        ("1/3/2022 2:15:00 PM", "2022-01-03T14:15:00"),
        ("1/3/2022 12:05 AM", "2022-01-03T00:05:00"),
        ("01/03/2022 14:15", "2022-01-03T14:15:00"),
    ],
)
def test_datetime_forms(text: str, expected: str) -> None:
    doc = _load("event-order-graded.json")
    doc["Timestamp"] = text
    event = parse_message(json.dumps(doc))
    assert event.timestamp is not None
    want = datetime.fromisoformat(expected)
    assert event.timestamp == want
    assert (event.timestamp.tzinfo is None) == (want.tzinfo is None)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("2/30/2000", "date_format"),  # no such day
        ("13/1/2000", "date_format"),  # no such month
        ("1/1/200", "date_format"),  # three-digit year
        ("1//2000", "date_format"),
        ("1/1/2000 25:00", "date_format"),
        ("a/b/cdef", "date_format"),
    ],
)
def test_bad_us_dates_are_refused(text: str, kind: str) -> None:
    doc = _load("order-update.json")
    doc["Patient"]["Dob"] = text
    with pytest.raises(ValidationError) as exc:
        parse_message(json.dumps(doc))
    [error] = exc.value.errors
    assert (error.path, error.type) == ("Patient.Dob", kind)
    assert text not in str(exc.value)


@pytest.mark.parametrize("text", ["2/30/2000", "13/1/2000", "1/1/200", "1/1/2000 25:00"])
def test_bad_us_datetimes_are_refused(text: str) -> None:
    doc = _load("event-order-graded.json")
    doc["Timestamp"] = text
    with pytest.raises(ValidationError) as exc:
        parse_message(json.dumps(doc))
    assert [e.path for e in exc.value.errors] == ["Timestamp"]


def test_cpt_code_as_object_is_kept() -> None:
    doc = _load("order-update.json")
    doc["Order"]["CPTCode"] = {"Code": "92250", "Description": "Fundus photography"}
    order = parse_message(json.dumps(doc))
    assert isinstance(order, OrderRequest)
    assert order.order.cpt_code == Cpt(code="92250", description="Fundus photography")
    assert order.to_dict()["Order"]["CPTCode"] == {
        "Code": "92250",
        "Description": "Fundus photography",
    }


def test_constructed_messages_serialise_by_alias() -> None:
    receipt = ResultsDeliveryReceipt(
        version="2.3.1",
        iris_order_id=7,
        order_local_id="ORD1",
        delivery_type="Fax",
    )
    wire = receipt.to_dict()
    assert wire == {
        "ResultObjectType": "ResultsDeliveryReceipt",
        "Version": "2.3.1",
        "IrisOrderId": 7,
        "OrderLocalId": "ORD1",
        "DeliveryType": "Fax",
    }
    assert parse_message(receipt.to_json()) == receipt


def test_keyword_construction_of_an_order() -> None:
    from iris_cloud.model import Image, Name, Order, Patient, PersonGender, Site

    order = OrderRequest(
        version="2.3.1",
        client_guid="63E3C9EF-66AC-4154-B0C2-494515EB99A7",
        order_control_code=OrderControlCode.NEW,
        site=Site(local_id="PC1234"),
        order=Order(local_id="ORD9", evaluation_types=[EvaluationType.DR]),
        patient=Patient(
            local_id="MRN1",
            name=Name(first="Ana", last="Silva"),
            dob=date(1961, 12, 1),
            genders=[PersonGender(context=GenderContext.BIRTH_GENDER, gender=Gender.FEMALE)],
        ),
    )
    wire = order.to_dict()
    assert wire["OrderControlCode"] == "NW"
    assert wire["Patient"]["Dob"] == "1961-12-01"
    assert wire["Order"] == {"LocalId": "ORD9", "EvaluationTypes": ["DR"]}
    assert parse_message(order.to_json()) == order
    assert Image(local_id="i1").to_dict() == {"LocalId": "i1"}


def test_from_json_on_a_class() -> None:
    grading = GradingSubmission.from_json(BUNDLED["grading-3.json"])
    assert grading.os is not None and grading.os.gradable is False
    assert grading.os.ungradable_reasons == ["Key anatomy missing or not clearly visible"]
    assert isinstance(grading, IrisModel)
