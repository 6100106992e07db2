"""How the simulator grades: deterministic automatic rules and the result's findings.

:class:`AutoGrader` decides a Diabetic Retinopathy level per eye for an order,
either from a rules table (order LocalId -> level per eye) or from a hash of
the LocalId, so that the same order always gets the same grading and a test
can predict it. :func:`gradings_for` turns per-eye gradings (automatic or from
a :class:`~iris_cloud.model.GradingSubmission`) into the result's
``Gradings``: findings, pathology and urgency flags, care plan and ICD-10
``DxCodes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from iris_cloud.model import EyeGrading, Finding

__all__ = [
    "DR_FINDING",
    "DR_LEVELS",
    "AutoGrader",
    "GradingMode",
    "dx_codes",
    "gradings_for",
    "worst_dr_level",
]

DR_FINDING = "Diabetic Retinopathy"
ME_FINDING = "Macular Edema"
DR_LEVELS: tuple[str, ...] = ("None", "Mild", "Moderate", "Severe", "Proliferative")
"""Diabetic Retinopathy results from no disease to the worst, as IRIS reports them."""

GradingMode = Literal["auto", "manual"]
"""``auto``: grade as soon as an order is ready; ``manual``: wait for a GradingSubmission."""

# ICD-10-CM "Type 2 diabetes mellitus with ... diabetic retinopathy": the stem
# per level; a 6th character 9 = without macular edema, 1 = with; the 7th
# the eye (1 right, 2 left, 3 bilateral). No retinopathy is E11.9.
_DR_ICD10 = {"Mild": "E1132", "Moderate": "E1133", "Severe": "E1134", "Proliferative": "E1135"}
_NO_DR_ICD10 = "E119"

_CARE_PLANS = {
    "None": ("Return in 12 months", "No diabetic retinopathy. Repeat the screening in 12 months."),
    "Mild": (
        "Return in 6 months",
        "Have patient return in 6 months for a followup exam.",
    ),
    "Moderate": (
        "Refer to eye care",
        "Refer the patient to an eye care professional within 3 months.",
    ),
    "Severe": (
        "Urgent referral",
        "Refer the patient to an ophthalmologist within 2 weeks.",
    ),
    "Proliferative": (
        "Emergent referral",
        "Refer the patient to a retina specialist within days.",
    ),
}
_NO_PATHOLOGY = {"none", "no observable", ""}


@dataclass(frozen=True)
class AutoGrader:
    """Deterministic automatic grading by a rules table or a hash of the LocalId.

    Args:
        table: order LocalId -> ``(OD level, OS level)``; a level is one of
            :data:`DR_LEVELS` (or ``None`` for an eye without images).
        levels: the levels a hash may pick, in order; repeat a level to make
            it likelier. The default favours healthy eyes, as screening does.
        macular_edema_from: the level from which a hashed eye also gets
            ``Macular Edema - Positive``.

    The hash is SHA-256 of the LocalId: byte 0 picks the right eye's level,
    byte 1 the left eye's, so a given LocalId always grades the same.
    """

    table: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    levels: Sequence[str] = ("None", "None", "None", "Mild", "Mild", "Moderate", "Severe")
    macular_edema_from: str = "Severe"

    def levels_for(self, local_id: str) -> tuple[str | None, str | None]:
        """The DR level of the right and left eye for an order LocalId."""
        if local_id in self.table:
            return self.table[local_id]
        digest = hashlib.sha256(local_id.encode("utf-8")).digest()
        return (
            self.levels[digest[0] % len(self.levels)],
            self.levels[digest[1] % len(self.levels)],
        )

    def grade(self, local_id: str) -> tuple[EyeGrading | None, EyeGrading | None]:
        """The per-eye gradings of an order (``None`` for an eye the table leaves out)."""
        od, os = self.levels_for(local_id)
        return self._eye(od), self._eye(os)

    def _eye(self, level: str | None) -> EyeGrading | None:
        if level is None:
            return None
        findings = [Finding(finding=DR_FINDING, result=level)]
        edema = "None"
        known = level in DR_LEVELS and self.macular_edema_from in DR_LEVELS
        if known and DR_LEVELS.index(level) >= DR_LEVELS.index(self.macular_edema_from):
            edema = "Positive"
        findings.append(Finding(finding=ME_FINDING, result=edema))
        return EyeGrading(gradable=True, findings=findings)


def _result_of(eye: EyeGrading | None, finding: str) -> str | None:
    if eye is None or eye.gradable is False:
        return None
    for f in eye.findings or []:
        if (f.finding or "").lower() == finding.lower():
            return f.result
    return None


def worst_dr_level(od: EyeGrading | None, os: EyeGrading | None) -> str | None:
    """The worst Diabetic Retinopathy level of the two eyes (``None`` if neither says)."""
    found = [r for r in (_result_of(od, DR_FINDING), _result_of(os, DR_FINDING)) if r]
    known = [r for r in found if r in DR_LEVELS]
    if known:
        return max(known, key=DR_LEVELS.index)
    return found[0] if found else None


def dx_codes(od: EyeGrading | None, os: EyeGrading | None) -> list[str]:
    """ICD-10 codes for the DR level of each eye (one code per level, bilateral when both)."""
    by_level: dict[str, set[str]] = {}
    edema: dict[str, bool] = {}
    for side, eye in (("1", od), ("2", os)):
        level = _result_of(eye, DR_FINDING)
        if level not in _DR_ICD10:
            continue
        by_level.setdefault(level, set()).add(side)
        positive = (_result_of(eye, ME_FINDING) or "").lower() == "positive"
        edema[level] = edema.get(level, False) or positive
    codes = []
    for level in sorted(by_level, key=DR_LEVELS.index, reverse=True):
        sides = by_level[level]
        eye_digit = "3" if len(sides) == 2 else next(iter(sides))
        codes.append(f"{_DR_ICD10[level]}{'1' if edema[level] else '9'}{eye_digit}")
    if not codes and worst_dr_level(od, os) == "None":
        codes.append(_NO_DR_ICD10)
    return codes


def _has_pathology(eye: EyeGrading | None) -> bool:
    if eye is None or eye.gradable is False:
        return False
    return any(
        f.result is None or f.result.strip().lower() not in _NO_PATHOLOGY
        for f in eye.findings or []
    )


def _eye_dict(eye: EyeGrading | None) -> dict[str, Any] | None:
    if eye is None:
        return None
    return {
        "Gradable": eye.gradable if eye.gradable is not None else True,
        "MissingEyeReason": eye.missing_eye_reason,
        "UngradableReasons": list(eye.ungradable_reasons or []),
        "Findings": [f.to_dict() for f in eye.findings] if eye.findings else None,
    }


def gradings_for(
    od: EyeGrading | None,
    os: EyeGrading | None,
    *,
    graded_time: str,
    queued_time: str | None,
    provider: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The result's ``Gradings`` (wire names) for per-eye gradings.

    Care plan and urgency follow the worst DR level; an eye without a grading
    is left out, as IRIS omits an eye that had no images.
    """
    worst = worst_dr_level(od, os)
    plan_name, plan_text = _CARE_PLANS.get(worst or "", (None, None))
    if worst is None and any(e is not None and e.gradable is False for e in (od, os)):
        plan_name, plan_text = (
            "Retake images",
            "At least one eye could not be graded; repeat the exam.",
        )
    data: dict[str, Any] = {
        "Notes": [],
        "GradedTime": graded_time,
        "QueuedTime": queued_time,
        "CarePlanName": plan_name,
        "CarePlanDescription": plan_text,
        "Pathology": _has_pathology(od) or _has_pathology(os),
        "Urgent": worst == "Severe",
        "Emergent": worst == "Proliferative",
        "DxCodes": dx_codes(od, os),
    }
    if od is not None:
        data["OD"] = _eye_dict(od)
    if os is not None:
        data["OS"] = _eye_dict(os)
    if provider is not None:
        data["Provider"] = dict(provider)
    return data
