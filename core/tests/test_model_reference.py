"""docs/model-reference.md is generated from the models and kept current."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import iris_cloud.model as model
import pytest
from iris_cloud.model import IrisModel
from iris_cloud.model.reference import REGENERATE, enum_member_docs, main, render

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "model-reference.md"


def test_the_checked_in_reference_is_current() -> None:
    current = CHECKED_IN.read_text(encoding="utf-8") if CHECKED_IN.is_file() else ""
    if current != render():
        pytest.fail(f"docs/model-reference.md is not current; regenerate it: {REGENERATE}")


def _public(kind: type) -> list[type]:
    return [
        obj
        for name in model.__all__
        if isinstance(obj := getattr(model, name), type) and issubclass(obj, kind)
    ]


def test_every_class_field_and_code_is_listed() -> None:
    text = render()
    for cls in _public(IrisModel):
        if cls is IrisModel:
            continue
        assert f"\n### {cls.__name__}\n" in text
        for name in cls.model_fields:
            assert f"| `{name}` |" in text, f"{cls.__name__}.{name}"
    assert "| `odd` |" not in text
    assert "| `gender` | `Gender` | [Gender](#gender) code |  | also read from `Value` |" in text
    assert "| `npi` | `NPI` | str |" in text
    assert "| `local_id` | `LocalId` | str (not empty) | yes | hidden in repr |" in text
    for enum in _public(StrEnum):
        assert f"\n### {enum.__name__}\n" in text
        for member in enum:
            assert f"| `{member.value}` | `{member.name}` |" in text


@pytest.mark.parametrize("enum", _public(StrEnum), ids=lambda e: e.__name__)
def test_every_code_says_what_it_means(enum: type[StrEnum]) -> None:
    docs = enum_member_docs(enum)
    assert [m.name for m in enum if not docs.get(m.name)] == []


def test_check_mode_fails_on_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "model-reference.md"
    assert main([str(target), "--check"]) == 1
    assert main([str(target)]) == 0
    assert main([str(target), "--check"]) == 0
    target.write_text(target.read_text() + "edited\n")
    assert main([str(target), "--check"]) == 1
    assert REGENERATE in capsys.readouterr().err
