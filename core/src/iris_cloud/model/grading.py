"""GradingSubmission (test environments only): a grader's findings for an order."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from iris_cloud.model.common import (
    MODEL_VERSION,
    Finding,
    Guid,
    IrisModel,
    Site,
    VersionString,
)

__all__ = ["EyeGrading", "GradingSubmission"]


class EyeGrading(IrisModel):
    """The grading of one eye.

    An ungradable eye (``Gradable`` false) has no findings and at most one
    ungradable reason; an eye without images gives a ``MissingEyeReason``.
    Absent or null ``Findings`` on a gradable eye means no pathology.
    """

    gradable: bool | None = None
    missing_eye_reason: str | None = None
    ungradable_reasons: list[str] | None = None
    findings: list[Finding] | None = None


class GradingSubmission(IrisModel):
    """A grading for an order (by the order's ``LocalId``), sent in test environments."""

    schema_uri: str | None = Field(
        default=None, validation_alias="$schema", serialization_alias="$schema"
    )
    version: VersionString = Field(examples=[MODEL_VERSION])
    client_guid: Guid
    local_id: Annotated[str, StringConstraints(min_length=1)]
    site: Site | None = None
    od: EyeGrading | None = Field(default=None, validation_alias="OD", serialization_alias="OD")
    os: EyeGrading | None = Field(default=None, validation_alias="OS", serialization_alias="OS")
