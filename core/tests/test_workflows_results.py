"""save_result and file-name templates: tokens, dates, escaping attempts, atomic writes."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from iris_cloud import aio
from iris_cloud.aio.builtin import AsyncMemoryStore
from iris_cloud.errors import AlreadyExists, ConfigurationError, ValidationError
from iris_cloud.model import OrderResult
from iris_cloud.providers.memory import MemoryStore
from iris_cloud.workflows.results import TOKENS, check_template, render_name, save_result
from wfhelpers import sample

PDF = b"%PDF-1.4 test document\n%%EOF\n"
WHEN = datetime(2024, 9, 1, 14, 5, 9)


Save = Callable[..., str | None]


@pytest.fixture(params=["sync", "async"])
def save(request: pytest.FixtureRequest) -> Save:
    """save_result, or aio.save_result awaited (a mem:// store as an async store)."""
    if request.param == "sync":
        return save_result

    def save_async(r: OrderResult, target: Any, *args: Any, **kwargs: Any) -> str | None:
        if isinstance(target, MemoryStore):
            target = AsyncMemoryStore(target)
        return asyncio.run(aio.save_result(r, target, *args, **kwargs))

    return save_async


def result(**changes: Any) -> OrderResult:
    data = sample("result-final.json")
    data["ResultsDocument"]["Content"] = base64.b64encode(PDF).decode()
    data["Site"]["LocalId"] = "HarborviewClinic"
    data["Order"]["LocalId"] = "P0112X00123"
    for path, value in changes.items():
        target = data
        *parents, leaf = path.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    return OrderResult.model_validate(data)


def test_documented_example() -> None:
    name = render_name(
        result(), "results/{MMddyyyy}/{clientLocalId}/{orderLocalId}.pdf", delivered_at=WHEN
    )
    assert name == "results/09012024/HarborviewClinic/P0112X00123.pdf"


def test_every_token() -> None:
    r = result(
        **{
            "Patient.PatientId": 42,
            "Patient.LocalId": "PL-1",
            "Patient.Name": {"First": "Ann", "Last": "Lee"},
            "Order.PatientOrderId": 777,
            "Order.DepartmentId": "Dept9",
        }
    )
    template = "/".join(f"{{{t}}}" for t in sorted(TOKENS))
    parts = dict(
        zip(sorted(TOKENS), render_name(r, template, delivered_at=WHEN).split("/"), strict=True)
    )
    assert parts == {
        "MM": "09",
        "MMddyyyy": "09012024",
        "YEST_MM": "08",
        "YEST_MMddyyyy": "08312024",
        "YEST_dd": "31",
        "YEST_yyyy": "2024",
        "YEST_yyyyMMdd": "20240831",
        "YEST_yyyyMMdd_HHmmss": "20240831_140509",
        "clientLocalId": "HarborviewClinic",
        "dd": "01",
        "departmentLocalId": "Dept9",
        "ext": "pdf",
        "orderId": "777",
        "orderLocalId": "P0112X00123",
        "patientFirstName": "Ann",
        "patientId": "42",
        "patientLastName": "Lee",
        "patientLocalId": "PL-1",
        "yyyy": "2024",
        "yyyyMMdd": "20240901",
        "yyyyMMdd_HHmmss": "20240901_140509",
    }


def test_yest_crosses_month_and_leap_day() -> None:
    assert (
        render_name(result(), "{YEST_yyyyMMdd}.pdf", delivered_at=datetime(2024, 3, 1))
        == "20240229.pdf"
    )
    assert render_name(result(), "{YEST_yyyy}.pdf", delivered_at=datetime(2025, 1, 1)) == "2024.pdf"


@pytest.mark.parametrize(
    "template",
    [
        "{orderlocalid}.pdf",
        "{OrderLocalId}.pdf",
        "{yyyymmdd}.pdf",
        "{nope}",
        "{orderLocalId.pdf",
        "x}.pdf",
        "/abs/{orderLocalId}.pdf",
        "../{orderLocalId}.pdf",
        "a/../b.pdf",
        "dir/",
        "",
        "a\\b.pdf",
        "C:/x.pdf",
        "./x.pdf",
    ],
)
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(ConfigurationError):
        check_template(template)


@pytest.mark.parametrize(
    ("local_id", "expected"),
    [
        ("../../etc/passwd", "_.._etc_passwd.pdf"),
        ("..", "unset.pdf"),
        ("", "unset.pdf"),
        (None, "unset.pdf"),
        ("/absolute", "_absolute.pdf"),
        ('a\\b:c*d?e"f<g>h|i', "a_b_c_d_e_f_g_h_i.pdf"),
        ("nul\x00byte\ttab", "nul_byte_tab.pdf"),
        ("CON", "_CON.pdf"),
        ("  .hidden. ", "hidden.pdf"),
        ("x" * 300, "x" * 100 + ".pdf"),
    ],
)
def test_unsafe_values_stay_one_segment(local_id: str | None, expected: str) -> None:
    assert render_name(result(**{"Order.LocalId": local_id}), "{orderLocalId}.pdf") == expected


def test_unset_values_in_directories(tmp_path: Path) -> None:
    r = result(**{"Order.DepartmentId": None, "Site.LocalId": "../.."})
    path = save_result(r, tmp_path, "{departmentLocalId}/{clientLocalId}/{orderLocalId}.pdf")
    assert path == str(tmp_path.resolve() / "unset" / "_" / "P0112X00123.pdf")


def test_save_is_atomic_idempotent_and_numbers_conflicts(tmp_path: Path) -> None:
    target = tmp_path / "out"
    first = save_result(result(), target, "{clientLocalId}/{orderLocalId}.pdf", delivered_at=WHEN)
    assert first is not None and Path(first).read_bytes() == PDF
    assert [p.name for p in Path(first).parent.iterdir()] == ["P0112X00123.pdf"]  # no temp left
    # A redelivered result is not saved twice.
    assert save_result(result(), target, "{clientLocalId}/{orderLocalId}.pdf") == first
    # A correction with different content keeps both.
    corrected = result(**{"ResultsDocument.Content": base64.b64encode(b"%PDF v2").decode()})
    second = save_result(corrected, target, "{clientLocalId}/{orderLocalId}.pdf")
    assert second is not None and second.endswith("P0112X00123-2.pdf")
    assert Path(second).read_bytes() == b"%PDF v2"
    save_result(corrected, target, "x/{orderLocalId}.pdf")
    with pytest.raises(AlreadyExists):
        save_result(result(), target, "x/{orderLocalId}.pdf", on_conflict="error")
    replaced = save_result(result(), target, "x/{orderLocalId}.pdf", on_conflict="replace")
    assert replaced is not None and Path(replaced).read_bytes() == PDF


def test_symlink_inside_target_cannot_lead_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "HarborviewClinic")
    with pytest.raises(ConfigurationError, match="outside"):
        save_result(result(), target, "{clientLocalId}/{orderLocalId}.pdf")
    assert list(outside.iterdir()) == []


