"""Order First: images that carry the order's identifiers themselves.

In the Order First workflow the order is sent before the exam and images are
written to a pre-agreed container as they are taken; the listener on that
container ties each image to its order by metadata in the image. This module
writes and reads that metadata:

* JPEG / PNG: EXIF ``ImageDescription`` (0x010E) and ``UserComment`` (0x9286)
  hold the identifiers as JSON. The EXIF block is spliced into the file
  (JPEG APP1 segment, PNG ``eXIf`` chunk) without re-encoding the pixels.
* DICOM: ``PatientID``, ``AccessionNumber`` (when it fits SH, 16 chars),
  ``StudyInstanceUID`` (when the order gives a valid UID) and the JSON in
  ``ImageComments``.
* The uploaded object's metadata: ``order_local_id``, ``patient_local_id`` and,
  when given, ``site_local_id``, ``image_local_id``, ``laterality``.

Only identifiers are written: never names, dates of birth or other PHI.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from iris_cloud.errors import ConfigurationError, FieldError, ValidationError
from iris_cloud.steps import Call, Steps, drive

if TYPE_CHECKING:
    from iris_cloud.ports import ObjectStore
    from iris_cloud.workflows.image_first import ImageRef, UploadReceipts

__all__ = [
    "ExamIdentifiers",
    "ExamUpload",
    "identifiers_from_metadata",
    "identify_exam",
    "prepare_exam_upload",
    "read_exam_identifiers",
    "tag_image",
    "upload_exam_image",
    "upload_exam_image_steps",
]

_IMAGE_DESCRIPTION = 0x010E
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
_ASCII_PREFIX = b"ASCII\x00\x00\x00"
_MARKER = "IrisCloud"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")

_WIRE = {
    "order_local_id": "OrderLocalId",
    "patient_local_id": "PatientLocalId",
    "site_local_id": "SiteLocalId",
    "client_guid": "ClientGuid",
    "image_local_id": "ImageLocalId",
    "laterality": "Laterality",
    "study_instance_uid": "StudyInstanceUid",
}
_METADATA_KEYS = (
    "order_local_id",
    "patient_local_id",
    "site_local_id",
    "image_local_id",
    "laterality",
)


@dataclass(frozen=True)
class ExamIdentifiers:
    """The identifiers that tie an exam image to its order (no PHI beyond the ids).

    Repr hides the patient's LocalId (MRN).
    """

    order_local_id: str
    patient_local_id: str | None = field(default=None, repr=False)
    site_local_id: str | None = None
    client_guid: str | None = None
    image_local_id: str | None = None
    laterality: str | None = None
    study_instance_uid: str | None = None

    def __post_init__(self) -> None:
        if not self.order_local_id:
            raise ConfigurationError("ExamIdentifiers needs the order's LocalId")

    def to_json(self) -> str:
        """The compact JSON written into the image (wire names, unset fields left out)."""
        data: dict[str, Any] = {_MARKER: 1}
        data.update({_WIRE[k]: v for k, v in asdict(self).items() if v is not None})
        return json.dumps(data, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ExamIdentifiers | None:
        """Parse :meth:`to_json` output; ``None`` when it is not ours."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or _MARKER not in data:
            return None
        reverse = {v: k for k, v in _WIRE.items()}
        values = {reverse[k]: str(v) for k, v in data.items() if k in reverse and v is not None}
        if not values.get("order_local_id"):
            return None
        return cls(**values)

    def metadata(self) -> dict[str, str]:
        """Object metadata for the upload: identifiers only."""
        return {k: str(getattr(self, k)) for k in _METADATA_KEYS if getattr(self, k) is not None}

    @classmethod
    def from_order(
        cls,
        order: Any,
        *,
        image_local_id: str | None = None,
        laterality: str | None = None,
    ) -> ExamIdentifiers:
        """Identifiers of an :class:`~iris_cloud.model.OrderRequest`."""
        from iris_cloud.model import OrderRequest

        if not isinstance(order, OrderRequest):
            raise TypeError("from_order needs an OrderRequest")
        return cls(
            order_local_id=order.order.local_id,
            patient_local_id=order.patient.local_id if order.patient else None,
            site_local_id=order.site.local_id if order.site else None,
            client_guid=order.client_guid,
            image_local_id=image_local_id,
            laterality=str(laterality) if laterality else None,
            study_instance_uid=order.order.study_instance_unique_id,
        )


