# pyright: strict
"""What the docs tell users to write: it must type-check with zero errors."""

from __future__ import annotations

from datetime import UTC, datetime

from iris_cloud.model import (
    Address,
    AzureBlobStorage,
    Camera,
    CameraInfo,
    EvaluationType,
    EyeGrading,
    Finding,
    Gender,
    GenderContext,
    GradingSubmission,
    Image,
    ImageReceipt,
    Laterality,
    Name,
    Order,
    OrderControlCode,
    OrderRequest,
    OrderResult,
    Patient,
    PersonGender,
    Provider,
    ResultOrder,
    Site,
    parse_event,
    require,
)

request = OrderRequest(
    schema_uri="https://example.org/order.schema.json",
    version="2.3.1",
    client_guid="63E3C9EF-66AC-4154-B0C2-494515EB99A7",
    order_control_code=OrderControlCode.NEW,
    site=Site(local_id="clinic", address=Address(street1="1 Main St", postal_code="98101")),
    camera=Camera(
        ip_address="10.0.0.9",
        mac_address="00:11:22:33:44:55",
        images=[
            Image(
                local_id="1",
                taken=datetime(2024, 5, 1, tzinfo=UTC),
                laterality=Laterality.OD,
                azure_blob_storage=AzureBlobStorage(container="images", file_name="od.jpg"),
            )
        ],
    ),
    order=Order(local_id="ORD-1", evaluation_types=[EvaluationType.DR], cpt_code="92250"),
    patient=Patient(
        local_id="MRN-1",
        name=Name(first="Ada", last="Lovelace"),
        genders=[PersonGender(context=GenderContext.BIRTH_GENDER, gender=Gender.FEMALE)],
    ),
    ordering_provider=Provider(npi="1234567890"),
)
grading = GradingSubmission(
    version="2.3.1",
    client_guid="63E3C9EF-66AC-4154-B0C2-494515EB99A7",
    local_id="ORD-1",
    od=EyeGrading(gradable=True, findings=[Finding(finding="Diabetic Retinopathy", result="Mild")]),
    os=EyeGrading(gradable=False, ungradable_reasons=["Media Opacity"]),
)
camera = CameraInfo(ip_address="10.0.0.9")

result = OrderResult.from_json(b'{"Version": "2.3.1"}')
local_id: str = result.require.order_local_id
order: ResultOrder = require(result.order, "Order", "OrderResult")
document: bytes = result.require.results_document.decode()

event = parse_event(b'{"ResultObjectType": "ImageReceipt", "Version": "2.3.1"}')
if isinstance(event, ImageReceipt):
    image_id: int = event.require.iris_image_id
    patient_local_id: str = event.require.patient_local_id
order_local_id: str = event.require.order_local_id
