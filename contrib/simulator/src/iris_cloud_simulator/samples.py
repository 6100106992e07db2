"""Sample exams for the demo, tests and benchmarks: orders, JPEG and DICOM images.

Orders are built from the bundled documented sample (``order-new.json`` of
:func:`iris_cloud.model.sample_files`) with fresh LocalIds, so that every run
is a new order. Images are small but real: a JPEG made by Pillow, a DICOM
Part 10 file (ophthalmic photography) made by pydicom.
"""

from __future__ import annotations

import copy
import io
import json
import uuid
from collections.abc import Sequence
from typing import Any

__all__ = ["dicom_image", "jpeg_image", "new_local_id", "sample_message", "sample_order"]


def sample_message(name: str) -> dict[str, Any]:
    """A bundled sample message (e.g. ``order-new.json``) as a fresh dict."""
    from iris_cloud.model import sample_files

    for item in sample_files():
        if item.name == name:
            data = json.loads(item.read_bytes())
            assert isinstance(data, dict)
            return copy.deepcopy(data)
    raise KeyError(f"no bundled sample named {name!r}")


def new_local_id(prefix: str = "ORD") -> str:
    """A fresh order LocalId such as ``ORD-3F2A9C1B``."""
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


def sample_order(
    local_id: str | None = None,
    *,
    images: Sequence[dict[str, Any]] = (),
    patient_local_id: str | None = None,
    first_name: str = "John",
    last_name: str = "Doe",
) -> dict[str, Any]:
    """The documented NW sample with fresh LocalIds and ``images`` as ``Camera.Images``.

    With no images it is an Order First order (images follow, tagged).
    """
    order = sample_message("order-new.json")
    order["Order"]["LocalId"] = local_id or new_local_id()
    order["Patient"]["LocalId"] = patient_local_id or f"PAT-{uuid.uuid4().hex[:8].upper()}"
    order["Patient"]["Name"] = {"First": first_name, "Last": last_name}
    order["Camera"]["Images"] = [dict(i) for i in images]
    return order


def jpeg_image(seed: int = 0, size: int = 64) -> bytes:
    """A small real JPEG (a reddish disc on black, like a fundus photo)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "black")
    draw = ImageDraw.Draw(img)
    shade = 120 + (seed * 37) % 100
    draw.ellipse((4, 4, size - 4, size - 4), fill=(shade, 60, 30))
    draw.ellipse((size // 2, size // 3, size // 2 + 8, size // 3 + 8), fill=(250, 220, 150))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80)
    return out.getvalue()


def dicom_image(size: int = 16) -> bytes:
    """A small valid DICOM Part 10 file (ophthalmic photography, 8-bit monochrome)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    ophthalmic_8bit = UID("1.2.840.10008.5.1.4.1.1.77.1.5.1")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ophthalmic_8bit
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("exam.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = ophthalmic_8bit
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OP"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((x * y) % 256 for y in range(size) for x in range(size))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
