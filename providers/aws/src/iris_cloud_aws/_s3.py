"""What the sync and the async S3 stores share: all of it but the client and the body streams.

:class:`S3Common` holds the options, metadata encoding, the choice of one
``PutObject`` or a multipart upload, the parts (read, numbered, sent at most
``max_concurrency`` at a time, default 10, each with its ``checksum_algorithm``
checksum declared on the upload so that completion combines them; a regular
file's parts read from the file as they are sent), ``If-None-Match: *`` for
``overwrite=False``, the abort of a failed upload, listing pages, deletes and
signing, and the parsing of S3 event notifications. Each call to S3 is a step
(:mod:`iris_cloud.steps`) on ``self._s3``: a boto3 client driven by
:class:`~iris_cloud_aws.store.S3Store`, an aiobotocore client awaited by
:class:`~iris_cloud_aws.aio.store.AsyncS3Store`.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar, Self
from urllib.parse import unquote_plus

from iris_cloud.errors import AlreadyExists, ConfigurationError, NotFound, PermissionDenied
from iris_cloud.logs import get_logger
from iris_cloud.ports import Capabilities, Message, ObjectInfo
from iris_cloud.steps import Call, Steps

from iris_cloud_aws._session import AwsSession, as_bool, as_int, parse_endpoint
from iris_cloud_aws.errors import aws_errors
from iris_cloud_aws.options import STORE_OPTIONS

__all__ = ["MIB", "S3Common"]

_RFC2047 = re.compile(r"=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=", re.IGNORECASE)

log = get_logger("iris_cloud_aws.store")

MIB = 1024 * 1024
MIN_PART = 5 * MIB
"""S3's smallest part (all but the last)."""
MAX_PARTS = 10_000
DEFAULT_CONCURRENCY = 10
"""Parts in flight: as ``boto3.upload_file`` (s3transfer) sends them."""
CHECKSUM_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
"""What ``checksum_algorithm`` may name (``CRC32C`` and ``CRC64NVME`` need awscrt)."""

FileRegion = tuple[int, int, int]
"""``(fd, start, length)`` of a regular file that parts are sent from."""


class FilePart:
    """Bytes ``start`` .. ``start + length`` of an open file, read where they lie.

    A part of an upload from a file is sent (and checksummed, and re-sent on a
    retry) from the file itself: nothing of it is held in memory. ``pread``
    keeps parts sent side by side from sharing a file position. botocore
    needs no more of a body than ``read``, ``seek``, ``tell`` and ``len``.
    """

    def __init__(self, fd: int, start: int, length: int) -> None:
        self._fd, self._start, self._length, self._pos = fd, start, length, 0

    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = min(max(0, base + offset), self._length)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = self._length - self._pos
        n = left if size is None or size < 0 else min(size, left)
        data = os.pread(self._fd, n, self._start + self._pos) if n > 0 else b""
        if len(data) < n:
            # Cut short since the upload measured it: the part would never be whole.
            raise OSError(errno.EIO, "the file became shorter during the upload")
        self._pos += len(data)
        return data


