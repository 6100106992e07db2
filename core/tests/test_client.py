"""IrisClient and AsyncIrisClient on mem:// and local://: validation, ids, Image First
checks, receipts, gradings.

Each test runs on both clients (``twin``): the async one behind a blocking
facade that awaits its methods on an event loop (:class:`BlockingClient`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from iris_cloud.aio import AsyncIrisClient
from iris_cloud.client import IrisClient
from iris_cloud.config import Profile
from iris_cloud.errors import AlreadyExists, ConfigurationError, ValidationError
from iris_cloud.model import GradingSubmission, OrderRequest, parse_message
from iris_cloud.ports import Message, MessageBroker
from iris_cloud.testing.blocking import BlockingBroker, BlockingClient, LoopThread
from iris_cloud.workflows import read_exam_identifiers
from wfhelpers import CLIENT_GUID, PROVIDERS, jpeg_bytes, make_profile, new_order, profile_dict


@pytest.fixture(params=PROVIDERS)
def profile(request: pytest.FixtureRequest, tmp_path: Path) -> Profile:
    return make_profile(request.param, tmp_path)


class Twin:
    """The sync client, or the async one behind a blocking facade."""

    def __init__(self, kind: str, loop: LoopThread) -> None:
        self.kind = kind
        self.loop = loop

    def client(self, profile: Profile | None = None, **kwargs: Any) -> Any:
        if self.kind == "sync":
            return IrisClient(profile, **kwargs)
        ports = {k: v.port if isinstance(v, BlockingBroker) else v for k, v in kwargs.items()}
        return BlockingClient(AsyncIrisClient(profile, **ports), self.loop)

    def open_broker(self, profile: Profile, role: str) -> MessageBroker:
        if self.kind == "sync":
            return profile.open_broker(role)
        return BlockingBroker(self.loop.run(profile.open_async_broker(role)), self.loop)


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest, loop_thread: LoopThread) -> Twin:
    return Twin(request.param, loop_thread)


def drain(profile: Profile, role: str) -> list[Message]:
    got: list[Message] = []
    with profile.open_broker(role) as broker:
        while batch := broker.receive(10, wait=0.2):
            for m in batch:
                broker.complete(m)
            got.extend(batch)
    return got


def paths(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [e.path for e in exc.value.errors]


def test_submit_sets_ids_and_properties(twin: Twin, profile: Profile) -> None:
    with twin.client(profile) as iris:
        sent = iris.submit_order(new_order("ORD-1"), transaction_id="tx-fixed-1")
    assert sent.message_id == sent.transaction_id == "tx-fixed-1"
    assert sent.correlation_id == "ORD-1" and sent.control_code == "NW"
    [msg] = drain(profile, "orders")
    assert msg.message_id == "tx-fixed-1"
    assert msg.correlation_id == "ORD-1"
    assert msg.properties["OrderControlCode"] == "NW"
    assert msg.properties["TransactionId"] == "tx-fixed-1"
    order = parse_message(msg.body)
    assert isinstance(order, OrderRequest)
    assert order.order.local_id == "ORD-1" and order.client_guid == CLIENT_GUID


def test_generated_transaction_ids_differ(twin: Twin, profile: Profile) -> None:
    with twin.client(profile) as iris:
        a = iris.submit_order(new_order("A"))
        b = iris.submit_order(new_order("B"))
    assert a.message_id != b.message_id
    assert len(drain(profile, "orders")) == 2


def test_client_guid_filled_from_profile(twin: Twin, profile: Profile) -> None:
    order = new_order("G")
    del order["ClientGuid"]
    with twin.client(profile) as iris:
        iris.submit_order(order)
    [msg] = drain(profile, "orders")
    assert json.loads(msg.body)["ClientGuid"] == CLIENT_GUID


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda o: o["Patient"].pop("Dob"), "Patient.Dob"),
        (lambda o: o.pop("Site"), "Site.LocalId"),
        (lambda o: o["Order"].__setitem__("EvaluationTypes", []), "Order.EvaluationTypes"),
        (lambda o: o["Patient"].__setitem__("Genders", None), "Patient.Genders"),
        (lambda o: o.__setitem__("ClientGuid", "nope"), "ClientGuid"),
        (lambda o: o["Order"].pop("LocalId"), "Order.LocalId"),
    ],
)
def test_invalid_order_is_refused_before_sending(
    twin: Twin, profile: Profile, mutate: Any, expected: str
) -> None:
    order = new_order()
    mutate(order)
    with twin.client(profile) as iris, pytest.raises(ValidationError) as exc:
        iris.submit_order(order)
    assert expected in paths(exc)
    assert drain(profile, "orders") == []


def test_submit_refuses_other_control_codes(twin: Twin, profile: Profile) -> None:
    order = new_order()
    order["OrderControlCode"] = "XO"
    with twin.client(profile) as iris:
        with pytest.raises(ValidationError, match="use send_order"):
            iris.submit_order(order)
        assert iris.update_order(order).control_code == "XO"
        assert iris.send_order(order).control_code == "XO"


def test_unknown_codes_warn_or_refuse_when_strict(
    twin: Twin, profile: Profile, caplog: pytest.LogCaptureFixture
) -> None:
    order = new_order()
    order["Order"]["EvaluationTypes"] = ["DR", "BRANDNEW"]
    with caplog.at_level(logging.WARNING, "iris_cloud.client"), twin.client(profile) as iris:
        iris.submit_order(order)
    assert "Order.EvaluationTypes[1]" in caplog.text
    with twin.client(profile, strict=True) as iris, pytest.raises(ValidationError) as exc:
        iris.submit_order(order)
    assert paths(exc) == ["Order.EvaluationTypes[1]"]


def test_cancel_and_resend_send_minimal_requests(twin: Twin, profile: Profile) -> None:
    with twin.client(profile) as iris:
        iris.cancel_order("ORD-9", site_local_id="PC1234")
        iris.resend("ORD-9")
    cancel, resend = (json.loads(m.body) for m in drain(profile, "orders"))
    assert cancel == {
        "Version": "2.3.1",
        "ClientGuid": CLIENT_GUID,
        "OrderControlCode": "CA",
        "Order": {"LocalId": "ORD-9"},
        "Site": {"LocalId": "PC1234"},
    }
    assert resend["OrderControlCode"] == "ResendResult"
    assert "Site" not in resend


def test_missing_image_is_refused_naming_it(twin: Twin, profile: Profile) -> None:
    with twin.client(profile) as iris:
        container = iris.images.container
        order = new_order(
            images=[
                {
                    "LocalId": "1",
                    "Laterality": "OD",
                    "AzureBlobStorage": {"Container": container, "FileName": "MISSING-1.jpg"},
                }
            ]
        )
        with pytest.raises(ValidationError) as exc:
            iris.submit_order(order)
    assert paths(exc) == ["Camera.Images[0].AzureBlobStorage.FileName"]
    assert "MISSING-1.jpg" in str(exc.value) and "does not exist" in str(exc.value)
    assert drain(profile, "orders") == []


def test_image_in_another_container_is_refused(twin: Twin, profile: Profile) -> None:
    order = new_order(
        images=[{"AzureBlobStorage": {"Container": "elsewhere", "FileName": "x.jpg"}}]
    )
    with (
        twin.client(profile) as iris,
        pytest.raises(ValidationError, match="container 'elsewhere'"),
    ):
        iris.submit_order(order)


def test_upload_then_submit(twin: Twin, profile: Profile, tmp_path: Path) -> None:
    path = tmp_path / "eye.jpg"
    path.write_bytes(jpeg_bytes())
    with twin.client(profile) as iris:
        ref = iris.upload_image(path)
        assert ref.file_name.endswith(".jpg") and ref.content_type == "image/jpeg"
        ref2 = iris.upload_image(jpeg_bytes("green"))
        assert ref2.file_name != ref.file_name
        images = [
            ref.image(local_id="1", laterality="OD").to_dict(),
            ref2.image(local_id="2", laterality="OS").to_dict(),
        ]
        iris.submit_order(new_order(images=images))
        assert iris.images.get(ref.file_name) == path.read_bytes()
        with pytest.raises(AlreadyExists):
            iris.upload_image(b"\xff\xd8\xff again", name=ref.file_name)
    [msg] = drain(profile, "orders")
    sent = json.loads(msg.body)["Camera"]["Images"]
    assert sent[0]["AzureBlobStorage"] == {"Container": ref.container, "FileName": ref.file_name}


def test_upload_refuses_what_is_not_an_image(twin: Twin, profile: Profile, tmp_path: Path) -> None:
    with twin.client(profile) as iris:
        with pytest.raises(TypeError, match="path, bytes or a binary stream, not OrderRequest"):
            iris.upload_image(OrderRequest.model_validate(new_order()))  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="JPEG, PNG, TIFF or DICOM"):
            iris.upload_image(b"not an image")
        # A .jpg name does not make text a JPEG: the content decides.
        fake = tmp_path / "eye.jpg"
        fake.write_bytes(b"not an image")
        with pytest.raises(ValidationError, match="force=True"):
            iris.upload_image(fake)
        assert list(iris.images.list()) == []  # nothing was stored
        for image in (b"II*\x00" + b"0" * 10, b"\0" * 128 + b"DICM" + b"0" * 10):
            assert iris.upload_image(image).content_type in ("image/tiff", "application/dicom")
        forced = iris.upload_image(b"not an image", force=True)
        assert forced.content_type == "application/octet-stream"


def test_upload_from_stream_with_name(twin: Twin, profile: Profile, tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    with twin.client(profile) as iris, path.open("rb") as fh:
        ref = iris.upload_image(fh, name="fixed-name.png")
        assert ref.file_name == "fixed-name.png" and ref.content_type == "image/png"
        assert iris.images.get("fixed-name.png") == path.read_bytes()


@pytest.mark.parametrize("kind", PROVIDERS)
def test_write_only_store_uses_receipts(twin: Twin, kind: str, tmp_path: Path) -> None:
    data = profile_dict(kind, tmp_path)
    images_url = data["images"]
    data["images"] = {"url": images_url, "access": "w"}
    profile = Profile.from_dict(data)
    receipts = tmp_path / "receipts.sqlite3"
    with twin.client(profile, receipts=str(receipts)) as iris:
        assert not iris.images.capabilities.can_read
        ref = iris.upload_image(jpeg_bytes())
        iris.submit_order(new_order("R-1", images=[ref.image(local_id="1").to_dict()]))
        other = {"AzureBlobStorage": {"Container": ref.container, "FileName": "not-mine.jpg"}}
        with pytest.raises(
            ValidationError, match=r"not-mine\.jpg' was not uploaded by this client"
        ):
            iris.submit_order(new_order("R-2", images=[other]))
    # A later process (new client, same receipts file) may submit the order.
    with twin.client(profile, receipts=str(receipts)) as later:
        later.submit_order(new_order("R-3", images=[ref.image(local_id="1").to_dict()]))
    # Without the receipts file the same reference cannot be vouched for.
    with twin.client(profile) as fresh, pytest.raises(ValidationError):
        fresh.submit_order(new_order("R-4", images=[ref.image(local_id="1").to_dict()]))
    assert [m.correlation_id for m in drain(profile, "orders")] == ["R-1", "R-3"]


def test_image_check_can_be_disabled(twin: Twin, profile: Profile) -> None:
    order = new_order(images=[{"AzureBlobStorage": {"FileName": "ghost.jpg"}}])
    with twin.client(profile, check_images=False) as iris:
        iris.submit_order(order)
    with twin.client(profile) as iris:
        iris.submit_order(new_order("B", images=order["Camera"]["Images"]), check_images=False)
    assert len(drain(profile, "orders")) == 2


def test_upload_exam_image_tags_image_and_metadata(twin: Twin, profile: Profile) -> None:
    order = OrderRequest.model_validate(new_order("OF-1"))
    with twin.client(profile) as iris:
        ref = iris.upload_exam_image(jpeg_bytes(), order=order, laterality="OD")
        info = iris.images.info(ref.file_name)
        data = iris.images.get(ref.file_name)
        ref2 = iris.upload_exam_image(jpeg_bytes(), order="OF-2", patient_local_id="P-2")
        info2 = iris.images.info(ref2.file_name)
    assert dict(info.metadata) == {
        "order_local_id": "OF-1",
        "patient_local_id": "1234",
        "site_local_id": "PC1234",
        "laterality": "OD",
    }
    assert "John" not in json.dumps(dict(info.metadata))
    ids = read_exam_identifiers(data)
    assert ids is not None
    assert (ids.order_local_id, ids.patient_local_id, ids.client_guid) == (
        "OF-1",
        "1234",
        CLIENT_GUID,
    )
    assert dict(info2.metadata) == {"order_local_id": "OF-2", "patient_local_id": "P-2"}


def test_submit_grading(twin: Twin, profile: Profile) -> None:
    with twin.client(profile) as iris:
        sent = iris.submit_grading(
            local_id="ORD-1",
            od={
                "Gradable": True,
                "Findings": [{"Finding": "Diabetic Retinopathy", "Result": "Mild"}],
            },
            os={"Gradable": False, "UngradableReasons": ["Dirty Lens"]},
            site_local_id="PC1234",
        )
        with pytest.raises(ValidationError) as exc:
            iris.submit_grading(
                local_id="ORD-1",
                od={"Gradable": False, "Findings": [{"Finding": "Glaucoma", "Result": "None"}]},
            )
        assert paths(exc) == ["OD.Findings"]
    [msg] = drain(profile, "gradings")
    grading = parse_message(msg.body)
    assert isinstance(grading, GradingSubmission)
    assert grading.local_id == "ORD-1" and grading.client_guid == CLIENT_GUID
    assert msg.message_id == sent.message_id and msg.correlation_id == "ORD-1"


def test_explicit_endpoints_without_profile(twin: Twin, tmp_path: Path) -> None:
    profile = make_profile("mem", tmp_path)
    broker = twin.open_broker(profile, "orders")
    with twin.client(orders=broker, client_guid=CLIENT_GUID) as iris:
        iris.submit_order(new_order("E-1"))
        with pytest.raises(ConfigurationError, match="no 'images' store"):
            iris.upload_image(b"x")
    # The caller's broker is not closed by the client.
    assert broker.receive(1, wait=0.5)[0].correlation_id == "E-1"
    broker.close()


def test_closed_client_refuses(twin: Twin, profile: Profile) -> None:
    iris = twin.client(profile)
    iris.close()
    with pytest.raises(ConfigurationError, match="closed"):
        iris.submit_order(new_order())


def test_message_for_events_and_results() -> None:
    from iris_cloud.client import message_for
    from iris_cloud.model import OrderResult, parse_event
    from wfhelpers import sample

    evt = parse_event(json.dumps(sample("event-order-graded.json")))
    msg = message_for(evt)
    assert msg.message_id == evt.transaction_id
    assert msg.correlation_id == "ORD1234" and msg.subject == "OrderGradedEvent"
    assert parse_message(msg.body) == evt
    res = OrderResult.model_validate(sample("result-final.json"))  # TransactionId "" -> new id
    rmsg = message_for(res, "tx-r")
    assert rmsg.message_id == "tx-r" and rmsg.subject == "OrderResult"
    with pytest.raises(TypeError):
        message_for(Message(body=b""))  # type: ignore[arg-type]


def test_unknown_control_code_is_always_refused(twin: Twin, profile: Profile) -> None:
    order = new_order()
    order["OrderControlCode"] = "ZZ"
    with twin.client(profile) as iris, pytest.raises(ValidationError) as exc:
        iris.send_order(order)
    assert paths(exc) == ["OrderControlCode"]
    assert drain(profile, "orders") == []
