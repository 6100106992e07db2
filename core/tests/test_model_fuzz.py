"""Whatever arrives, parsing ends in a model or an iris-cloud ValidationError."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iris_cloud.errors import ValidationError
from iris_cloud.model import IrisModel, detect_kind, parse_event, parse_message, sample_files
from iris_cloud.model.detect import _exact_parse
from iris_cloud.model.event import _parse_event_by_tag

SAMPLES = [json.loads(p.read_bytes()) for p in sample_files()]
KEYS = sorted(
    {"Version", "ClientGuid", "OrderControlCode", "ResultObjectType", "ResultCode", "LocalId"}
    | {"Dob", "Taken", "Timestamp", "Gender", "Value", "Genders", "CPTCode", "DateTimeOffset"}
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "1/1/2000", "13/45/1999", "2022-01-02T17:42:18.6936779+00:00", "V2.3.1"])
    | st.sampled_from(["NW", "OD", "Base64", "63E3C9EF-66AC-4154-B0C2-494515EB99A7", "9/9/99999"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


def _agree(
    fast: Callable[[str | bytes], object], exact: Callable[[str | bytes], object], data: str | bytes
) -> None:
    # Whatever the one-pass parse returns or raises, the exact way must too.
    try:
        exact_result: object = exact(data)
    except ValidationError as exc:
        exact_result = exc
    try:
        fast_result: object = fast(data)
    except ValidationError as exc:
        fast_result = exc
    assert type(fast_result) is type(exact_result)
    if isinstance(exact_result, ValidationError):
        assert isinstance(fast_result, ValidationError)
        assert (str(fast_result), fast_result.errors) == (str(exact_result), exact_result.errors)
    else:
        assert fast_result == exact_result


def _agrees_with_detection(data: str | bytes) -> None:
    # parse_message guesses the class of results, orders and known events from
    # a substring, parse_event the class of a known event in one validator:
    # each must agree with its exact way.
    _agree(parse_message, _exact_parse, data)
    _agree(parse_event, _parse_event_by_tag, data)


def _check(data: str | bytes) -> None:
    _agrees_with_detection(data)
    for parse in (parse_message, parse_event, detect_kind):
        try:
            result = parse(data)
        except ValidationError as exc:
            assert exc.errors, "a ValidationError lists at least one field"
            continue
        if isinstance(result, IrisModel):
            # Whatever parsed must also write out and read back equal.
            assert parse(result.to_json()) == result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    _check(json.dumps(value))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@st.composite
def mutated_samples(draw: st.DrawFn) -> Any:
    doc = draw(st.sampled_from(SAMPLES))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(_paths(doc)))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and path:
            parent_path, key = path[:-1], path[-1]
            parent = doc
            for part in parent_path:
                parent = parent[part]
            if isinstance(parent, dict):
                trimmed = {k: v for k, v in parent.items() if k != key}
            else:
                trimmed = [v for i, v in enumerate(parent) if i != key]
            doc = _replace(doc, parent_path, trimmed)
        elif action == "add":
            target = doc
            for part in path:
                target = target[part]
            if isinstance(target, dict):
                key = draw(st.sampled_from(KEYS) | st.text(max_size=6))
                doc = _replace(doc, path, {**target, key: draw(json_values)})
            else:
                doc = _replace(doc, path, draw(json_values))
        else:
            doc = _replace(doc, path, draw(json_values))
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_samples())
def test_mutated_samples(doc: Any) -> None:
    _check(json.dumps(doc))


def test_an_unset_code_writes_back_as_it_reads() -> None:
    # "" (unset) reads as None; written as null it would not read back. Found by
    # test_mutated_samples on OrderControlCode.
    for sample in SAMPLES:
        for code in ("OrderControlCode", "ResultCode"):
            if code in sample:
                _check(json.dumps({**sample, code: ""}))


@pytest.mark.parametrize(
    "doc",
    [
        # A tag the model does not know: a GenericEvent, by detection.
        {"ResultObjectType": "SomethingNew", "Version": "V2.3.1", "X": 1},
        # A tag and a result code: a result, whatever the tag.
        {"ResultObjectType": "ImageReceipt", "Version": "V2.3.1", "result_code": "X"},
        {"ResultObjectType": "OrderResult", "Version": "V2.3.1"},
        # A known tag on an invalid event: its own class's error, not a GenericEvent.
        {"ResultObjectType": "ImageReceipt", "Version": "V2.3.1", "Success": "maybe"},
        # The tag's name only inside a nested object, and beside an order's code.
        {"Order": {"ResultObjectType": "ImageReceipt"}, "OrderControlCode": "NW"},
        {"ResultObjectType": "ImageReceipt", "Version": "V2.3.1", "OrderControlCode": "NW"},
        # The tag twice: the last one counts, for the guess as for detection.
        '{"ResultObjectType": "OrderResult", "ResultObjectType": "ImageReceipt", "Version": "1"}',
        '{"ResultObjectType": "ImageReceipt", "ResultObjectType": "Other", "Version": "V2.3.1"}',
        # The tag by its wire name and by its field name, differing.
        {
            "ResultObjectType": "ImageReceipt",
            "result_object_type": "OrderCancelled",
            "Version": "1",
        },
        {"result_object_type": "ImageReceipt", "ResultObjectType": "Other", "Version": "1"},
        # An escaped key the substring guess does not see.
        '{"\\u0052esultObjectType": "ImageReceipt", "Version": "V2.3.1"}',
        '{"ResultObjectType": "ImageReceipt", "\\u0052esultCode": "X", "Version": "V2.3.1"}',
    ],
)
def test_the_guessed_class_is_the_detected_one(doc: Any) -> None:
    _agrees_with_detection(doc if isinstance(doc, str) else json.dumps(doc))


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in sample_files()])
def test_every_sample_parses_as_detected(sample: Any) -> None:
    _agrees_with_detection(json.dumps(sample))


def test_deep_nesting_is_a_validation_error() -> None:
    _check("[" * 5000 + "]" * 5000)
    _check('{"Order": ' * 3000 + "1" + "}" * 3000)
