"""OrderRequest (orders queue): new (NW), change (XO), cancel (CA), ResendResult."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, StringConstraints

from iris_cloud.model.common import (
    MODEL_VERSION,
    Address,
    CptCode,
    DateTimeValue,
    DateValue,
    EvaluationTypeCode,
    GenderCode,
    Guid,
    HealthPlan,
    ImageContextCode,
    IrisModel,
    LateralityCode,
    MaritalStatusCode,
    Name,
    OptionalInt,
    OrderControlCodeValue,
    PersonGender,
    Provider,
    Site,
    VersionString,
    require,
)

__all__ = [
    "AzureBlobStorage",
    "Camera",
    "CameraInfo",
    "Image",
    "Order",
    "OrderRequest",
    "Patient",
    "RequiredOrderRequest",
]

_LocalId = Annotated[str, StringConstraints(min_length=1)]


class AzureBlobStorage(IrisModel):
    """Where an Image First image was uploaded: container and unique file name."""

    container: str | None = None
    file_name: str | None = None


class Image(IrisModel):
    """An image listed in an OrderRequest.

    The Go library names the taken time ``DateTimeOffset``; it is read as
    ``Taken`` and written back as ``Taken``.
    """

    local_id: str | None = None
    taken: DateTimeValue | None = Field(
        default=None,
        serialization_alias="Taken",
        validation_alias=AliasChoices("Taken", "DateTimeOffset"),
    )
    azure_blob_storage: AzureBlobStorage | None = None
    laterality: LateralityCode | None = None
    image_context: ImageContextCode | None = None
    parent_local_id: str | None = None
    group_id: OptionalInt | None = None
    group_ordinal: OptionalInt | None = None


class CameraInfo(IrisModel):
    """A camera as described in results (no image list)."""

    local_id: str | None = None
    location: str | None = None
    ip_address: str | None = Field(
        default=None, validation_alias="IPAddress", serialization_alias="IPAddress"
    )
    mac_address: str | None = Field(
        default=None, validation_alias="MACAddress", serialization_alias="MACAddress"
    )
    serial_number: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    software_version: str | None = None


class Camera(CameraInfo):
    """The camera of an OrderRequest and the images it took (TypeScript adds Name)."""

    name: str | None = None
    images: list[Image] | None = None


class Order(IrisModel):
    """The order part of an OrderRequest. ``LocalId`` is the key of every later event.

    ``CPTCode`` is documented as a {Code, Description} object; the examples send a
    bare string. Both are kept as given.
    """

    evaluation_types: list[EvaluationTypeCode] | None = None
    scheduled_time: DateTimeValue | None = None
    local_id: _LocalId
    department_id: str | None = None
    encounter_number: str | None = None
    study_instance_unique_id: str | None = None
    orderable_identifier: str | None = None
    cpt_code: CptCode | None = Field(
        default=None, validation_alias="CPTCode", serialization_alias="CPTCode"
    )
    additional_info: str | None = None
    state: str | None = None
    single_eye_only: bool | None = None
    missing_eye_reason: str | None = None
    urgent: bool | None = None
    created_time: DateTimeValue | None = None


class Patient(IrisModel):
    """The patient of an OrderRequest. Repr hides identifying fields (PHI)."""

    local_id: _LocalId = Field(repr=False)
    name: Name | None = Field(default=None, repr=False)
    dob: DateValue | None = Field(default=None, repr=False)
    gender: GenderCode | None = None
    genders: list[PersonGender] | None = None
    race: str | None = None
    ethnicity: str | None = None
    primary_language: str | None = None
    marital_status: MaritalStatusCode | None = None
    email: str | None = Field(default=None, repr=False)
    phone: str | None = Field(default=None, repr=False)
    additional_info: str | None = Field(default=None, repr=False)
    address: Address | None = Field(default=None, repr=False)
    dx_code: str | None = None


class OrderRequest(IrisModel):
    """A message on the orders queue: create, change, cancel or resend an order.

    ``Version``, ``ClientGuid`` (a GUID), ``OrderControlCode`` and
    ``Order.LocalId`` are required; for ``CA`` / ``ResendResult`` nothing else is.
    """

    schema_uri: str | None = Field(
        default=None, validation_alias="$schema", serialization_alias="$schema"
    )
    version: VersionString = Field(examples=[MODEL_VERSION])
    client_guid: Guid
    user_name_submitting: str | None = None
    order_control_code: OrderControlCodeValue
    site: Site | None = None
    camera: Camera | None = None
    order: Order
    patient: Patient | None = None
    ordering_provider: Provider | None = None
    referring_provider: Provider | None = None
    camera_operator: Provider | None = None
    camera_operator_user_name: str | None = None
    health_plan: HealthPlan | None = None

    @property
    def require(self) -> RequiredOrderRequest:
        """What a new (NW) or changed (XO) order always carries, typed without ``None``."""
        return RequiredOrderRequest(self)


class RequiredOrderRequest:
    """The fields a new (NW) or changed (XO) OrderRequest must carry (``request.require``).

    Each attribute raises :class:`iris_cloud.errors.MissingField` with the
    field's wire path where it is absent or null (a cancel or resend carries
    neither).
    """

    __slots__ = ("_request",)

    def __init__(self, request: OrderRequest) -> None:
        self._request = request

    @property
    def site(self) -> Site:
        """``Site``."""
        return require(self._request.site, "Site", "OrderRequest")

    @property
    def patient(self) -> Patient:
        """``Patient``."""
        return require(self._request.patient, "Patient", "OrderRequest")
