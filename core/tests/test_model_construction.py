"""Building models from Python: snake_case keywords, typos refused, ``require`` accessors."""

from __future__ import annotations

import json

import iris_cloud.model as model
import pytest
from iris_cloud.errors import MissingField, UnknownField, ValidationError
from iris_cloud.model import (
    Address,
    CameraInfo,
    Gender,
    GenderContext,
    Gradings,
    GradingSubmission,
    ImageReceipt,
    IrisModel,
    Order,
    OrderControlCode,
    OrderGradedEvent,
    OrderRequest,
    OrderResult,
    PersonGender,
    Provider,
    ResultsDeliveryReceipt,
    parse_event,
    require,
    sample_files,
)
from pydantic.alias_generators import to_pascal

GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"


def _sample(name: str) -> bytes:
    return next(f for f in sample_files() if f.name == name).read_bytes()


def _models() -> list[type[IrisModel]]:
    return [
        obj
        for obj in vars(model).values()
        if isinstance(obj, type) and issubclass(obj, IrisModel) and obj is not IrisModel
    ]


@pytest.mark.parametrize("cls", _models(), ids=lambda c: c.__name__)
def test_no_field_renames_its_constructor_parameter(cls: type[IrisModel]) -> None:
    # An explicit alias= becomes the constructor parameter for type checkers
    # (pyright, pydantic's mypy plugin); wire names go in serialization_alias /
    # validation_alias, leaving the generated alias, unused by either.
    for name, info in cls.model_fields.items():
        assert info.alias in (None, to_pascal(name)), f"{cls.__name__}.{name}: alias={info.alias}"


def test_snake_case_keywords_write_the_wire_names() -> None:
    request = OrderRequest(
        version="2.3.1",
        client_guid=GUID,
        order_control_code=OrderControlCode.NEW,
        order=Order(local_id="ORD-1", evaluation_types=["DR"], cpt_code="92250"),
        ordering_provider=Provider(npi="1234567890"),
    )
    assert json.loads(request.to_json()) == {
        "Version": "2.3.1",
        "ClientGuid": GUID,
        "OrderControlCode": "NW",
        "Order": {"LocalId": "ORD-1", "EvaluationTypes": ["DR"], "CPTCode": "92250"},
        "OrderingProvider": {"NPI": "1234567890"},
    }
    genders = PersonGender(context=GenderContext.BIRTH_GENDER, gender=Gender.FEMALE)
    assert genders.to_dict() == {"Context": "BirthGender", "Gender": "F"}
    address = Address(street1="1 Main St", postal_code="98101")
    assert address.to_dict() == {"Street1": "1 Main St", "PostalCode": "98101"}
    camera = CameraInfo(ip_address="10.0.0.1", mac_address="00:11")
    assert camera.to_dict() == {"IPAddress": "10.0.0.1", "MACAddress": "00:11"}
    assert Gradings(od=None, ou=None).to_dict() == {"OD": None, "OU": None}


def test_wire_name_keywords_build_the_same_object() -> None:
    snake = PersonGender(gender=Gender.MALE)
    assert PersonGender(Gender="M") == snake
    assert PersonGender(Value="M") == snake  # the TypeScript library's name
    assert Address(Zip="1", Street="x") == Address(postal_code="1", street1="x")
    assert (
        GradingSubmission(
            Version="2.3.1", ClientGuid=GUID, LocalId="L", OD={"Gradable": True}
        ).to_dict()
        == GradingSubmission(
            version="2.3.1", client_guid=GUID, local_id="L", od={"Gradable": True}
        ).to_dict()
    )


def test_a_misspelt_keyword_names_the_closest_field() -> None:
    with pytest.raises(
        UnknownField,
        match=r"Order has no field 'evaluation_type' \(did you mean 'evaluation_types'\?\)",
    ):
        Order(local_id="ORD-1", evaluation_type=["DR"])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="did you mean 'gender'"):  # UnknownField is a TypeError
        PersonGender(gendre="M")  # type: ignore[call-arg]


def test_a_keyword_like_no_field_lists_the_fields() -> None:
    with pytest.raises(UnknownField) as caught:
        Provider(zzz=1)  # type: ignore[call-arg]
    assert str(caught.value) == (
        "Provider has no field 'zzz'; its fields: npi, taxonomy, name, email, degrees, associations"
    )


