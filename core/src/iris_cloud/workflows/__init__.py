"""The two IRIS image workflows and result saving.

* :mod:`~iris_cloud.workflows.image_first` - upload images under unique names,
  reference them in the order (:func:`upload_image`, :class:`ImageRef`).
* :mod:`~iris_cloud.workflows.order_first` - write the order's identifiers into
  the image (EXIF / DICOM) and its metadata (:func:`upload_exam_image`,
  :func:`read_exam_identifiers`, :func:`identify_exam`).
* :mod:`~iris_cloud.workflows.results` - save result documents by file-name
  template (:func:`save_result`, :func:`render_name`).

Most users call these through :class:`iris_cloud.client.IrisClient`.
"""

from __future__ import annotations

from iris_cloud.workflows.image_first import (
    ImageRef,
    UploadReceipts,
    check_images_exist,
    upload_image,
)
from iris_cloud.workflows.order_first import (
    ExamIdentifiers,
    identifiers_from_metadata,
    identify_exam,
    read_exam_identifiers,
    tag_image,
    upload_exam_image,
)
from iris_cloud.workflows.results import DEFAULT_TEMPLATE, render_name, save_result

__all__ = [
    "DEFAULT_TEMPLATE",
    "ExamIdentifiers",
    "ImageRef",
    "UploadReceipts",
    "check_images_exist",
    "identifiers_from_metadata",
    "identify_exam",
    "read_exam_identifiers",
    "render_name",
    "save_result",
    "tag_image",
    "upload_exam_image",
    "upload_image",
]
