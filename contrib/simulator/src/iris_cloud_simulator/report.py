"""The PDF report of a graded order, made with fpdf2.

It holds what a real screening report holds (patient name, date of birth,
identifiers, site, exam and grading dates, findings per eye, care plan,
diagnosis codes, grader) and is marked as coming from the simulator. Nothing
here logs any of it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["render_report"]

_TITLE = "Diabetic Retinal Exam Report"
_BANNER = "SIMULATED RESULT - produced by iris-cloud-simulator, not a medical report"


def _text(value: object) -> str:
    """Printable text for the PDF's core fonts (Latin-1); unset values show as a dash."""
    if value is None or value == "":
        return "-"
    return str(value).encode("latin-1", "replace").decode("latin-1")


def _when(value: object) -> object:
    """An ISO 8601 date-time as ``2024-09-01 14:05 UTC``; anything else unchanged."""
    if not isinstance(value, str) or "T" not in value:
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    offset = moment.utcoffset()
    zone = " UTC" if offset is not None and not offset else moment.strftime(" %z").rstrip()
    return moment.strftime("%Y-%m-%d %H:%M") + zone


def _name(name: Mapping[str, Any] | None) -> str:
    if not name:
        return "-"
    parts = [name.get("Title"), name.get("First"), name.get("Middle"), name.get("Last")]
    return " ".join(str(p) for p in parts if p) or "-"


def _eye_lines(eye: Mapping[str, Any] | None) -> list[str]:
    if eye is None:
        return ["No images"]
    if eye.get("Gradable") is False:
        reasons = ", ".join(eye.get("UngradableReasons") or []) or "reason not given"
        return [f"Not gradable ({reasons})"]
    findings = eye.get("Findings") or []
    if not findings:
        return ["No pathology found"]
    lines = []
    for f in findings:
        finding, result = f.get("Finding"), f.get("Result")
        lines.append(f"{finding}: {result}" if result else str(finding))
    return lines


@functools.cache
def _report_class() -> Any:
    # fpdf2 takes seconds to import on a busy machine: only when a report is made.
    from fpdf import FPDF

    class _Report(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", "B", 16)
            self.cell(0, 10, _TITLE, new_x="LMARGIN", new_y="NEXT")
            self.set_font("Helvetica", "I", 8)
            self.set_text_color(160, 0, 0)
            self.cell(0, 5, _BANNER, new_x="LMARGIN", new_y="NEXT")
            self.set_text_color(0, 0, 0)
            self.ln(3)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 10, f"Page {self.page_no()}", align="C")

        def section(self, title: str) -> None:
            self.ln(2)
            self.set_font("Helvetica", "B", 12)
            self.set_fill_color(230, 236, 245)
            self.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT", fill=True)
            self.set_font("Helvetica", "", 10)

        def pairs(self, rows: Sequence[tuple[str, object]]) -> None:
            for label, value in rows:
                self.set_font("Helvetica", "B", 10)
                self.cell(48, 6, label)
                self.set_font("Helvetica", "", 10)
                self.multi_cell(0, 6, _text(value), new_x="LMARGIN", new_y="NEXT")

    return _Report


def render_report(result: Mapping[str, Any]) -> bytes:
    """A PDF report for an ``OrderResult`` given as wire-named data (without its document)."""
    order = result.get("Order") or {}
    patient = result.get("Patient") or {}
    site = result.get("Site") or {}
    gradings = result.get("Gradings") or {}
    details = result.get("ImageDetails") or {}

    pdf = _report_class()(format="Letter")
    pdf.set_title(_TITLE)
    pdf.set_creator("iris-cloud-simulator")
    pdf.set_compression(True)
    pdf.add_page()

    pdf.section("Patient")
    pdf.pairs(
        [
            ("Name", _name(patient.get("Name"))),
            ("Date of birth", patient.get("Dob")),
            ("Patient ID", patient.get("LocalId")),
            ("Gender", patient.get("Gender")),
        ]
    )
    pdf.section("Order")
    pdf.pairs(
        [
            ("Order ID", order.get("LocalId")),
            ("IRIS order", order.get("PatientOrderId")),
            ("Site", site.get("LocalId")),
            ("Evaluation", ", ".join(order.get("EvaluationTypes") or []) or None),
            ("Exam date", _when(order.get("ServicedTime"))),
            ("Images", details.get("TotalCount")),
            ("Result code", result.get("ResultCode")),
        ]
    )
    pdf.section("Findings")
    for label, key in (("Right eye (OD)", "OD"), ("Left eye (OS)", "OS")):
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(48, 6, label)
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(
            0, 6, _text("\n".join(_eye_lines(gradings.get(key)))), new_x="LMARGIN", new_y="NEXT"
        )
    pdf.section("Assessment")
    pdf.pairs(
        [
            ("Care plan", gradings.get("CarePlanName")),
            ("", gradings.get("CarePlanDescription")),
            ("Diagnosis codes", ", ".join(gradings.get("DxCodes") or []) or None),
            ("Pathology", "Yes" if gradings.get("Pathology") else "No"),
            ("Urgent", "Yes" if gradings.get("Urgent") or gradings.get("Emergent") else "No"),
            ("Graded", _when(gradings.get("GradedTime"))),
            ("Grader", _name((gradings.get("Provider") or {}).get("Name"))),
        ]
    )
    return bytes(pdf.output())