def _kind(head: bytes) -> str:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    return "unknown"


def _unsupported() -> ValidationError:
    return ValidationError(
        "cannot tag image",
        [FieldError("image", "image_format", "not a JPEG, PNG or DICOM (Part 10) file")],
    )


# ------------------------------------------------------------------------- EXIF


def _exif_bytes(data: bytes, ids: ExamIdentifiers) -> bytes:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValidationError(
            "cannot tag image", [FieldError("image", "image_format", "unreadable image")]
        ) from exc
    text = ids.to_json()
    exif[_IMAGE_DESCRIPTION] = text
    exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = _ASCII_PREFIX + text.encode("ascii")
    raw: bytes = exif.tobytes()
    return raw  # b"Exif\0\0" + TIFF


def _splice_jpeg(data: bytes, exif: bytes) -> bytes:
    """Replace the JPEG's EXIF APP1 segment by ``exif``, keeping every other byte."""
    if len(exif) + 2 > 0xFFFF:
        raise ConfigurationError("EXIF block too large for a JPEG APP1 segment")
    out = bytearray(data[:2])
    pos = 2
    inserted = False
    # Walk the marker segments up to the start of scan; APP0 (JFIF) stays first.
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD9, 0xDA):  # EOI / SOS: the rest is entropy-coded data
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segment = data[pos : pos + 2 + length]
        if not inserted and marker != 0xE0:
            out += b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
            inserted = True
        is_exif = marker == 0xE1 and segment[4:10] == b"Exif\x00\x00"
        if not is_exif:
            out += segment
        pos += 2 + length
    if not inserted:
        out += b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    out += data[pos:]
    return bytes(out)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _splice_png(data: bytes, exif: bytes) -> bytes:
    """Put ``exif`` in an ``eXIf`` chunk right after IHDR, dropping any old one."""
    out = bytearray(data[:8])
    pos = 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos : pos + 12 + length]
        pos += 12 + length
        if kind == b"eXIf":
            continue
        out += chunk
        if kind == b"IHDR":
            out += _png_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00"))
    return bytes(out)


def _read_exif(data: bytes) -> ExamIdentifiers | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format == "PNG":
                img.load()  # eXIf may follow the header chunks Pillow reads lazily
            exif = img.getexif()
            candidates: list[Any] = [exif.get(_IMAGE_DESCRIPTION)]
            comment = exif.get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    except (UnidentifiedImageError, OSError):
        return None
    if isinstance(comment, bytes):
        candidates.append(comment[8:] if comment[:8] == _ASCII_PREFIX else comment)
    elif isinstance(comment, str):
        candidates.append(comment)
    for value in candidates:
        if value:
            ids = ExamIdentifiers.from_json(value)
            if ids is not None:
                return ids
    return None


# ------------------------------------------------------------------------ DICOM


def _tag_dataset(ds: Any, ids: ExamIdentifiers) -> None:
    if ids.patient_local_id is not None:
        ds.PatientID = ids.patient_local_id
    if len(ids.order_local_id) <= 16:
        ds.AccessionNumber = ids.order_local_id
    if (
        ids.study_instance_uid
        and _UID.match(ids.study_instance_uid)
        and len(ids.study_instance_uid) <= 64
    ):
        ds.StudyInstanceUID = ids.study_instance_uid
    if ids.laterality in ("OD", "OS"):
        ds.ImageLaterality = "R" if ids.laterality == "OD" else "L"
    ds.ImageComments = ids.to_json()


