"""Strict fields, error shape, and patient data kept out of errors and reprs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from iris_cloud.errors import IrisCloudError, ValidationError
from iris_cloud.model import (
    GradingSubmission,
    OrderRequest,
    ResultsDocument,
    detect_kind,
    parse_event,
    parse_message,
    sample_files,
)

BUNDLED = {p.name: p.read_bytes() for p in sample_files()}


def _doc(name: str) -> Any:
    return json.loads(BUNDLED[name])


def _errors(data: str | bytes) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        parse_message(data)
    assert isinstance(info.value, IrisCloudError)
    return {e.path: e.type for e in info.value.errors}


def test_missing_version_bad_guid_missing_local_id_all_listed() -> None:
    doc = _doc("order-new.json")
    del doc["Version"]
    doc["ClientGuid"] = "63E3C9EF-66AC-4154-B0C2"
    del doc["Order"]["LocalId"]
    assert _errors(json.dumps(doc)) == {
        "Version": "missing",
        "ClientGuid": "guid_format",
        "Order.LocalId": "missing",
    }


@pytest.mark.parametrize("version", ["", "two", "2", "v2.3.1-beta", None, 231])
def test_version_must_look_like_a_version(version: object) -> None:
    doc = _doc("order-cancel.json")
    doc["Version"] = version
    assert "Version" in _errors(json.dumps(doc))


@pytest.mark.parametrize("version", ["2.3.1", "V2.3.1", "2.4", "2.4.0"])
def test_version_forms_accepted_and_kept(version: str) -> None:
    doc = _doc("order-cancel.json")
    doc["Version"] = version
    order = parse_message(json.dumps(doc))
    assert isinstance(order, OrderRequest) and order.version == version


@pytest.mark.parametrize(
    "guid",
    ["63e3c9ef-66ac-4154-b0c2-494515eb99a7", "{63E3C9EF-66AC-4154-B0C2-494515EB99A7}"],
)
def test_guid_forms_kept_as_sent(guid: str) -> None:
    doc = _doc("order-cancel.json")
    doc["ClientGuid"] = guid
    order = parse_message(json.dumps(doc))
    assert isinstance(order, OrderRequest) and order.client_guid == guid


@pytest.mark.parametrize("guid", ["", None, "63E3C9EF66AC4154B0C2494515EB99A7X", 5])
def test_client_guid_required_and_a_guid(guid: object) -> None:
    doc = _doc("order-cancel.json")
    doc["ClientGuid"] = guid
    assert "ClientGuid" in _errors(json.dumps(doc))


def test_order_local_id_required_non_empty() -> None:
    doc = _doc("order-cancel.json")
    doc["Order"]["LocalId"] = ""
    assert _errors(json.dumps(doc)) == {"Order.LocalId": "string_too_short"}
    del doc["Order"]
    assert _errors(json.dumps(doc)) == {"Order": "missing"}


def test_grading_local_id_and_guid_required() -> None:
    doc = _doc("grading-1.json")
    del doc["LocalId"]
    del doc["ClientGuid"]
    assert _errors(json.dumps(doc)) == {"LocalId": "missing", "ClientGuid": "missing"}
    with pytest.raises(ValidationError):
        GradingSubmission.from_json(json.dumps({"Version": "2.3.1", "LocalId": "x"}))


def test_nested_paths_use_wire_names_and_indexes() -> None:
    doc = _doc("result-final.json")
    doc["Images"][1]["Received"] = "not a date"
    doc["Gradings"]["OD"]["Findings"][0]["Finding"] = 5
    doc["ImageDetails"]["TotalCount"] = "many"
    assert _errors(json.dumps(doc)) == {
        "Images[1].Received": "datetime_format",
        "Gradings.OD.Findings[0].Finding": "string_type",
        "ImageDetails.TotalCount": "int_format",
    }


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("[]", ""),
        ('"text"', ""),
        ("{", ""),
        (b"\xff\xfe", ""),
        ("{}", ""),
        ('{"Anything": 1}', ""),
    ],
)
def test_not_a_message(body: str | bytes, path: str) -> None:
    assert path in _errors(body)
    with pytest.raises(ValidationError):
        detect_kind(body)


def test_event_needs_a_string_type() -> None:
    doc = _doc("event-order-graded.json")
    doc["ResultObjectType"] = 12
    with pytest.raises(ValidationError) as info:
        parse_event(json.dumps(doc))
    assert [e.path for e in info.value.errors] == ["ResultObjectType"]


# ----------------------------------------------------------------- patient data

SECRETS = ("Zebulon", "Quixotewright", "MRN-77731", "555-0199", "zeb@example.org", "1/31/1997")


def _phi_doc() -> dict[str, Any]:
    doc = _doc("order-new.json")
    patient = doc["Patient"]
    patient["Name"] = {"First": "Zebulon", "Last": "Quixotewright"}
    patient["LocalId"] = "MRN-77731"
    patient["Phone"] = "555-0199"
    patient["Email"] = "zeb@example.org"
    patient["Dob"] = "1/31/1997"
    patient["Address"] = {"Street1": "12 Quixotewright Lane", "PostalCode": "98101"}
    return doc


def _bad_phi_doc() -> dict[str, Any]:
    doc = _phi_doc()
    doc["Patient"]["Dob"] = "31/31/1997 MRN-77731"  # invalid, and carries the MRN
    doc["Patient"]["Name"] = {"First": ["Zebulon"], "Last": {"x": "Quixotewright"}}
    doc["Patient"]["Genders"] = "Zebulon"
    doc["Patient"]["LocalId"] = ["MRN-77731"]
    return doc


def _assert_no_secret(text: str) -> None:
    for secret in (*SECRETS, "31/31/1997", "98101"):
        assert secret not in text


def test_errors_never_contain_patient_values() -> None:
    with pytest.raises(ValidationError) as info:
        parse_message(json.dumps(_bad_phi_doc()))
    err = info.value
    paths = {e.path for e in err.errors}
    assert {"Patient.Dob", "Patient.Name.First", "Patient.Name.Last", "Patient.Genders"} <= paths
    assert "Patient.LocalId" in paths
    _assert_no_secret(str(err))
    _assert_no_secret(repr(err))
    _assert_no_secret(repr(err.errors))
    # The pydantic error (which holds the input) is not chained onto ours.
    assert err.__cause__ is None and err.__suppress_context__


def test_reprs_hide_patient_values() -> None:
    order = parse_message(json.dumps(_phi_doc()))
    assert isinstance(order, OrderRequest) and order.patient is not None
    for obj in (order, order.patient, order.patient.name, order.patient.address):
        _assert_no_secret(repr(obj))
        _assert_no_secret(str(obj))
    assert "name=***" in repr(order.patient)
    # The values are still there for code that needs them.
    assert order.patient.name is not None and order.patient.name.first == "Zebulon"


def test_repr_hides_unknown_field_values() -> None:
    doc = _phi_doc()
    doc["Patient"]["Ssn"] = "078-05-1120"
    order = parse_message(json.dumps(doc))
    assert "078-05-1120" not in repr(order)
    assert "Ssn=***" in repr(order)


def test_cli_output_has_no_patient_values() -> None:
    from iris_cloud.cli.validate import validate_command

    runner = CliRunner()
    for flags in ([], ["--json"]):
        result = runner.invoke(validate_command, [*flags, "-"], input=json.dumps(_bad_phi_doc()))
        assert result.exit_code == 1, result.output
        assert "Patient.Dob" in result.output
        _assert_no_secret(result.output)


def test_results_document_decode() -> None:
    assert ResultsDocument(encoding="Base64", content="SGVsbG8=").decode() == b"Hello"
    assert ResultsDocument(encoding="ASCII", content="MSH|^~\\&|").decode() == b"MSH|^~\\&|"
    with pytest.raises(ValidationError) as info:
        ResultsDocument(type="PDF", encoding="Base64", content="...").decode()
    assert info.value.errors[0].path == "ResultsDocument.Content"
    with pytest.raises(ValidationError):
        ResultsDocument(encoding="ASCII", content="é").decode()
    with pytest.raises(ValidationError):
        ResultsDocument(encoding="UUEncode", content="x").decode()


def test_raw_pydantic_errors_hide_input_too() -> None:
    # Callers that use model_validate_json directly get pydantic's error; it
    # must not carry the values into logs either.
    import pydantic

    with pytest.raises(pydantic.ValidationError) as info:
        OrderRequest.model_validate_json(json.dumps(_bad_phi_doc()))
    _assert_no_secret(str(info.value))
    _assert_no_secret(repr(info.value))
