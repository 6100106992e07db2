"""Order First: identifiers written into JPEG/PNG (EXIF) and DICOM, read back, and identified."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from iris_cloud.errors import ValidationError
from iris_cloud.providers.memory import MemoryStore
from iris_cloud.workflows import (
    ExamIdentifiers,
    identifiers_from_metadata,
    identify_exam,
    read_exam_identifiers,
    tag_image,
    upload_exam_image,
)
from PIL import Image
from wfhelpers import dicom_bytes, jpeg_bytes, png_bytes

IDS = ExamIdentifiers(
    order_local_id="ORD-77",
    patient_local_id="PAT-5",
    site_local_id="PC1234",
    client_guid="63E3C9EF-66AC-4154-B0C2-494515EB99A7",
    laterality="OS",
    study_instance_uid="1.2.840.10008.99.1",
)


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB").tobytes()


def test_jpeg_round_trip_keeps_pixels_and_other_exif() -> None:
    original = jpeg_bytes()
    with Image.open(io.BytesIO(original)) as img:
        exif = img.getexif()
        exif[0x010F] = "CameraMaker"  # Make
        out = io.BytesIO()
        img.save(out, "JPEG", exif=exif, quality=95)
    original = out.getvalue()
    tagged, ctype = tag_image(original, IDS)
    assert ctype == "image/jpeg"
    assert read_exam_identifiers(tagged) == IDS
    assert pixels(tagged) == pixels(original)  # not re-encoded
    with Image.open(io.BytesIO(tagged)) as img:
        assert img.getexif()[0x010F] == "CameraMaker"
    # Tagging again replaces the block instead of adding a second one.
    retagged, _ = tag_image(tagged, ExamIdentifiers(order_local_id="OTHER"))
    assert retagged.count(b"Exif\x00\x00") == 1
    ids = read_exam_identifiers(retagged)
    assert ids is not None and ids.order_local_id == "OTHER"


def test_jpeg_user_comment_alone_is_enough() -> None:
    tagged, _ = tag_image(jpeg_bytes(), IDS)
    with Image.open(io.BytesIO(tagged)) as img:
        exif = img.getexif()
        del exif[0x010E]  # some tool rewrote ImageDescription
        out = io.BytesIO()
        img.save(out, "JPEG", exif=exif)
    assert read_exam_identifiers(out.getvalue()) == IDS


def test_png_round_trip_keeps_pixels_and_chunks() -> None:
    original = png_bytes()
    tagged, ctype = tag_image(original, IDS)
    assert ctype == "image/png"
    assert read_exam_identifiers(tagged) == IDS
    assert pixels(tagged) == pixels(original)
    with Image.open(io.BytesIO(tagged)) as img:
        img.load()
        assert img.info.get("Software") == "test"
    assert tag_image(tagged, IDS)[0].count(b"eXIf") == 1


def test_dicom_round_trip_sets_tags_and_keeps_pixels() -> None:
    import pydicom

    original = dicom_bytes()
    tagged, ctype = tag_image(original, IDS)
    assert ctype == "application/dicom"
    ds = pydicom.dcmread(io.BytesIO(tagged))
    before = pydicom.dcmread(io.BytesIO(original))
    assert ds.PatientID == "PAT-5"
    assert ds.AccessionNumber == "ORD-77"
    assert ds.StudyInstanceUID == "1.2.840.10008.99.1"
    assert ds.ImageLaterality == "L"
    assert ds.PixelData == before.PixelData
    assert str(ds.PatientName) == "Doe^John"  # untouched, and never written by us
    assert read_exam_identifiers(tagged) == IDS


def test_dicom_long_order_id_and_fallback_tags() -> None:
    import pydicom

    long_ids = ExamIdentifiers(order_local_id="ORDER-" + "9" * 30, patient_local_id="P")
    tagged, _ = tag_image(dicom_bytes(), long_ids)
    ds = pydicom.dcmread(io.BytesIO(tagged))
    assert "AccessionNumber" not in ds  # SH holds 16 characters; the JSON keeps the full id
    assert read_exam_identifiers(tagged) == long_ids
    # A DICOM tagged by another tool (no JSON) is still tied by AccessionNumber / PatientID.
    del ds.ImageComments
    ds.AccessionNumber = "ACC-1"
    out = io.BytesIO()
    ds.save_as(out)
    ids = read_exam_identifiers(out.getvalue())
    assert ids is not None and (ids.order_local_id, ids.patient_local_id) == ("ACC-1", "P")


def test_untagged_and_unsupported_images() -> None:
    assert read_exam_identifiers(jpeg_bytes()) is None
    assert read_exam_identifiers(png_bytes()) is None
    assert read_exam_identifiers(b"GIF89a...") is None
    with pytest.raises(ValidationError, match="not a JPEG, PNG or DICOM"):
        tag_image(b"GIF89a not supported", IDS)


def test_upload_dicom_from_path_and_identify(tmp_path: Path) -> None:
    path = tmp_path / "exam.dcm"
    path.write_bytes(dicom_bytes())
    store = MemoryStore.from_url(f"mem://of-{tmp_path.name}")
    ref = upload_exam_image(store, path, IDS)
    assert ref.file_name.endswith(".dcm") and ref.content_type == "application/dicom"
    info = store.info(ref.file_name)
    assert dict(info.metadata) == {
        "order_local_id": "ORD-77",
        "patient_local_id": "PAT-5",
        "site_local_id": "PC1234",
        "laterality": "OS",
    }
    assert identify_exam(store, ref.file_name) == identifiers_from_metadata(info.metadata)
    # Without object metadata (another uploader), the image's own tags tie it.
    store.put("plain.dcm", store.get(ref.file_name))
    assert identify_exam(store, "plain.dcm") == IDS
    store.put("plain.jpg", tag_image(jpeg_bytes(), IDS)[0])
    assert identify_exam(store, "plain.jpg") == IDS
    store.put("untagged.jpg", jpeg_bytes())
    assert identify_exam(store, "untagged.jpg") is None
    assert list(tmp_path.glob("iris-cloud-*")) == []


def test_metadata_keys_are_case_insensitive() -> None:
    ids = identifiers_from_metadata({"Order_Local_Id": "O", "PATIENT_LOCAL_ID": "P", "x": "y"})
    assert ids == ExamIdentifiers(order_local_id="O", patient_local_id="P")
    assert identifiers_from_metadata({"patient_local_id": "P"}) is None
