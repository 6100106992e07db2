"""OrderResult (results queue) and its members."""

from __future__ import annotations

import base64
import binascii

from pydantic import Field

from iris_cloud.errors import FieldError, ValidationError
from iris_cloud.model.common import (
    MODEL_VERSION,
    Cpt,
    DateTimeValue,
    DateValue,
    DocumentEncoding,
    DocumentEncodingCode,
    DocumentTypeCode,
    EvaluationTypeCode,
    GenderCode,
    HealthPlan,
    ImageContextCode,
    IrisModel,
    LateralityCode,
    Name,
    Note,
    OptionalGuid,
    OptionalInt,
    OrderStatusCode,
    PersonGender,
    Provider,
    ResultCodeValue,
    Site,
    VersionString,
    require,
)
from iris_cloud.model.grading import EyeGrading
from iris_cloud.model.order import CameraInfo

__all__ = [
    "CameraOperator",
    "EyeSideGrading",
    "Gradings",
    "ImageDetails",
    "OrderResult",
    "RequiredResult",
    "ResultImage",
    "ResultOrder",
    "ResultPatient",
    "ResultsDocument",
]


class ResultsDocument(IrisModel):
    """The report: a PDF, HTML page or HL7 ORU message, usually Base64-encoded."""

    type: DocumentTypeCode | None = None
    encoding: DocumentEncodingCode | None = None
    content: str | None = Field(default=None, repr=False)

    def decode(self) -> bytes:
        """The document's bytes, decoded according to ``Encoding``.

        ``Base64`` is decoded strictly; ``ASCII`` (or no encoding) is the text
        itself. Raises :class:`iris_cloud.errors.ValidationError` when the
        content does not match its encoding or the encoding is unknown.
        """
        content = self.content or ""
        encoding = (self.encoding or DocumentEncoding.ASCII).lower()
        if encoding == "base64":
            try:
                return base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise _content_error("base64_decode", "Content is not valid Base64") from None
        if encoding == "ascii":
            try:
                return content.encode("ascii")
            except UnicodeEncodeError:
                raise _content_error("ascii_encode", "Content is not ASCII text") from None
        raise ValidationError(
            "cannot decode ResultsDocument",
            [FieldError("ResultsDocument.Encoding", "encoding_unknown", "unsupported encoding")],
        )


def _content_error(kind: str, message: str) -> ValidationError:
    return ValidationError(
        "cannot decode ResultsDocument", [FieldError("ResultsDocument.Content", kind, message)]
    )


class ImageDetails(IrisModel):
    """How many images the order had, per eye and kind."""

    total_count: OptionalInt | None = None
    right_eye_count: OptionalInt | None = None
    right_eye_original_count: OptionalInt | None = None
    right_eye_enhanced_count: OptionalInt | None = None
    left_eye_count: OptionalInt | None = None
    left_eye_original_count: OptionalInt | None = None
    left_eye_enhanced_count: OptionalInt | None = None
    preferred: bool | None = None
    single_eye_only: bool | None = None


class ResultImage(IrisModel):
    """An image as reported in a result, with the camera that took it."""

    local_id: str | None = None
    taken: DateTimeValue | None = None
    received: DateTimeValue | None = None
    file_name: str | None = None
    laterality: LateralityCode | None = None
    image_context: ImageContextCode | None = None
    parent_local_id: str | None = None
    group_id: OptionalInt | None = None
    group_ordinal: OptionalInt | None = None
    camera: CameraInfo | None = None


class ResultOrder(IrisModel):
    """The order as reported in a result.

    The reference calls the exam time ``ServicedTime``, the documented example
    ``ServiceDate``; both are kept as given, :attr:`serviced` reads either.
    """

    patient_order_id: OptionalInt | None = None
    status: OrderStatusCode | None = None
    evaluation_types: list[EvaluationTypeCode] | None = None
    scheduled_time: DateTimeValue | None = None
    created_time: DateTimeValue | None = None
    serviced_time: DateTimeValue | None = None
    service_date: DateTimeValue | None = None
    local_id: str | None = None
    department_id: str | None = None
    encounter_number: str | None = Field(default=None, repr=False)
    study_instance_unique_id: str | None = None
    orderable_identifier: str | None = None
    additional_info: str | None = Field(default=None, repr=False)
    state: str | None = None
    single_eye_only: bool | None = None
    missing_eye_reason: str | None = None
    expedite: bool | None = None

    @property
    def serviced(self) -> DateTimeValue | None:
        """When the exam took place, from ``ServicedTime`` or ``ServiceDate``."""
        return self.serviced_time if self.serviced_time is not None else self.service_date