def _dicom_read(source: Any, **kwargs: Any) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(source, **kwargs)
    except (InvalidDicomError, OSError, ValueError, EOFError, struct.error) as exc:
        raise ValidationError(
            "cannot read DICOM", [FieldError("image", "dicom", "not a readable DICOM file")]
        ) from exc


def _tag_dicom_bytes(data: bytes, ids: ExamIdentifiers) -> bytes:
    ds = _dicom_read(io.BytesIO(data))
    _tag_dataset(ds, ids)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _tag_dicom_file(path: Path, ids: ExamIdentifiers) -> Path:
    # Pixel data stays on disk (deferred) and is copied while writing, so a
    # multi-GB study is tagged without holding it in memory.
    ds = _dicom_read(path, defer_size="1 MB")
    _tag_dataset(ds, ids)
    fd, tmp = tempfile.mkstemp(prefix="iris-cloud-", suffix=".dcm")
    os.close(fd)
    try:
        ds.save_as(tmp, enforce_file_format=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _read_dicom(source: Any) -> ExamIdentifiers | None:
    try:
        ds = _dicom_read(source, stop_before_pixels=True)
    except ValidationError:
        return None
    comment = ds.get("ImageComments")
    if comment:
        ids = ExamIdentifiers.from_json(str(comment))
        if ids is not None:
            return ids
    accession = str(ds.get("AccessionNumber") or "")
    if not accession:
        return None
    patient = ds.get("PatientID")
    study = ds.get("StudyInstanceUID")
    return ExamIdentifiers(
        order_local_id=accession,
        patient_local_id=str(patient) if patient else None,
        study_instance_uid=str(study) if study else None,
    )


# ------------------------------------------------------------------------ public


def tag_image(data: bytes, ids: ExamIdentifiers) -> tuple[bytes, str]:
    """``data`` with ``ids`` written into it, and its content type.

    JPEG / PNG get the EXIF block (pixels untouched), DICOM the tags listed in
    the module docstring. Raises :class:`ValidationError` for other formats.
    """
    kind = _kind(data[:132])
    if kind == "jpeg":
        return _splice_jpeg(data, _exif_bytes(data, ids)), "image/jpeg"
    if kind == "png":
        return _splice_png(data, _exif_bytes(data, ids)), "image/png"
    if kind == "dicom":
        return _tag_dicom_bytes(data, ids), "application/dicom"
    raise _unsupported()


def read_exam_identifiers(source: bytes | str | os.PathLike[str]) -> ExamIdentifiers | None:
    """The identifiers :func:`tag_image` wrote into an image, or ``None`` if it has none.

    Reads JPEG/PNG EXIF (``ImageDescription``, then ``UserComment``) and DICOM
    (``ImageComments`` JSON, else ``AccessionNumber`` / ``PatientID``).
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        with path.open("rb") as fh:
            head = fh.read(132)
        if _kind(head) == "dicom":
            return _read_dicom(path)
        data = path.read_bytes()
    else:
        data = bytes(source)
    kind = _kind(data[:132])
    if kind in ("jpeg", "png"):
        return _read_exif(data)
    if kind == "dicom":
        return _read_dicom(io.BytesIO(data))
    return None


def identifiers_from_metadata(metadata: Mapping[str, str]) -> ExamIdentifiers | None:
    """The identifiers in an object's metadata (keys compared case-insensitively)."""
    lowered = {k.lower(): v for k, v in metadata.items()}
    order = lowered.get("order_local_id")
    if not order:
        return None
    names = {f.name for f in fields(ExamIdentifiers)}
    values = {k: v for k, v in lowered.items() if k in names and k in _METADATA_KEYS and v}
    return ExamIdentifiers(**values)


def identify_exam(store: ObjectStore, name: str) -> ExamIdentifiers | None:
    """Tie the object ``name`` to its order: object metadata first, else the image's tags.

    For the listener on an Order First container (needs read rights).
    """
    info = store.info(name)
    from_meta = identifiers_from_metadata(info.metadata)
    if from_meta is not None:
        return from_meta
    with store.open_read(name) as fh:
        head = fh.read(132)
    if _kind(head) == "dicom":
        fd, tmp = tempfile.mkstemp(prefix="iris-cloud-", suffix=".dcm")
        os.close(fd)
        try:
            store.download_to(name, tmp)
            return _read_dicom(Path(tmp))
        finally:
            Path(tmp).unlink(missing_ok=True)
    return read_exam_identifiers(store.get(name))


@dataclass(frozen=True)
class ExamUpload:
    """An image tagged with an order's identifiers, ready to upload (:func:`prepare_exam_upload`).

    ``data`` is the tagged bytes, or a temporary tagged DICOM file that
    :meth:`discard` removes.
    """

    data: bytes | Path
    name: str
    content_type: str
    metadata: dict[str, str]
    temporary: bool = False

    def upload_steps(self, store: Any, receipts: UploadReceipts | None) -> Steps[ImageRef]:
        """The upload, as steps for a sync or async store."""
        from iris_cloud.workflows.image_first import upload_image_steps

        return upload_image_steps(
            store,
            self.data,
            name=self.name,
            content_type=self.content_type,
            metadata=self.metadata,
            receipts=receipts,
        )

    def discard(self) -> None:
        """Remove the temporary tagged file, if there is one."""
        if self.temporary and isinstance(self.data, Path):
            self.data.unlink(missing_ok=True)


def prepare_exam_upload(
    source: bytes | bytearray | IO[bytes] | str | os.PathLike[str],
    ids: ExamIdentifiers,
    *,
    name: str | None = None,
) -> ExamUpload:
    """Tag ``source`` with ``ids`` (blocking: it reads and writes image data).

    A DICOM path is tagged through a temporary file (constant memory); other
    inputs are tagged in memory.
    """
    metadata = ids.metadata()
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        with path.open("rb") as fh:
            head = fh.read(132)
        if _kind(head) == "dicom":
            return ExamUpload(
                _tag_dicom_file(path, ids),
                name or _name_like(path.name, "application/dicom"),
                "application/dicom",
                metadata,
                temporary=True,
            )
        hint: str | None = path.name
        data = path.read_bytes()
    elif isinstance(source, bytes | bytearray):
        hint, data = None, bytes(source)
    else:
        raw_name = getattr(source, "name", None)
        hint = os.path.basename(raw_name) if isinstance(raw_name, str) else None
        data = source.read()
    tagged, ctype = tag_image(data, ids)
    return ExamUpload(tagged, name or _name_like(hint, ctype), ctype, metadata)


def upload_exam_image(
    store: ObjectStore,
    source: bytes | bytearray | IO[bytes] | str | os.PathLike[str],
    ids: ExamIdentifiers,
    *,
    name: str | None = None,
    receipts: UploadReceipts | None = None,
) -> ImageRef:
    """Tag ``source`` with ``ids`` and upload it with the identifiers as object metadata.

    A DICOM path is tagged through a temporary file (constant memory); other
    inputs are tagged in memory.
    """
    prepare = Call(prepare_exam_upload, (source, ids), {"name": name})
    return drive(upload_exam_image_steps(prepare, store, receipts))


def upload_exam_image_steps(
    prepare: Call, store: Any, receipts: UploadReceipts | None = None
) -> Steps[ImageRef]:
    """:func:`upload_exam_image` as steps, for a sync or async store.

    ``prepare`` is the tagging step, :func:`prepare_exam_upload` giving an
    :class:`ExamUpload`: called plainly, or in a worker thread by an async
    caller (it reads and writes image data). The temporary tagged file is
    removed whatever happens.
    """
    upload: ExamUpload = yield prepare
    try:
        return (yield from upload.upload_steps(store, receipts))
    finally:
        upload.discard()


def _name_like(hint: str | None, content_type: str) -> str:
    from iris_cloud.workflows.image_first import unique_name

    return unique_name(content_type, hint)
