"""Reprs of events, results and exam identifiers hide the patient's data, as OrderRequest's do.

A log line or traceback that formats a parsed message must not carry the
patient's LocalId (MRN), name, date of birth, phone, or free text that may
describe them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from iris_cloud.model import EVENT_TYPES, OrderRequest, OrderResult, parse_message, sample_files
from iris_cloud.workflows.order_first import ExamIdentifiers

MRN = "MRN-7731-QX"
SECRETS = {
    "mrn": MRN,
    "first": "Quixotely",
    "last": "Zebulon-Smythe",
    "dob": "1953",
    "phone": "555-0199-872",
    "note": "patient reports left eye pain since fall",
    "error": "Patient Zebulon-Smythe DOB mismatch",
    "encounter": "ENC-99117",
    "info": "lives alone, daughter is contact",
    "endpoint": "quixotely@example.org",
}


def _sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        next(f for f in sample_files() if f.name == name).read_bytes()
    )
    return data


def assert_masked(model: object) -> None:
    for text in (repr(model), str(model)):
        leaked = [k for k, v in SECRETS.items() if v in text]
        assert not leaked, f"{type(model).__name__} repr shows {leaked}"


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_repr_hides_the_patient_local_id_and_error_text(event_type: str) -> None:
    body = {
        "TransactionId": "0C7B5A39-1D2E-4F60-A7B8-C9D0E1F2A3B4",
        "Version": "2.3.1",
        "ResultObjectType": event_type,
        "OrderLocalId": "ORD-1",
        "PatientLocalId": MRN,
        "Success": False,
        "ErrorMessage": SECRETS["error"],
        "Endpoint": SECRETS["endpoint"],
    }
    event = parse_message(json.dumps(body))
    assert_masked(event)
    assert "ORD-1" in repr(event)  # the order's id stays: it is what an operator searches by


def test_unknown_event_type_repr_hides_its_fields() -> None:
    body = {"ResultObjectType": "OrderReopenedEvent", "Version": "2.4.0", "PatientMrn": MRN}
    assert_masked(parse_message(json.dumps(body)))


def test_result_repr_hides_patient_notes_and_free_text() -> None:
    data = _sample("result-final.json")
    data["Patient"] = {
        "LocalId": MRN,
        "Name": {"First": SECRETS["first"], "Last": SECRETS["last"]},
        "Dob": "1/1/1953",
        "Phone": SECRETS["phone"],
    }
    data["Order"]["EncounterNumber"] = SECRETS["encounter"]
    data["Order"]["AdditionalInfo"] = SECRETS["info"]
    data["Gradings"]["Notes"] = [{"Text": SECRETS["note"]}]
    data["CameraOperator"]["Notes"] = [{"Text": SECRETS["note"]}]
    data["ErrorMessage"] = SECRETS["error"]
    result = OrderResult.from_json(json.dumps(data))
    assert_masked(result)
    assert_masked(result.patient)
    assert_masked(result.order)
    assert "ORD1234" in repr(result)


def test_exam_identifiers_repr_hides_the_patient_local_id() -> None:
    order = OrderRequest.from_json(
        next(f for f in sample_files() if f.name == "order-new.json").read_bytes()
    ).model_copy(deep=True)
    assert order.patient is not None
    order.patient.local_id = MRN
    ids = ExamIdentifiers.from_order(order, image_local_id="img-1", laterality="OD")
    assert_masked(ids)
    assert ids.patient_local_id == MRN  # hidden from repr only
    assert MRN in ids.to_json()