class ResultPatient(IrisModel):
    """The patient as reported in a result. Repr hides identifying fields (PHI)."""

    patient_id: OptionalInt | None = None
    local_id: str | None = Field(default=None, repr=False)
    name: Name | None = Field(default=None, repr=False)
    dob: DateValue | None = Field(default=None, repr=False)
    gender: GenderCode | None = None
    genders: list[PersonGender] | None = None
    phone: str | None = Field(default=None, repr=False)


class EyeSideGrading(EyeGrading):
    """The grading of one eye in a result. Check ``gradable`` before ``findings``."""


class Gradings(IrisModel):
    """The grader's verdict: per-eye gradings, care plan, flags and diagnosis codes."""

    notes: list[Note] | None = None
    graded_time: DateTimeValue | None = None
    queued_time: DateTimeValue | None = None
    care_plan_name: str | None = None
    care_plan_description: str | None = None
    pathology: bool | None = None
    urgent: bool | None = None
    emergent: bool | None = None
    od: EyeSideGrading | None = Field(default=None, validation_alias="OD", serialization_alias="OD")
    os: EyeSideGrading | None = Field(default=None, validation_alias="OS", serialization_alias="OS")
    ou: EyeSideGrading | None = Field(default=None, validation_alias="OU", serialization_alias="OU")
    dx_codes: list[str] | None = None
    provider: Provider | None = None


class CameraOperator(IrisModel):
    """Who operated the camera, as reported in a result."""

    user_name: str | None = None
    name: Name | None = None
    notes: list[Note] | None = None


class OrderResult(IrisModel):
    """A message on the results queue: the outcome of a graded order.

    Repr hides the patient's identifiers and name, the document, free texts
    (notes, ``AdditionalInfo``, ``ErrorMessage``) and the encounter number.
    """

    schema_uri: str | None = Field(
        default=None, validation_alias="$schema", serialization_alias="$schema"
    )
    version: VersionString = Field(examples=[MODEL_VERSION])
    timestamp: DateTimeValue | None = None
    transaction_id: OptionalGuid | None = None
    result_code: ResultCodeValue | None = None
    site: Site | None = None
    results_document: ResultsDocument | None = None
    image_details: ImageDetails | None = None
    images: list[ResultImage] | None = None
    order: ResultOrder | None = None
    patient: ResultPatient | None = None
    ordering_provider: Provider | None = None
    referring_provider: Provider | None = None
    gradings: Gradings | None = None
    camera_operator: CameraOperator | None = None
    health_plan: HealthPlan | None = None
    cpt: Cpt | None = None
    success: bool | None = None
    error_message: str | None = Field(default=None, repr=False)
    result_object_type: str | None = None

    @property
    def require(self) -> RequiredResult:
        """What IRIS always sends on a result, typed without ``None``.

        ``result.require.order_local_id`` is a ``str``; an absent field raises
        :class:`iris_cloud.errors.MissingField` naming its wire path.
        """
        return RequiredResult(self)


class RequiredResult:
    """The fields IRIS always sends on an OrderResult (``result.require``).

    Each attribute reads the result's field and raises
    :class:`iris_cloud.errors.MissingField` (a ``ValidationError``) with the
    field's wire path where it is absent or null, so a handler needs no
    ``assert`` or ``if ... is None`` for them.
    """

    __slots__ = ("_result",)

    def __init__(self, result: OrderResult) -> None:
        self._result = result

    @property
    def order(self) -> ResultOrder:
        """``Order``."""
        return require(self._result.order, "Order", "OrderResult")

    @property
    def order_local_id(self) -> str:
        """``Order.LocalId``: the key of the order this result is for."""
        return require(self.order.local_id, "Order.LocalId", "OrderResult")

    @property
    def result_code(self) -> ResultCodeValue:
        """``ResultCode``: final, preliminary, correction, addendum or resend."""
        return require(self._result.result_code, "ResultCode", "OrderResult")

    @property
    def site(self) -> Site:
        """``Site``."""
        return require(self._result.site, "Site", "OrderResult")

    @property
    def patient(self) -> ResultPatient:
        """``Patient``."""
        return require(self._result.patient, "Patient", "OrderResult")

    @property
    def gradings(self) -> Gradings:
        """``Gradings``: the grader's verdict."""
        return require(self._result.gradings, "Gradings", "OrderResult")

    @property
    def results_document(self) -> ResultsDocument:
        """``ResultsDocument``: the report (``.decode()`` gives its bytes)."""
        return require(self._result.results_document, "ResultsDocument", "OrderResult")