def test_no_document_and_bad_content(tmp_path: Path) -> None:
    assert save_result(result(ResultsDocument=None), tmp_path) is None
    with pytest.raises(ValidationError, match=r"ResultsDocument\.Content"):
        save_result(result(**{"ResultsDocument.Content": "***not base64***"}), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_html_document_and_ext_token(save: Save, tmp_path: Path) -> None:
    r = result(ResultsDocument={"Type": "HTML", "Encoding": "ASCII", "Content": "<p>ok</p>"})
    path = save(r, tmp_path, "{orderLocalId}.{ext}")
    assert path is not None and path.endswith("P0112X00123.html")
    assert Path(path).read_text() == "<p>ok</p>"


def test_save_to_a_store(save: Save, tmp_path: Path) -> None:
    store = MemoryStore.from_url(f"mem://results-{tmp_path.name}")
    name = save(result(), store, "{yyyy}/{orderLocalId}.pdf", delivered_at=WHEN)
    assert name == "2024/P0112X00123.pdf"
    assert store.get(name) == PDF
    assert store.info(name).content_type == "application/pdf"
    assert save(result(), store, "{yyyy}/{orderLocalId}.pdf", delivered_at=WHEN) == name
    other = result(**{"ResultsDocument.Content": base64.b64encode(b"%PDF other").decode()})
    assert (
        save(other, store, "{yyyy}/{orderLocalId}.pdf", delivered_at=WHEN)
        == "2024/P0112X00123-2.pdf"
    )
    # A write-only results store cannot compare contents: it keeps both.
    write_only = MemoryStore.from_url(f"mem://results-{tmp_path.name}", access="w")
    again = save(result(), write_only, "{yyyy}/{orderLocalId}.pdf", delivered_at=WHEN)
    assert again == "2024/P0112X00123-3.pdf"
