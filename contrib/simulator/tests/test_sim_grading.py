"""The automatic grading rules and what a result says about them."""

from __future__ import annotations

from iris_cloud.model import EyeGrading, Finding
from iris_cloud_simulator import DR_LEVELS, AutoGrader
from iris_cloud_simulator.grading import dx_codes, gradings_for, worst_dr_level
from iris_cloud_simulator.report import render_report


def eye(level: str, edema: str = "None") -> EyeGrading:
    return EyeGrading(
        gradable=True,
        findings=[
            Finding(finding="Diabetic Retinopathy", result=level),
            Finding(finding="Macular Edema", result=edema),
        ],
    )


def test_auto_grader_is_deterministic_and_follows_its_table() -> None:
    grader = AutoGrader(table={"ORD-1": ("Severe", None)})
    assert grader.levels_for("ORD-1") == ("Severe", None)
    od, os = grader.grade("ORD-1")
    assert os is None and od is not None
    assert [(f.finding, f.result) for f in od.findings or []] == [
        ("Diabetic Retinopathy", "Severe"),
        ("Macular Edema", "Positive"),
    ]
    hashed = [AutoGrader().levels_for(f"ORD-{n}") for n in range(200)]
    assert hashed == [AutoGrader().levels_for(f"ORD-{n}") for n in range(200)]
    assert {lvl for pair in hashed for lvl in pair} == {"None", "Mild", "Moderate", "Severe"}
    only_mild = AutoGrader(levels=("Mild",))
    assert only_mild.levels_for("anything") == ("Mild", "Mild")


def test_dx_codes_follow_icd10() -> None:
    assert dx_codes(eye("Mild"), eye("Mild")) == ["E113293"]
    assert dx_codes(eye("Severe", "Positive"), eye("None")) == ["E113411"]
    assert dx_codes(eye("Moderate"), eye("Proliferative")) == ["E113592", "E113391"]
    assert dx_codes(eye("None"), eye("None")) == ["E119"]
    assert dx_codes(EyeGrading(gradable=False, ungradable_reasons=["Dirty Lens"]), None) == []
    assert worst_dr_level(eye("Mild"), eye("Moderate")) == "Moderate"


def test_gradings_flags_and_care_plan() -> None:
    graded = gradings_for(eye("Proliferative"), eye("None"), graded_time="t", queued_time="q")
    assert graded["Emergent"] is True and graded["Urgent"] is False
    assert graded["Pathology"] is True
    assert graded["CarePlanName"] == "Emergent referral"
    healthy = gradings_for(eye("None"), eye("None"), graded_time="t", queued_time=None)
    assert healthy["Pathology"] is False and healthy["DxCodes"] == ["E119"]
    one_eye = gradings_for(eye("Mild"), None, graded_time="t", queued_time=None)
    assert "OS" not in one_eye and one_eye["OD"]["Gradable"] is True
    assert DR_LEVELS[0] == "None"


def test_report_is_a_pdf_even_for_names_outside_latin1() -> None:
    pdf = render_report(
        {
            "Patient": {"Name": {"First": "Zoë", "Last": "Ωmega"}, "Dob": "2000-01-01"},
            "Order": {"LocalId": "ORD-1", "EvaluationTypes": ["DR"]},
            "Gradings": gradings_for(eye("Mild"), None, graded_time="t", queued_time=None),
        }
    )
    assert pdf.startswith(b"%PDF") and b"%%EOF" in pdf[-32:]
