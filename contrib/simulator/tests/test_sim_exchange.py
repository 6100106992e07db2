"""The whole IRIS exchange against the simulator, on mem:// and local://."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from iris_cloud.client import IrisClient
from iris_cloud.errors import Unavailable
from iris_cloud.model import OrderRequest
from iris_cloud.ports import Message
from iris_cloud_simulator import AutoGrader, Simulator
from iris_cloud_simulator.samples import dicom_image, jpeg_image, new_local_id, sample_order
from simhelpers import Reader

IMAGE_FIRST = [
    "OrderCreationReceipt",
    "ImageReceipt",
    "ImageReceipt",
    "ReadyForGradingEvent",
    "GradingReceipt",
    "OrderGradedEvent",
    "ResultsDeliveryReceipt",
]


def types(events: list[Any]) -> list[str]:
    return [e.result_object_type for e in events]


def image_first_order(iris: IrisClient, local_id: str | None = None) -> dict[str, Any]:
    local_id = local_id or new_local_id()
    right = iris.upload_image(jpeg_image(1))
    left = iris.upload_image(jpeg_image(2))
    return sample_order(
        local_id,
        images=[
            right.image(local_id=f"{local_id}-OD", laterality="OD").to_dict(),
            left.image(local_id=f"{local_id}-OS", laterality="OS").to_dict(),
        ],
    )


def upload_exam(iris: IrisClient, request: dict[str, Any]) -> None:
    model = OrderRequest.model_validate(request)
    lid = model.order.local_id
    iris.upload_exam_image(dicom_image(), order=model, laterality="OD", image_local_id=f"{lid}-OD")
    iris.upload_exam_image(jpeg_image(3), order=model, laterality="OS", image_local_id=f"{lid}-OS")


def test_image_first(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    local_id = new_local_id()
    sim = make_simulator(grading=AutoGrader(table={local_id: ("Mild", "None")}))
    request = image_first_order(iris, local_id)
    iris.submit_order(request)
    sim.step()

    seen = events.events()
    assert types(seen) == IMAGE_FIRST
    assert {e.order_local_id for e in seen} == {local_id}
    assert all(e.success is True and e.error_message is None for e in seen)
    iris_ids = {e.iris_order_id for e in seen}
    assert len(iris_ids) == 1 and iris_ids.pop()
    assert [e.image_local_id for e in seen if e.result_object_type == "ImageReceipt"] == [
        f"{local_id}-OD",
        f"{local_id}-OS",
    ]
    patient_ids = {getattr(e, "patient_local_id", None) for e in seen[:-1]}
    assert patient_ids == {request["Patient"]["LocalId"]}
    delivered = seen[-1]
    assert delivered.transmission_status == "Delivered" and delivered.time_delivered

    [result] = results.results()
    assert result.result_code == "F"
    assert result.order is not None and result.order.local_id == local_id
    assert result.order.status == "Complete"
    assert result.patient is not None and result.patient.name is not None
    assert (result.patient.name.first, result.patient.name.last) == ("John", "Doe")
    assert result.image_details is not None and result.image_details.total_count == 2
    assert result.image_details.right_eye_count == 1 and result.image_details.left_eye_count == 1
    assert [i.laterality for i in result.images or []] == ["OD", "OS"]
    grading = result.gradings
    assert grading is not None and grading.od is not None and grading.os is not None
    assert [(f.finding, f.result) for f in grading.od.findings or []] == [
        ("Diabetic Retinopathy", "Mild"),
        ("Macular Edema", "None"),
    ]
    assert grading.os.findings is not None
    assert grading.os.findings[0].result == "None"
    assert grading.dx_codes == ["E113291"]
    assert grading.pathology is True and grading.care_plan_name == "Return in 6 months"
    assert result.results_document is not None
    assert result.results_document.type == "PDF" and result.results_document.encoding == "Base64"
    pdf = result.results_document.decode()
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    assert sim.status(local_id) == "Complete"


def test_order_first(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    sim = make_simulator()
    request = sample_order(new_local_id())
    local_id = request["Order"]["LocalId"]
    iris.submit_order(request)
    sim.step()
    [created] = events.events()
    assert created.result_object_type == "OrderCreationReceipt" and created.success is True
    assert sim.status(local_id) == "AwaitingImages"

    upload_exam(iris, request)
    sim.step()
    seen = events.events()
    assert types(seen) == IMAGE_FIRST[1:]
    assert {e.iris_order_id for e in seen} == {created.iris_order_id}
    assert sorted(e.image_local_id for e in seen if e.result_object_type == "ImageReceipt") == [
        f"{local_id}-OD",
        f"{local_id}-OS",
    ]
    [result] = results.results()
    assert result.order is not None and result.order.local_id == local_id
    suffixes = {i.laterality: (i.file_name or "").rsplit(".", 1)[-1] for i in result.images or []}
    assert suffixes == {"OD": "dcm", "OS": "jpg"}
    expected = AutoGrader().levels_for(local_id)
    grading = result.gradings
    assert grading is not None and grading.od is not None and grading.os is not None
    assert (grading.od.findings or [])[0].result == expected[0]
    assert (grading.os.findings or [])[0].result == expected[1]
    assert result.results_document is not None
    assert result.results_document.decode().startswith(b"%PDF")


def test_order_first_images_before_order(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    sim = make_simulator()
    request = sample_order(new_local_id())
    upload_exam(iris, request)
    sim.step()
    assert events.events() == []
    iris.submit_order(request)
    sim.step()
    assert types(events.events()) == IMAGE_FIRST
    assert len(results.results()) == 1


def test_manual_grading(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    sim = make_simulator(grading="manual")
    request = image_first_order(iris)
    local_id = request["Order"]["LocalId"]
    iris.submit_order(request)
    sim.step()
    assert types(events.events()) == IMAGE_FIRST[:4]
    assert results.results(wait=0.1) == []
    assert sim.status(local_id) == "QueuedForGrading"

    iris.submit_grading(local_id="UNKNOWN-ORDER", od={"Gradable": True})
    iris.submit_grading(
        local_id=local_id,
        od={
            "Gradable": True,
            "Findings": [{"Finding": "Diabetic Retinopathy", "Result": "Moderate"}],
        },
        os={"Gradable": False, "UngradableReasons": ["Media Opacity"]},
    )
    sim.step()
    assert types(events.events()) == IMAGE_FIRST[4:]
    [result] = results.results()
    grading = result.gradings
    assert grading is not None and grading.od is not None and grading.os is not None
    assert (grading.od.findings or [])[0].result == "Moderate"
    assert grading.os.gradable is False and grading.os.ungradable_reasons == ["Media Opacity"]
    assert grading.dx_codes == ["E113391"]
    assert sim.stats().ignored == 1

    # a second grading of a closed order is ignored, as IRIS does
    iris.submit_grading(local_id=local_id, od={"Gradable": True})
    sim.step()
    assert events.events(wait=0.1) == []


def test_cancel(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    sim = make_simulator()
    request = sample_order(new_local_id())
    local_id = request["Order"]["LocalId"]
    iris.submit_order(request)
    sim.step()
    [created] = events.events()
    iris.cancel_order(local_id)
    sim.step()
    [cancelled] = events.events()
    assert cancelled.result_object_type == "OrderCancelled"
    assert cancelled.order_local_id == local_id
    assert cancelled.iris_order_id == created.iris_order_id
    assert sim.status(local_id) == "OrderCancelled"

    upload_exam(iris, request)
    iris.cancel_order(local_id)
    sim.step()
    assert events.events(wait=0.1) == []
    assert results.results(wait=0.1) == []
    assert sim.stats().ignored >= 2


def test_update(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    sim = make_simulator()
    request = sample_order(new_local_id(), first_name="Jon")
    local_id = request["Order"]["LocalId"]
    iris.submit_order(request)
    sim.step()
    assert types(events.events()) == ["OrderCreationReceipt"]

    change = copy.deepcopy(request)
    change["OrderControlCode"] = "XO"
    change["Patient"]["Name"]["First"] = "John"
    iris.update_order(change)
    bad = copy.deepcopy(change)
    bad["Order"]["EvaluationTypes"] = ["Glaucoma"]
    iris.update_order(bad)
    unknown = copy.deepcopy(change)
    unknown["Order"]["LocalId"] = "NO-SUCH-ORDER"
    iris.update_order(unknown)
    sim.step()
    receipts = events.events()
    assert types(receipts) == ["OrderCreationReceipt"] * 3
    by_order = {(e.order_local_id, e.success): e for e in receipts}
    assert (local_id, True) in by_order
    refused = by_order[(local_id, False)]
    assert refused.error_message is not None
    assert "Order.EvaluationTypes" in refused.error_message
    missing = by_order[("NO-SUCH-ORDER", False)]
    assert missing.error_message is not None and "Order.LocalId" in missing.error_message

    upload_exam(iris, change)
    sim.step()
    assert types(events.events()) == IMAGE_FIRST[1:]
    [result] = results.results()
    assert result.patient is not None and result.patient.name is not None
    assert result.patient.name.first == "John"

    # a change of a completed order is ignored
    iris.update_order(change | {"UserNameSubmitting": "someone.else@example.com"})
    sim.step()
    assert events.events(wait=0.1) == []


def test_failed_order_missing_image(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader
) -> None:
    sim = make_simulator()
    local_id = new_local_id()
    request = sample_order(
        local_id,
        images=[
            {
                "LocalId": "img-1",
                "AzureBlobStorage": {"Container": "images", "FileName": "never-uploaded.jpg"},
                "Laterality": "OD",
            }
        ],
    )
    iris.submit_order(request, check_images=False)
    sim.step()
    [failed] = events.events()
    assert failed.result_object_type == "OrderCreationReceipt"
    assert failed.success is False and failed.order_local_id == local_id
    assert failed.iris_order_id == 0
    message = failed.error_message or ""
    assert "Camera.Images[0].AzureBlobStorage.FileName" in message
    assert "never-uploaded.jpg" in message
    assert "John" not in message and "Doe" not in message
    assert sim.status(local_id) is None


def test_invalid_bodies(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader
) -> None:
    sim = make_simulator()
    guid = iris.client_guid
    # parses, but breaks the sender's rules: answered, completed
    no_patient = sample_order("NO-PATIENT")
    del no_patient["Patient"]
    iris.orders.send(Message(body=OrderRequest.model_validate(no_patient).to_json().encode()))
    # does not parse (no Version, bad Dob): failed receipt and dead letter
    iris.orders.send(
        b'{"ClientGuid": "%s", "OrderControlCode": "NW", "Order": {"LocalId": "POISON-1"},'
        b' "Patient": {"LocalId": "P1", "Dob": "not a date"}}' % guid.encode()
    )
    # not even JSON; and no ClientGuid: dead letters only
    iris.orders.send(b"this is not JSON")
    iris.orders.send(b'{"Version": "2.3.1", "Order": {"LocalId": "NO-GUID"}}')
    sim.step()

    seen = {e.order_local_id: e for e in events.events()}
    assert set(seen) == {"NO-PATIENT", "POISON-1"}
    assert seen["NO-PATIENT"].success is False
    assert "Patient" in (seen["NO-PATIENT"].error_message or "")
    poison = seen["POISON-1"].error_message or ""
    assert seen["POISON-1"].success is False
    assert "Version" in poison and "Patient.Dob" in poison and "not a date" not in poison

    dead = iris.orders.receive_dead_letters(max_messages=10, wait=0.2)
    assert len(dead) == 3
    assert all((d.dead_letter_reason or "").startswith("invalid message") for d in dead)
    assert any("Version" in (d.dead_letter_reason or "") for d in dead)
    assert sim.stats().poison == 3


def test_duplicates(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    sim = make_simulator()
    request = image_first_order(iris)
    sent = iris.submit_order(request)
    model = iris.validate_order(request)
    from iris_cloud.client import order_message

    # the same message again (at-least-once redelivery), then the same order with a new id
    iris.orders.send(order_message(model, sent.transaction_id))
    iris.submit_order(request)
    sim.step()
    assert types(events.events()) == IMAGE_FIRST
    assert len(results.results()) == 1
    assert sim.stats().duplicates == 2


def test_resend(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    sim = make_simulator()
    request = image_first_order(iris)
    local_id = request["Order"]["LocalId"]
    iris.submit_order(request)
    sim.step()
    events.events()
    [first] = results.results()
    iris.resend(local_id)
    sim.step()
    assert types(events.events()) == ["ResultsDeliveryReceipt"]
    [again] = results.results()
    assert again.result_code == "R"
    assert again.transaction_id != first.transaction_id
    assert again.gradings == first.gradings


def test_restart_continues(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    first = make_simulator(grading="manual")
    order_first = sample_order(new_local_id())
    image_first = image_first_order(iris)
    iris.submit_order(order_first)
    iris.submit_order(image_first)
    first.step()
    before = events.events()
    created = {
        e.order_local_id: e.iris_order_id
        for e in before
        if e.result_object_type == "OrderCreationReceipt"
    }
    first.close()

    # while the simulator is down: images arrive, a grading is submitted
    upload_exam(iris, order_first)
    iris.submit_grading(
        local_id=image_first["Order"]["LocalId"],
        od={"Gradable": True, "Findings": [{"Finding": "Diabetic Retinopathy", "Result": "None"}]},
        os={"Gradable": True, "Findings": [{"Finding": "Diabetic Retinopathy", "Result": "None"}]},
    )
    second = make_simulator(grading="manual")
    second.step()
    after = events.events()
    by_order: dict[str, list[str]] = {}
    for e in after:
        by_order.setdefault(e.order_local_id or "", []).append(e.result_object_type)
        assert e.iris_order_id == created[e.order_local_id]
    assert by_order[order_first["Order"]["LocalId"]] == IMAGE_FIRST[1:4]
    assert by_order[image_first["Order"]["LocalId"]] == IMAGE_FIRST[4:]
    assert [r.order.local_id for r in results.results() if r.order] == [
        image_first["Order"]["LocalId"]
    ]
    # a new simulator does not repeat what the first one sent
    assert "OrderCreationReceipt" not in types(after)


def test_outbox_survives_a_failed_send(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    first = make_simulator()
    broker = first._outbound["events"]
    original = broker.send

    def down(*args: Any, **kwargs: Any) -> list[str]:
        raise Unavailable("events queue unreachable")

    broker.send = down  # type: ignore[method-assign]
    iris.submit_order(image_first_order(iris))
    first.step()
    assert events.events(wait=0.1) == []
    assert first.stats().send_errors >= 1
    broker.send = original  # type: ignore[method-assign]
    first.close()

    second = make_simulator()
    second.step()
    assert types(events.events()) == IMAGE_FIRST
    assert len(results.results()) == 1


def test_large_result_goes_through_the_claim_check(
    make_simulator: Callable[..., Simulator], integrator: Any, events: Reader
) -> None:
    from iris_cloud.config import Profile

    data = integrator.model_dump(mode="python")
    url = integrator.results.url
    small = Profile.from_dict(
        {
            "client_guid": integrator.client_guid,
            **{
                role: {"url": getattr(integrator, role).url, **getattr(integrator, role).options}
                for role in integrator.roles()
            },
            "results": {"url": url, "max_message_bytes": 2048},
            "consumer": data["consumer"],
        }
    )
    sim = make_simulator(small)
    with IrisClient(small) as client:
        client.submit_order(image_first_order(client))
    sim.step()
    assert types(events.events()) == IMAGE_FIRST
    broker = small.open_broker("results")
    try:
        [msg] = broker.receive(max_messages=5, wait=0.5)
        assert len(msg.body) > 2048
        broker.complete(msg)
    finally:
        broker.close()
    stored = list(small.open_store("claim_check").list())
    assert stored, "the result should have been offloaded to the claim-check store"


def test_order_first_reads_identifiers_from_exif_and_dicom(
    make_simulator: Callable[..., Simulator], iris: IrisClient, events: Reader, results: Reader
) -> None:
    from iris_cloud.workflows import ExamIdentifiers, tag_image

    sim = make_simulator()
    request = OrderRequest.model_validate(sample_order(new_local_id()))
    iris.submit_order(request)
    sim.step()
    assert types(events.events()) == ["OrderCreationReceipt"]
    # a camera writing the identifiers into the files only: no object metadata
    for laterality, image, name in (
        ("OD", dicom_image(), "cam-1.dcm"),
        ("OS", jpeg_image(5), "cam-2.jpg"),
    ):
        ids = ExamIdentifiers.from_order(request, laterality=laterality)
        tagged, content_type = tag_image(image, ids)
        iris.images.put(name, tagged, content_type=content_type)
    # an image naming another patient for the same order is not attached
    stranger = ExamIdentifiers(order_local_id=request.order.local_id, patient_local_id="OTHER")
    iris.images.put("stranger.jpg", tag_image(jpeg_image(6), stranger)[0])
    sim.step()
    seen = events.events()
    assert types(seen) == IMAGE_FIRST[1:]
    assert sorted(e.image_local_id for e in seen if e.result_object_type == "ImageReceipt") == [
        "cam-1.dcm",
        "cam-2.jpg",
    ]
    [result] = results.results()
    assert sorted(i.laterality or "" for i in result.images or []) == ["OD", "OS"]
    assert sim.stats().ignored == 1