def test_the_error_names_keys_never_values() -> None:
    with pytest.raises(UnknownField) as caught:
        Order(local_id="Jane Doe 1958-03-15", evaluation_type="Jane Doe 1958-03-15")  # type: ignore[call-arg]
    assert "Jane" not in str(caught.value) and "1958" not in str(caught.value)
    long_key = "x" * 500
    with pytest.raises(UnknownField) as caught:
        Order(local_id="L", **{long_key: 1})
    assert len(str(caught.value)) < 400


def test_unknown_wire_names_are_kept_when_building_and_parsing() -> None:
    # An IRIS field this model does not know yet can be sent by its wire name.
    order = Order(local_id="ORD-1", NewIrisField={"a": 1})
    assert order.to_dict() == {"LocalId": "ORD-1", "NewIrisField": {"a": 1}}
    # Parsing keeps every unknown field, snake_case ones included, as before.
    parsed = Order.model_validate({"LocalId": "L", "evaluation_type": 1, "NewField": 2})
    assert parsed.model_extra == {"evaluation_type": 1, "NewField": 2}
    parsed = Order.from_json(b'{"LocalId": "L", "evaluation_type": 1}')
    assert parsed.to_dict() == {"LocalId": "L", "evaluation_type": 1}
    # Nested objects given as dicts are data, validated as parsed documents.
    request = OrderRequest(
        version="2.3.1",
        client_guid=GUID,
        order_control_code="NW",
        order={"LocalId": "L", "future_field": 1},
    )
    assert request.order.model_extra == {"future_field": 1}


def test_built_and_parsed_objects_round_trip_equal() -> None:
    for f in sample_files():
        if not f.name.endswith(".json"):
            continue
        parsed = model.parse_message(f.read_bytes())
        # Every given field by its Python name, unknown ones by their wire name.
        given = {name: getattr(parsed, name) for name in parsed.model_fields_set}
        rebuilt = type(parsed)(**given)
        assert rebuilt.to_dict() == parsed.to_dict(), f.name


def test_result_require_gives_the_fields_iris_always_sends() -> None:
    result = OrderResult.from_json(_sample("result-final.json"))
    need = result.require
    assert need.order is result.order
    assert result.order is not None and need.order_local_id == result.order.local_id
    assert need.result_code == "F"
    assert need.site is result.site
    assert need.patient is result.patient
    assert need.gradings is result.gradings
    assert need.results_document is result.results_document


def test_a_missing_required_field_raises_missing_field_with_its_path() -> None:
    result = OrderResult(version="2.3.1", order={"Status": "Graded"})
    with pytest.raises(MissingField) as caught:
        _ = result.require.order_local_id
    assert isinstance(caught.value, ValidationError)
    assert caught.value.path == "Order.LocalId"
    assert [e.path for e in caught.value.errors] == ["Order.LocalId"]
    assert str(caught.value).startswith("OrderResult without Order.LocalId")
    with pytest.raises(MissingField, match="OrderResult without Gradings"):
        _ = result.require.gradings
    request = OrderRequest(
        version="2.3.1", client_guid=GUID, order_control_code="CA", order=Order(local_id="L")
    )
    with pytest.raises(MissingField, match="OrderRequest without Patient"):
        _ = request.require.patient


def test_event_require_narrows_per_event_type() -> None:
    receipt = parse_event(_sample("event-image-receipt.json"))
    assert isinstance(receipt, ImageReceipt)
    need = receipt.require
    assert need.order_local_id == receipt.order_local_id
    assert need.patient_local_id == receipt.patient_local_id
    assert need.image_local_id == receipt.image_local_id
    assert need.iris_image_id == receipt.iris_image_id == 3677459
    assert need.iris_order_id == 1225564
    assert need.transaction_id == "DB816B37-07EC-43D0-9848-70BEC36F4024"
    assert need.timestamp.year == 2022
    graded = OrderGradedEvent(version="2.3.1")
    with pytest.raises(MissingField, match="OrderGradedEvent without OrderLocalId"):
        _ = graded.require.order_local_id
    delivery = ResultsDeliveryReceipt(version="2.3.1", order_local_id="L")
    assert delivery.require.order_local_id == "L"


def test_require_function_narrows_any_optional_value() -> None:
    result = OrderResult.from_json(_sample("result-final.json"))
    order = require(result.order, "Order", "OrderResult")
    assert order is result.order
    with pytest.raises(MissingField, match=r"message without Gradings\.OD") as caught:
        require(Gradings().od, "Gradings.OD")
    assert caught.value.errors[0].type == "missing"