def _encode_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Metadata as S3 can carry it: HTTP headers are ASCII, so other values go
    RFC 2047-encoded (``=?UTF-8?B?...?=``), the form S3 itself returns them in."""
    out = {}
    for key, value in metadata.items():
        if not key.isascii():
            raise ConfigurationError("S3 metadata keys must be ASCII (they travel as HTTP headers)")
        if value.isascii():
            out[key] = value
        else:
            out[key] = "=?UTF-8?B?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="
    return out


def _decode_metadata(metadata: dict[str, str]) -> dict[str, str]:
    out = {}
    for key, value in metadata.items():
        match = _RFC2047.fullmatch(value)
        if match:
            try:
                value = base64.b64decode(match.group(1)).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                log.debug("metadata %s looks RFC 2047-encoded but is not; kept as is", key)
        out[key] = value
    return out


class S3Common:
    """The shared half of ``S3Store`` and ``AsyncS3Store``: one S3 bucket, under a prefix.

    Options (URL query or keyword; credentials keyword only): ``region``,
    ``endpoint_url``, ``aws_access_key_id``, ``aws_secret_access_key``,
    ``aws_session_token``, ``profile_name``, ``session``,
    ``multipart_threshold`` and ``multipart_chunksize`` (bytes, default 8 MiB),
    ``max_concurrency`` (parts in flight, default 10), ``checksum_algorithm``
    (declared on multipart uploads, each part carrying its own; default
    ``CRC32``), ``addressing_style``
    (``auto`` / ``path`` / ``virtual``), ``signed_urls`` (default true when the
    session has credentials), ``notification_queue`` (SQS queue URL or name
    receiving this bucket's ``s3:ObjectCreated:*`` events: ``watch`` then
    follows them instead of polling).

    A subclass sets ``self._s3`` before it drives a step, and names the
    session type and the broker class (an import path) of notifications.
    """

    session_class: ClassVar[type[AwsSession]] = AwsSession
    """The session type :meth:`from_url` builds from the options."""
    notification_broker: ClassVar[str]
    """Import path of the SQS broker class that carries notifications."""

    scheme: ClassVar[str] = "s3"
    capabilities: Capabilities = Capabilities(conditional_create=True, signed_urls=True)
    list_page_size: int = 1000
    """Keys per ListObjectsV2 call (S3's maximum)."""

    def __init__(
        self,
        session: AwsSession,
        bucket: str,
        prefix: str = "",
        *,
        multipart_threshold: int = 8 * MIB,
        multipart_chunksize: int = 8 * MIB,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        checksum_algorithm: str = "CRC32",
        addressing_style: str = "auto",
        signed_urls: bool | None = None,
        notification_queue: str | None = None,
    ) -> None:
        """Open ``bucket`` (under ``prefix``) with ``session``'s credentials."""
        if len(bucket) < 3:
            raise ConfigurationError("S3 bucket names have at least 3 characters")
        if multipart_chunksize < MIN_PART:
            raise ConfigurationError(f"multipart_chunksize must be at least {MIN_PART} (5 MiB)")
        if max_concurrency < 1:
            raise ConfigurationError("max_concurrency must be at least 1")
        if checksum_algorithm.upper() not in CHECKSUM_ALGORITHMS:
            raise ConfigurationError(
                f"checksum_algorithm must be one of {', '.join(CHECKSUM_ALGORITHMS)}"
            )
        if addressing_style not in ("auto", "path", "virtual"):
            raise ConfigurationError("addressing_style must be auto, path or virtual")
        self._aws = session
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._threshold = max(1, multipart_threshold)
        self._chunk = multipart_chunksize
        self._concurrency = max_concurrency
        self._checksum = checksum_algorithm.upper()
        # SigV4 for presigned URLs too: regions opened since 2014 accept nothing else.
        self._client_config = {
            "s3": {"addressing_style": addressing_style},
            "signature_version": "s3v4",
        }
        self._s3: Any = None
        self._signed_urls = signed_urls
        self._notification_queue = notification_queue
        can_sign = session.can_sign if signed_urls is None else signed_urls and session.can_sign
        self.capabilities = replace(
            type(self).capabilities, signed_urls=can_sign, native_watch=bool(notification_queue)
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``s3://BUCKET/PREFIX?region=...&endpoint_url=...``."""
        parts, opts = parse_endpoint(url, cls.scheme, STORE_OPTIONS, options)
        if not parts.netloc:
            raise ConfigurationError("s3 URL names no bucket (s3://BUCKET/PREFIX)")
        signed = opts.get("signed_urls")
        return cls(
            cls.session_class.from_options(opts),
            parts.netloc,
            parts.path,
            multipart_threshold=as_int(opts, "multipart_threshold", 8 * MIB) or 8 * MIB,
            multipart_chunksize=as_int(opts, "multipart_chunksize", 8 * MIB) or 8 * MIB,
            max_concurrency=as_int(opts, "max_concurrency", DEFAULT_CONCURRENCY)
            or DEFAULT_CONCURRENCY,
            checksum_algorithm=str(opts.get("checksum_algorithm") or "CRC32"),
            addressing_style=str(opts.get("addressing_style") or "auto"),
            signed_urls=None if signed is None else as_bool(opts, "signed_urls", True),
            notification_queue=opts.get("notification_queue") or None,
        )

    @property
    def container(self) -> str:
        """The bucket name."""
        return self.bucket

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(bucket={self.bucket!r}, prefix={self.prefix!r}, "
            f"session={self._aws!r})"
        )

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _where(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    # -- writing -------------------------------------------------------------------
    def _put_steps(
        self,
        name: str,
        read: Callable[[int], Any],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
        parts: Any,
        region: FileRegion | None = None,
    ) -> Steps[ObjectInfo]:
        """Upload what ``read(n)`` gives: one ``PutObject``, or multipart through ``parts``.

        ``parts`` is ``(pool, run)``: a :class:`~iris_cloud.parts.PartPool` and
        :func:`~iris_cloud.steps.drive`, or their async twins. Given the
        ``region`` of a regular file larger than ``multipart_threshold``, its
        parts are sent from the file itself (flat memory).
        """
        extra: dict[str, Any] = {"Metadata": _encode_metadata(metadata)}
        if content_type:
            extra["ContentType"] = content_type
        key = self._key(name)
        if region is not None and region[2] > self._threshold:
            etag, total = yield from self._multipart_steps(
                name, read, [region], region[2], extra, overwrite, parts
            )
            return ObjectInfo(
                name=name, size=total, content_type=content_type, metadata=dict(metadata), etag=etag
            )
        first = yield Call(read, (self._threshold if size is None else min(size, self._threshold),))
        if len(first) < self._threshold or (size is not None and size <= self._threshold):
            # Small object: one request; S3 refuses it atomically if the key exists.
            if not overwrite:
                extra["IfNoneMatch"] = "*"
            with aws_errors("PutObject", self._where(name)):
                resp = yield Call(
                    self._s3.put_object,
                    (),
                    {"Bucket": self.bucket, "Key": key, "Body": first, **extra},
                )
            etag, total = resp.get("ETag"), len(first)
        else:
            # Handed on in a box, so that no frame keeps the first part once it is sent.
            box = [first]
            del first
            etag, total = yield from self._multipart_steps(
                name, read, box, size, extra, overwrite, parts
            )
        return ObjectInfo(
            name=name,
            size=total,
            content_type=content_type,
            metadata=dict(metadata),
            etag=etag,
        )

    def _multipart_steps(
        self,
        name: str,
        read: Callable[[int], Any],
        first: list[Any],
        size: int | None,
        extra: dict[str, Any],
        overwrite: bool,
        parts: Any,
    ) -> Steps[tuple[str | None, int]]:
        """A multipart upload from what ``first`` boxes (bytes read, then the rest of
        ``read``; or a file region ``(fd, start, length)``); aborted on any failure, a
        cancel or an interrupt included."""
        where = self._where(name)
        if not overwrite:
            yield from self._refuse_existing_steps(name)
        chunk = self._chunk
        if size is not None and math.ceil(size / chunk) > MAX_PARTS:
            # Keep within S3's 10,000 parts by growing the part size.
            chunk = math.ceil(size / MAX_PARTS)
        key = self._key(name)
        with aws_errors("CreateMultipartUpload", where):
            # A declared algorithm: every part carries its checksum, which S3
            # checks on arrival, and completion combines them instead of
            # reading the whole object again.
            created = yield Call(
                self._s3.create_multipart_upload,
                (),
                {"Bucket": self.bucket, "Key": key, "ChecksumAlgorithm": self._checksum, **extra},
            )
            upload_id = created["UploadId"]
        try:
            done, total = yield from self._upload_parts_steps(
                name, key, upload_id, read, first, chunk, parts
            )
            complete: dict[str, Any] = {}
            if not overwrite:
                complete["IfNoneMatch"] = "*"
            with aws_errors("CompleteMultipartUpload", where):
                resp = yield Call(
                    self._s3.complete_multipart_upload,
                    (),
                    {
                        "Bucket": self.bucket,
                        "Key": key,
                        "UploadId": upload_id,
                        "MultipartUpload": {"Parts": done},
                        **complete,
                    },
                )
        except BaseException:
            # Also a cancel or an interrupt, which would otherwise leave the parts.
            # Parts still in flight first: one that lands after the abort may be
            # kept by S3 (the upload must then be aborted again), holding a
            # piece of a patient's image outside any object.
            yield Call(parts[0].drain)
            yield from self._abort_steps(name, key, upload_id)
            raise
        return resp.get("ETag"), total

    def _refuse_existing_steps(self, name: str) -> Steps[None]:
        # Fail before sending gigabytes when the key is taken; the atomic
        # check is still If-None-Match on completion. Write-only credentials
        # cannot look, which is fine: then only the completion check applies.
        try:
            yield from self._info_steps(name)
        except (NotFound, PermissionDenied):
            return
        raise AlreadyExists(f"{self._where(name)} already exists (conditional create refused)")

    def _upload_parts_steps(
        self,
        name: str,
        key: str,
        upload_id: str,
        read: Callable[[int], Any],
        first: list[Any],
        chunk: int,
        parts: Any,
    ) -> Steps[tuple[list[dict[str, Any]], int]]:
        """What ``first`` boxes in parts of ``chunk`` bytes (the last shorter, see
        :meth:`_next_part_steps`), at most ``max_concurrency`` held: the pool has room
        before the next is read."""
        pool, run = parts
        total = 0
        number = 0
        while (body := (yield from self._next_part_steps(first, read, chunk))) is not None:
            number += 1
            total += len(body)
            part = self._part_steps(name, key, upload_id, number, body)
            yield Call(pool.submit, (run, part))
        done: list[dict[str, Any]] = yield Call(pool.results)
        return done, total

    @staticmethod
    def _next_part_steps(
        source: list[Any], read: Callable[[int], Any], chunk: int
    ) -> Steps[bytes | FilePart | None]:
        """The next part of at most ``chunk`` bytes, or ``None`` at the end.

        ``source`` is a box holding the bytes read but not sent yet, or a file
        region ``(fd, start, length)``: a :class:`FilePart` of it is read as it
        is sent, and the region moves on.
        """
        current = source[0] if source else b""
        if isinstance(current, tuple):
            fd, start, length = current
            if length <= 0:
                return None
            size = min(chunk, length)
            source[0] = (fd, start + size, length - size)
            return FilePart(fd, start, size)
        buffer = source.pop() if source else b""
        if len(buffer) < chunk:
            buffer += yield Call(read, (chunk - len(buffer),))
        if not buffer:
            return None
        # A whole buffer is the part itself: slicing would copy it.
        if len(buffer) <= chunk:
            return buffer
        source.append(buffer[chunk:])
        return buffer[:chunk]

    def _part_steps(
        self, name: str, key: str, upload_id: str, number: int, data: bytes | FilePart
    ) -> Steps[dict[str, Any]]:
        with aws_errors("UploadPart", self._where(name)):
            resp = yield Call(
                self._s3.upload_part,
                (),
                {
                    "Bucket": self.bucket,
                    "Key": key,
                    "UploadId": upload_id,
                    "PartNumber": number,
                    "Body": data,
                    "ChecksumAlgorithm": self._checksum,
                },
            )
        # Completion names each part's checksum, as S3 requires once declared.
        part = {"PartNumber": number, "ETag": resp["ETag"]}
        checksum = f"Checksum{self._checksum}"
        if checksum in resp:
            part[checksum] = resp[checksum]
        return part

    def _abort_steps(self, name: str, key: str, upload_id: str) -> Steps[None]:
        try:
            with aws_errors("AbortMultipartUpload", self._where(name)):
                yield Call(
                    self._s3.abort_multipart_upload,
                    (),
                    {"Bucket": self.bucket, "Key": key, "UploadId": upload_id},
                )
        except Exception as exc:
            # The original error matters more; an unaborted upload holds no
            # object (only parts, which a lifecycle rule expires).
            log.warning(
                "could not abort the multipart upload of %s: %s",
                self._where(name),
                type(exc).__name__,
            )

    # -- reading -----------------------------------------------------------------------
    def _get_steps(self, name: str, **ranged: str) -> Steps[Any]:
        """GetObject: the response, its ``Body`` a stream of the driver's kind."""
        with aws_errors("GetObject", self._where(name)):
            return (
                yield Call(
                    self._s3.get_object,
                    (),
                    {"Bucket": self.bucket, "Key": self._key(name), **ranged},
                )
            )

    def _info_steps(self, name: str) -> Steps[ObjectInfo]:
        with aws_errors("HeadObject", self._where(name)):
            resp = yield Call(
                self._s3.head_object, (), {"Bucket": self.bucket, "Key": self._key(name)}
            )
        return ObjectInfo(
            name=name,
            size=int(resp.get("ContentLength", 0)),
            content_type=resp.get("ContentType"),
            metadata=_decode_metadata(dict(resp.get("Metadata") or {})),
            etag=resp.get("ETag"),
            last_modified=resp.get("LastModified"),
        )

    def _pages(self, prefix: str) -> Any:
        """ListObjectsV2 pages under a checked prefix, fetched as they are iterated."""
        paginator = self._s3.get_paginator("list_objects_v2")
        return paginator.paginate(
            Bucket=self.bucket,
            Prefix=self._key(prefix),
            PaginationConfig={"PageSize": self.list_page_size},
        )

    def _listed(self, page: dict[str, Any]) -> list[ObjectInfo]:
        cut = len(self.prefix)
        return [
            ObjectInfo(
                name=str(item["Key"])[cut:],
                size=int(item.get("Size", 0)),
                etag=item.get("ETag"),
                last_modified=item.get("LastModified"),
            )
            for item in page.get("Contents", [])
        ]

    def _delete_steps(self, name: str) -> Steps[None]:
        # S3 deletes missing keys without complaint; the port promises
        # NotFound, so look first when the credentials may.
        with contextlib.suppress(PermissionDenied):
            yield from self._info_steps(name)
        with aws_errors("DeleteObject", self._where(name)):
            yield Call(self._s3.delete_object, (), {"Bucket": self.bucket, "Key": self._key(name)})

    def _signed_url_steps(self, name: str, method: str, expires: timedelta) -> Steps[str]:
        if not self.capabilities.signed_urls:
            raise ConfigurationError(
                f"{self._where(name)}: no credentials to sign URLs with (signed_urls is off)"
            )
        operation = "get_object" if method == "GET" else "put_object"
        with aws_errors("GeneratePresignedUrl", self._where(name)):
            url = yield Call(
                self._s3.generate_presigned_url,
                (),
                {
                    "ClientMethod": operation,
                    "Params": {"Bucket": self.bucket, "Key": self._key(name)},
                    "ExpiresIn": int(expires.total_seconds()),
                },
            )
        return str(url)

    # -- watching ----------------------------------------------------------------------
    def _notifications(self) -> tuple[Any, Callable[[Message], Iterator[ObjectInfo]]] | None:
        # The bucket's S3 event notifications, on the SQS queue they go to.
        if not self._notification_queue:
            return None
        from importlib import import_module

        module, _, attr = self.notification_broker.partition(":")
        broker_class = getattr(import_module(module), attr)
        queue = str(self._notification_queue)
        where = "queue_url" if queue.startswith(("https://", "http://")) else "queue_name"
        return broker_class(self._aws, **{where: queue}), self._created

    def _created(self, message: Message) -> Iterator[ObjectInfo]:
        """Objects created in this store that an S3 event notification announces."""
        try:
            event = json.loads(message.body)
        except ValueError:
            log.warning("ignoring a notification that is not JSON")
            return
        # s3:TestEvent (sent when notifications are configured) has no Records.
        for record in event.get("Records", []) if isinstance(event, dict) else []:
            s3 = record.get("s3") or {}
            if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
                continue
            if (s3.get("bucket") or {}).get("name") != self.bucket:
                continue
            obj = s3.get("object") or {}
            # Event keys are URL-encoded with '+' for spaces.
            key = unquote_plus(str(obj.get("key", "")))
            if not key.startswith(self.prefix):
                continue
            yield ObjectInfo(
                name=key[len(self.prefix) :],
                size=int(obj.get("size", 0)),
                etag=obj.get("eTag"),
            )
