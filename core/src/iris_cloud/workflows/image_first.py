"""Image First: upload images under unique names, then reference them in the order.

:func:`upload_image` streams an image to the images store under a unique name
and returns an :class:`ImageRef` (container + file name) for
``Camera.Images[].AzureBlobStorage``. IRIS hands integrators write-only
credentials for the image container, so whether a referenced image exists is
checked with ``exists`` only when the store may read; otherwise against the
:class:`UploadReceipts` of this client (in memory, optionally persisted to a
SQLite file so that a later process can submit the order).
"""

from __future__ import annotations

import mimetypes
import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from iris_cloud.errors import ConfigurationError, FieldError, PermissionDenied, ValidationError
from iris_cloud.model import AzureBlobStorage, Image, OrderRequest
from iris_cloud.private import connect_private, wal_mode
from iris_cloud.steps import Call, Steps, drive

if TYPE_CHECKING:
    from collections.abc import Mapping

    from iris_cloud.ports import ObjectInfo, ObjectStore

__all__ = [
    "IMAGE_TYPES",
    "ImageRef",
    "ImageSource",
    "UploadReceipts",
    "check_images_exist",
    "check_images_exist_steps",
    "guess_content_type",
    "image_references",
    "unique_name",
    "upload_image",
    "upload_image_steps",
]

ImageSource = bytes | bytearray | memoryview | IO[bytes] | str | os.PathLike[str]
"""What an upload accepts: bytes, a binary stream, or a path."""

_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"II*\x00", "image/tiff", ".tif"),
    (b"MM\x00*", "image/tiff", ".tif"),
)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/tiff", "application/dicom"})
"""What an IRIS image upload may be (by its content): JPEG, PNG, TIFF, DICOM."""
_EXT_BY_TYPE = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "application/dicom": ".dcm",
    "image/tiff": ".tif",
}


@dataclass(frozen=True)
class ImageRef:
    """Where an uploaded image lives: what ``AzureBlobStorage`` carries.

    ``file_name`` is relative to the images store (its prefix, if any, is not
    part of it), exactly what the other side's store opens.
    """

    container: str
    file_name: str
    size: int | None = None
    content_type: str | None = None

    def blob(self) -> AzureBlobStorage:
        """The ``AzureBlobStorage`` object of an order's image entry."""
        return AzureBlobStorage(container=self.container, file_name=self.file_name)

    def image(self, **fields: Any) -> Image:
        """An order ``Image`` referencing this upload; ``fields`` fill the rest.

        Example: ``ref.image(local_id="img-1", laterality="OD", taken=now)``.
        """
        return Image(azure_blob_storage=self.blob(), **fields)


def _sniff(head: bytes) -> str | None:
    """The image type the first bytes show, if any."""
    for magic, ctype, _ in _MAGIC:
        if head.startswith(magic):
            return ctype
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "application/dicom"
    return None


def guess_content_type(head: bytes, name: str | None = None) -> str:
    """The MIME type of an image from its first bytes (and name as a hint)."""
    if sniffed := _sniff(head):
        return sniffed
    if name:
        if name.lower().endswith((".dcm", ".dicom")):
            return "application/dicom"
        guessed, _ = mimetypes.guess_type(name)
        if guessed:
            return guessed
    return "application/octet-stream"


def unique_name(content_type: str | None, hint: str | None = None) -> str:
    """A new unique object name (a GUID, as IRIS's own examples use) with a fitting suffix."""
    suffix = ""
    if hint:
        suffix = PurePosixPath(hint).suffix.lower()
    if not suffix and content_type:
        suffix = _EXT_BY_TYPE.get(content_type, "")
    return f"{str(uuid.uuid4()).upper()}{suffix}"


