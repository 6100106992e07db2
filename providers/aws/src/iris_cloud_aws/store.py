"""Amazon S3 as an :class:`~iris_cloud.ports.ObjectStore`: ``s3://BUCKET/PREFIX``.

Uploads stream: objects up to ``multipart_threshold`` go in one
``PutObject``; larger ones (or streams of unknown size that turn out larger)
as a multipart upload whose parts are sent at most ``max_concurrency``
(default 10) at a time, each with its ``checksum_algorithm`` checksum
(declared on the upload, so completion combines the parts' checksums). A
part of a regular file is read from the file while it is sent, so memory
stays flat; from any other stream it stays at about
``(max_concurrency + 1) * multipart_chunksize`` whatever the object's size.
``overwrite=False`` is enforced by S3 itself (``If-None-Match: *`` on
``PutObject`` and on ``CompleteMultipartUpload``); a failed multipart upload
is aborted, leaving no object and no stored parts.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import IO, Any, cast

from iris_cloud.errors import ConfigurationError
from iris_cloud.logs import get_logger
from iris_cloud.parts import PartPool
from iris_cloud.ports import ObjectInfo, ObjectStore, check_object_name, read_full
from iris_cloud.steps import drive

from iris_cloud_aws._s3 import FileRegion, S3Common
from iris_cloud_aws._session import AwsSession
from iris_cloud_aws.errors import aws_errors

__all__ = ["S3Store"]

log = get_logger(__name__)


def _file_region(stream: IO[bytes]) -> FileRegion | None:
    """``(fd, position, bytes left)`` when ``stream`` is a regular file, else ``None``."""
    try:
        fd = stream.fileno()
        st = os.fstat(fd)
        position = stream.tell()
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return fd, position, max(0, st.st_size - position)


class S3Store(S3Common, ObjectStore):
    """One S3 bucket, optionally under a key prefix.

    The options are :class:`~iris_cloud_aws._s3.S3Common`'s (``session`` a
    boto3 Session).
    """

    notification_broker = "iris_cloud_aws.broker:SqsBroker"

    def __init__(self, session: AwsSession, bucket: str, prefix: str = "", **options: Any) -> None:
        """Open ``bucket`` (under ``prefix``) with ``session``'s credentials."""
        super().__init__(session, bucket, prefix, **options)
        self._s3 = session.client("s3", **self._client_config)

    # -- writing -------------------------------------------------------------------
    def _put(
        self,
        name: str,
        stream: IO[bytes],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> ObjectInfo:
        region = _file_region(stream)
        pool = PartPool(self._concurrency, "s3-part")
        try:
            steps = self._put_steps(
                name,
                partial(read_full, stream),
                size,
                content_type,
                metadata,
                overwrite,
                (pool, drive),
                region,
            )
            info = drive(steps)
        finally:
            pool.close()
        if region is not None and region[2] > self._threshold:
            stream.seek(region[1] + info.size)  # sent from the file: where a read would stop
        return info

    # -- reading -----------------------------------------------------------------------
    def _open_read(self, name: str) -> IO[bytes]:
        resp = drive(self._get_steps(name))
        # botocore's StreamingBody is an io.IOBase: read(n), iteration, close.
        return cast(IO[bytes], resp["Body"])

    def read_range(self, name: str, start: int, length: int | None = None) -> bytes:
        """Bytes ``start`` .. ``start + length`` of ``name`` (to the end without ``length``)."""
        if start < 0 or (length is not None and length < 1):
            raise ConfigurationError("read_range needs start >= 0 and length >= 1")
        end = "" if length is None else str(start + length - 1)
        check_object_name(name)
        resp = drive(self._get_steps(name, Range=f"bytes={start}-{end}"))
        with aws_errors("GetObject", self._where(name)), resp["Body"] as body:
            return cast(bytes, body.read())

    def _info(self, name: str) -> ObjectInfo:
        return drive(self._info_steps(name))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        where = f"s3://{self.bucket}/{self._key(prefix)}"
        pages = iter(self._pages(prefix))
        while True:
            with aws_errors("ListObjectsV2", where):
                page = next(pages, None)
            if page is None:
                return
            yield from self._listed(page)

    def _delete(self, name: str) -> None:
        drive(self._delete_steps(name))

    def _signed_url(self, name: str, method: str, expires: timedelta) -> str:
        return drive(self._signed_url_steps(name, method, expires))

    def close(self) -> None:
        """Close the S3 client's connection pool."""
        try:
            self._s3.close()
        except Exception as exc:  # closing must not mask the caller's error
            log.debug("closing the S3 client failed: %s", type(exc).__name__)
