"""Helpers of the workflow tests (profiles on mem:// and local://, sample orders, images)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

from iris_cloud.config import Profile
from iris_cloud.model import sample_files
from iris_cloud.testing import builtin_profile_dict
from iris_cloud.testing.envs import TEST_CLIENT_GUID

CLIENT_GUID = TEST_CLIENT_GUID
PROVIDERS = ("mem", "local")


profile_dict = builtin_profile_dict


def make_profile(kind: str, tmp_path: Path, **overrides: Any) -> Profile:
    """:func:`profile_dict` as a :class:`Profile`."""
    return Profile.from_dict(profile_dict(kind, tmp_path, **overrides))


def sample(name: str) -> dict[str, Any]:
    """A bundled sample message as a dict (a deep copy)."""
    for f in sample_files():
        if f.name == name:
            return copy.deepcopy(json.loads(f.read_bytes()))
    raise KeyError(name)


def new_order(
    local_id: str = "ORD1234", images: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The documented NW sample with ``local_id`` and the given Camera.Images."""
    order = sample("order-new.json")
    order["Order"]["LocalId"] = local_id
    order["Camera"]["Images"] = images or []
    return order


def jpeg_bytes(colour: str = "red") -> bytes:
    """A small real JPEG."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(out, "JPEG")
    return out.getvalue()


def png_bytes() -> bytes:
    """A small real PNG with a text chunk (which tagging must keep)."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "test")
    out = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(out, "PNG", pnginfo=info)
    return out.getvalue()


def dicom_bytes() -> bytes:
    """A small valid DICOM Part 10 file (secondary capture, 8x8 pixels)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OP"
    ds.PatientName = "Doe^John"
    ds.PatientID = "old"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(64))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