def _peek(source: ImageSource) -> tuple[bytes, str | None]:
    """The first bytes of ``source`` (without consuming a stream) and a name hint."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source[:132]), None
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        with path.open("rb") as fh:
            return fh.read(132), path.name
    name = getattr(source, "name", None)
    hint = os.path.basename(name) if isinstance(name, str) else None
    if source.seekable():
        pos = source.tell()
        head = source.read(132)
        source.seek(pos)
        return head, hint
    return b"", hint


class UploadReceipts:
    """What this client uploaded: (container, file name) pairs, optionally in SQLite.

    Used when the image store's credentials cannot read, to tell whether an
    order's image references exist. Thread-safe.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()
        self._db: sqlite3.Connection | None = None
        self.path = Path(path).expanduser() if path is not None else None
        if self.path is not None:
            self._db = connect_private(self.path, check_same_thread=False, isolation_level=None)
            wal_mode(self._db, 5.0)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS receipts (container TEXT NOT NULL, name TEXT NOT NULL,"
                " size INTEGER, uploaded_at TEXT NOT NULL, PRIMARY KEY (container, name))"
            )

    def add(self, container: str, name: str, size: int | None = None) -> None:
        """Record an upload."""
        with self._lock:
            self._seen.add((container, name))
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO receipts VALUES (?, ?, ?, ?)",
                    (container, name, size, datetime.now(UTC).isoformat()),
                )

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        with self._lock:
            if key in self._seen:
                return True
            if self._db is None:
                return False
            row = self._db.execute(
                "SELECT 1 FROM receipts WHERE container = ? AND name = ?", key
            ).fetchone()
        return row is not None

    def __len__(self) -> int:
        with self._lock:
            if self._db is None:
                return len(self._seen)
            (count,) = self._db.execute("SELECT COUNT(*) FROM receipts").fetchone()
            return int(count)

    def close(self) -> None:
        """Close the SQLite file (the in-memory receipts stay usable)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def upload_image(
    store: ObjectStore,
    source: ImageSource,
    *,
    name: str | None = None,
    content_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
    receipts: UploadReceipts | None = None,
    force: bool = False,
) -> ImageRef:
    """Stream ``source`` to ``store`` under ``name`` (default: a new GUID name).

    Never overwrites: an existing name raises
    :class:`~iris_cloud.errors.AlreadyExists` (IRIS requires unique names).
    ``source`` must be a path, bytes or a binary stream (:class:`TypeError`
    otherwise) holding a JPEG, PNG, TIFF or DICOM image by its content
    (:class:`ValidationError` otherwise, before anything is stored; a stream
    that cannot seek is judged by ``content_type`` or its name), unless
    ``force``.
    """
    return drive(
        upload_image_steps(
            store,
            source,
            name=name,
            content_type=content_type,
            metadata=metadata,
            receipts=receipts,
            force=force,
        )
    )


def upload_image_steps(
    store: Any,
    source: ImageSource,
    *,
    name: str | None = None,
    content_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
    receipts: UploadReceipts | None = None,
    force: bool = False,
) -> Steps[ImageRef]:
    """:func:`upload_image` as steps, for a sync or async store (:mod:`iris_cloud.steps`)."""
    if not isinstance(source, bytes | bytearray | memoryview | str | os.PathLike) and not (
        callable(getattr(source, "read", None))
    ):
        raise TypeError(
            f"upload_image takes a path, bytes or a binary stream, not {type(source).__name__}"
            " (a message model is sent with submit_order / broker.send)"
        )
    head, hint = _peek(source)
    if not force:
        _require_image(head, content_type or guess_content_type(head, name or hint))
    ctype = content_type or guess_content_type(head, name or hint)
    object_name = name or unique_name(ctype, hint)
    data: Any = Path(source) if isinstance(source, str | os.PathLike) else source
    info: ObjectInfo = yield Call(
        store.put,
        (object_name, data),
        {"content_type": ctype, "metadata": metadata, "overwrite": False},
    )
    ref = ImageRef(store.container, object_name, size=info.size, content_type=ctype)
    if receipts is not None:
        receipts.add(ref.container, ref.file_name, info.size)
    return ref


def _require_image(head: bytes, declared: str) -> None:
    seen = _sniff(head) if head else declared
    if seen not in IMAGE_TYPES:
        raise ValidationError(
            "not an image IRIS takes",
            [
                FieldError(
                    "source",
                    "not_an_image",
                    "IRIS takes JPEG, PNG, TIFF or DICOM images and this content is none of "
                    "them; pass force=True (iris-cloud upload --force) to upload it anyway",
                )
            ],
        )


def image_references(order: OrderRequest) -> list[tuple[str, AzureBlobStorage]]:
    """``(field path, AzureBlobStorage)`` for every image the order references."""
    refs: list[tuple[str, AzureBlobStorage]] = []
    camera = order.camera
    for i, image in enumerate((camera.images or []) if camera else []):
        if image.azure_blob_storage is not None:
            refs.append((f"Camera.Images[{i}].AzureBlobStorage", image.azure_blob_storage))
    return refs


def check_images_exist(
    order: OrderRequest, store: ObjectStore, receipts: UploadReceipts | None = None
) -> None:
    """Raise :class:`ValidationError` naming every referenced image that does not exist.

    Asks the store (``exists``) when its credentials may read, else the
    receipts of this client's uploads. A reference to another container than
    the store's, or without a file name, is an error too.
    """
    drive(check_images_exist_steps(order, store, receipts))


def check_images_exist_steps(
    order: OrderRequest, store: Any, receipts: UploadReceipts | None = None
) -> Steps[None]:
    """:func:`check_images_exist` as steps, for a sync or async store."""
    errors: list[FieldError] = []
    can_read = store.capabilities.can_read
    for path, blob in image_references(order):
        if not blob.file_name:
            errors.append(FieldError(f"{path}.FileName", "missing", "image file name is missing"))
            continue
        container = blob.container or store.container
        if container != store.container:
            errors.append(
                FieldError(
                    f"{path}.Container",
                    "image_container",
                    f"image {blob.file_name!r} is in container {container!r}, but this "
                    f"profile's images store is {store.container!r}",
                )
            )
            continue
        found: bool | None = None
        if can_read:
            try:
                found = yield Call(store.exists, (blob.file_name,))
            except PermissionDenied:
                can_read = False
            except ConfigurationError:
                found = False
        if found is None:
            found = receipts is not None and (container, blob.file_name) in receipts
            how = "was not uploaded by this client (the images store is write-only)"
        else:
            how = f"does not exist in container {container!r}"
        if not found:
            errors.append(
                FieldError(f"{path}.FileName", "image_missing", f"image {blob.file_name!r} {how}")
            )
    if errors:
        raise ValidationError("order refers to images that do not exist", errors)
