"""``gs://BUCKET/PREFIX``: a Cloud Storage bucket (optionally under a prefix) as an ObjectStore.

Uploads go through google-cloud-storage's media uploads: up to 8 MiB in one
multipart request, larger or unsized streams as a resumable upload sent in
``chunk_size`` pieces, so memory stays constant whatever the file size.
``put(overwrite=False)`` sends ``ifGenerationMatch=0``, which Cloud Storage
enforces atomically. Reads stream through ranged downloads pinned to the
generation that was current when the read began.

Options (URL query or keywords; credentials only as keywords):

``endpoint``
    Another API endpoint, e.g. ``http://127.0.0.1:9023`` for
    gcp-storage-emulator (``STORAGE_EMULATOR_HOST`` is honoured too). A plain
    ``http://`` endpoint is treated as an emulator: anonymous credentials
    unless some are given, ``conditional_create`` and ``signed_urls`` off.
``project``
    Project for the client (only bucket-level calls need one).
``credentials_file`` / ``credentials_json`` / ``credentials``
    A key file path, key file text, or a google-auth credentials object;
    Application Default Credentials otherwise.
``chunk_size``
    Bytes per resumable-upload request and per streamed read (multiple of
    256 KiB; default 8 MiB).
``notification_subscription``
    A Pub/Sub subscription (``projects/P/subscriptions/S`` or ``S`` in
    ``project``) attached to the bucket's OBJECT_FINALIZE notifications;
    ``watch`` then reads it instead of polling.
``emulator_host``
    Pub/Sub emulator (``host:port``) for ``notification_subscription``;
    ``PUBSUB_EMULATOR_HOST`` is honoured too.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import IO, Any, Self, cast
from urllib.parse import urlsplit

import google.auth.transport.requests
from google.auth.credentials import Signing
from google.cloud import storage
from google.cloud.storage.fileio import BlobReader
from iris_cloud.errors import ConfigurationError, NotFound
from iris_cloud.ports import (
    Capabilities,
    Message,
    MessageBroker,
    NotificationParser,
    ObjectInfo,
    ObjectStore,
    check_object_name,
)

from iris_cloud_gcp._clients import (
    GoogleAuth,
    as_int,
    merge_query,
    pubsub_emulator_host,
    resolve_auth,
)
from iris_cloud_gcp.errors import gcp_errors
from iris_cloud_gcp.options import STORE_OPTIONS

__all__ = ["GcsStore"]

_CHUNK_QUANTUM = 256 * 1024


def _normalise_endpoint(value: str | None) -> str | None:
    if not value:
        return None
    value = value.rstrip("/")
    return value if "://" in value else f"http://{value}"


def _subscription_path(value: str, project: str | None) -> str:
    if value.startswith("projects/"):
        parts = value.split("/")
        if len(parts) != 4 or parts[2] != "subscriptions" or not parts[1] or not parts[3]:
            raise ConfigurationError(
                "notification_subscription must be projects/P/subscriptions/S or a bare name"
            )
        return value
    if not project:
        raise ConfigurationError(
            "notification_subscription is a bare name: set project, or give "
            "projects/P/subscriptions/S"
        )
    return f"projects/{project}/subscriptions/{value}"


def _at_start(stream: IO[bytes]) -> bool:
    """Whether the upload can take ``stream`` as it is: seekable and at offset 0."""
    try:
        return stream.seekable() and stream.tell() == 0
    except (OSError, ValueError):
        return False


class _UploadStream(io.RawIOBase):
    """The caller's stream as the resumable upload wants it: starting at 0, rewindable.

    The upload asks ``tell()`` before the first chunk and, when Cloud Storage
    reports it kept only part of a chunk, seeks back into that chunk. Callers
    hand us pipes, sockets and generators that cannot seek, or files not at
    offset 0; this keeps a reference to the last read (one chunk, no copy) so
    that a rewind into it works, and positions are counted from where the
    stream was when the upload began.
    """

    def __init__(self, source: IO[bytes]) -> None:
        super().__init__()
        self._source = source
        self._pos = 0
        self._last = b""
        self._last_start = 0
        self._served = 0  # bytes of the source consumed so far

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self._pos + offset}.get(whence)
        if target is None or not self._last_start <= target <= self._served:
            raise io.UnsupportedOperation("upload stream can only rewind into its last chunk")
        self._pos = target
        return target

    def read(self, size: int | None = -1) -> bytes:
        if self._pos < self._served:
            # Replaying part of the last chunk after a rewind.
            start = self._pos - self._last_start
            end = len(self._last) if size is None or size < 0 else start + size
            data = self._last[start:end]
            self._pos += len(data)
            return data
        data = self._source.read(-1 if size is None else size) or b""
        self._last, self._last_start = data, self._served
        self._served += len(data)
        self._pos = self._served
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _GcsReader(io.BufferedIOBase):
    """A BlobReader whose errors arrive as iris-cloud errors."""

    def __init__(self, reader: BlobReader, target: str) -> None:
        super().__init__()
        self._reader = reader
        self._target = target

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with gcp_errors("read", self._target):
            data: bytes = self._reader.read(-1 if size is None else size)
            return data

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with gcp_errors("read", self._target):
            position: int = self._reader.seek(offset, whence)
            return position

    def tell(self) -> int:
        position: int = self._reader.tell()
        return position

    def close(self) -> None:
        self._reader.close()
        super().close()


class GcsStore(ObjectStore):
    """A Cloud Storage bucket, optionally under a prefix (``gs://BUCKET/PREFIX``).

    Construct it with :meth:`from_url`, or directly with a ready
    :class:`google.cloud.storage.Client` (``signer`` then gives credentials
    for :meth:`signed_url`, e.g. a service account while the client itself
    talks to an emulator anonymously).
    """

    scheme = "gs"
    capabilities = Capabilities(conditional_create=True, signed_urls=True, native_watch=False)

    def __init__(
        self,
        client: storage.Client,
        bucket: str,
        prefix: str = "",
        *,
        auth: GoogleAuth | None = None,
        signer: Any = None,
        emulator: bool = False,
        chunk_size: int = ObjectStore.chunk_size,
        notification_subscription: str | None = None,
        pubsub_emulator: str | None = None,
    ) -> None:
        if chunk_size <= 0 or chunk_size % _CHUNK_QUANTUM:
            raise ConfigurationError("chunk_size must be a positive multiple of 256 KiB")
        self._client = client
        self._bucket_name = bucket
        self._bucket = client.bucket(bucket)
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._auth = auth
        self._signer = signer
        self._emulator = emulator
        self._chunk = chunk_size
        self._notification_subscription = notification_subscription
        self._pubsub_emulator = pubsub_emulator
        self.capabilities = Capabilities(
            # gcp-storage-emulator accepts ifGenerationMatch=0 and overwrites anyway.
            conditional_create=not emulator,
            signed_urls=self._can_sign(),
            native_watch=notification_subscription is not None,
        )

    def __repr__(self) -> str:
        source = self._auth.source if self._auth else "client"
        return (
            f"GcsStore(bucket={self._bucket_name!r}, prefix={self._prefix!r}, "
            f"emulator={self._emulator}, credentials={source})"
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``gs://BUCKET/PREFIX`` with the options in the module docstring."""
        parts = urlsplit(url)
        if parts.scheme != cls.scheme or not parts.netloc:
            raise ConfigurationError("store URL must look like gs://BUCKET/PREFIX")
        opts = merge_query(parts.query, options)
        unknown = sorted(set(opts) - STORE_OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"unknown gs:// option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(STORE_OPTIONS))}"
            )
        endpoint = _normalise_endpoint(
            opts.get("endpoint") or os.environ.get("STORAGE_EMULATOR_HOST")
        )
        # Google's endpoints are all TLS; plain http is an emulator or a test double.
        emulator = endpoint is not None and endpoint.startswith("http://")
        auth = resolve_auth(
            credentials=opts.get("credentials"),
            credentials_file=opts.get("credentials_file"),
            credentials_json=opts.get("credentials_json"),
            project=opts.get("project"),
            emulator=emulator,
        )
        client_options = {"api_endpoint": endpoint} if endpoint else None
        with gcp_errors("connect", f"gs://{parts.netloc}"):
            client = storage.Client(
                project=auth.project, credentials=auth.credentials, client_options=client_options
            )
        subscription = opts.get("notification_subscription")
        return cls(
            client,
            parts.netloc,
            parts.path,
            auth=auth,
            signer=None if auth.anonymous else auth.credentials,
            emulator=emulator,
            chunk_size=as_int(opts.get("chunk_size", cls.chunk_size), "chunk_size", minimum=1),
            notification_subscription=(
                _subscription_path(subscription, auth.project) if subscription else None
            ),
            pubsub_emulator=pubsub_emulator_host(opts.get("emulator_host")),
        )

    # -- helpers ---------------------------------------------------------------
    @property
    def container(self) -> str:
        """The bucket name."""
        return self._bucket_name

    @property
    def prefix(self) -> str:
        """The prefix every object name is placed under ('' or ending in '/')."""
        return self._prefix

    @property
    def emulator(self) -> bool:
        """True when the store talks to an emulator (a plain-http endpoint)."""
        return self._emulator

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _target(self, name: str = "") -> str:
        return f"gs://{self._bucket_name}/{self._prefix}{name}"

    def _info_from_blob(self, blob: storage.Blob) -> ObjectInfo:
        return ObjectInfo(
            name=blob.name[len(self._prefix) :],
            size=int(blob.size or 0),
            content_type=blob.content_type,
            metadata=dict(blob.metadata or {}),
            etag=blob.etag,
            last_modified=blob.updated,
        )

    # -- writing ---------------------------------------------------------------
    def _put(
        self,
        name: str,
        stream: IO[bytes],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> ObjectInfo:
        blob = self._bucket.blob(self._key(name), chunk_size=self._chunk)
        blob.metadata = metadata or None
        if not _at_start(stream):
            stream = cast(IO[bytes], _UploadStream(stream))
        with gcp_errors("write", self._target(name)):
            blob.upload_from_file(
                stream,
                size=size,
                content_type=content_type,
                # 0 = "only if no live object has this name": atomic on Cloud Storage.
                if_generation_match=None if overwrite else 0,
            )
        return self._info_from_blob(blob)

    # -- reading ---------------------------------------------------------------
    def get(self, name: str) -> bytes:
        """The whole content of ``name`` in one download request."""
        check_object_name(name)
        with gcp_errors("read", self._target(name)):
            data: bytes = self._bucket.blob(self._key(name)).download_as_bytes()
            return data

    def _open_read(self, name: str) -> IO[bytes]:
        target = self._target(name)
        with gcp_errors("read", target):
            blob = self._bucket.get_blob(self._key(name))
        if blob is None:
            raise NotFound(f"{target} does not exist")
        # Pinning the generation makes a concurrent overwrite fail the next
        # range request instead of splicing two versions together.
        reader = BlobReader(blob, chunk_size=self._chunk, if_generation_match=blob.generation)
        return cast(IO[bytes], _GcsReader(reader, target))

    def _info(self, name: str) -> ObjectInfo:
        target = self._target(name)
        with gcp_errors("read", target):
            blob = self._bucket.get_blob(self._key(name))
        if blob is None:
            raise NotFound(f"{target} does not exist")
        return self._info_from_blob(blob)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        with gcp_errors("list", self._target(prefix)):
            for blob in self._client.list_blobs(self._bucket_name, prefix=self._key(prefix)):
                yield self._info_from_blob(blob)

    def _delete(self, name: str) -> None:
        with gcp_errors("delete", self._target(name)):
            self._bucket.blob(self._key(name)).delete()

    # -- signed URLs -----------------------------------------------------------
    def _can_sign(self) -> bool:
        if self._signer is None:
            return False
        # Service-account keys sign locally; metadata-server credentials
        # (Cloud Run, GKE, GCE) sign through the IAM signBlob API.
        return isinstance(self._signer, Signing) or hasattr(self._signer, "service_account_email")

    def _signed_url(self, name: str, method: str, expires: timedelta) -> str:
        if not self._can_sign():
            raise ConfigurationError(
                f"{self._target()} cannot sign URLs: the credentials "
                f"({self._auth.source if self._auth else 'client'}) hold no service-account "
                "key; use a service account key file or run as a service account with "
                "iam.serviceAccounts.signBlob on itself"
            )
        blob = self._bucket.blob(self._key(name))
        kwargs: dict[str, Any] = {}
        if self._emulator:
            kwargs["api_access_endpoint"] = self._client.api_endpoint
        if isinstance(self._signer, Signing):
            kwargs["credentials"] = self._signer
        else:
            with gcp_errors("sign", self._target(name)):
                if not self._signer.valid:
                    self._signer.refresh(google.auth.transport.requests.Request())
            kwargs["service_account_email"] = self._signer.service_account_email
            kwargs["access_token"] = self._signer.token
        with gcp_errors("sign", self._target(name)):
            url: str = blob.generate_signed_url(
                version="v4", expiration=expires, method=method, **kwargs
            )
        return url

    # -- watching --------------------------------------------------------------
    def _notifications(
        self,
    ) -> tuple[MessageBroker, NotificationParser] | None:
        # The bucket's OBJECT_FINALIZE notifications, on their Pub/Sub subscription.
        if self._notification_subscription is None:
            return None
        from iris_cloud_gcp.broker import PubSubBroker

        broker = PubSubBroker(
            topic=None,
            subscription=self._notification_subscription,
            auth=self._auth or resolve_auth(emulator=self._pubsub_emulator is not None),
            emulator_host=self._pubsub_emulator,
        )
        return broker, self._finalized

    def _finalized(self, message: Message) -> Iterator[ObjectInfo]:
        """The object of this store that an OBJECT_FINALIZE notification announces."""
        attributes = message.properties
        if attributes.get("eventType") != "OBJECT_FINALIZE":
            return
        if attributes.get("bucketId") != self._bucket_name:
            return
        key = str(attributes.get("objectId", ""))
        if not key.startswith(self._prefix):
            return
        if attributes.get("payloadFormat") == "JSON_API_V1" and message.body:
            resource = json.loads(message.body)
            updated = resource.get("updated")
            yield ObjectInfo(
                name=key[len(self._prefix) :],
                size=int(resource.get("size", 0)),
                content_type=resource.get("contentType"),
                metadata=dict(resource.get("metadata") or {}),
                etag=resource.get("etag"),
                last_modified=(
                    datetime.fromisoformat(updated.replace("Z", "+00:00")) if updated else None
                ),
            )
            return
        # payloadFormat NONE: the notification names the object only.
        try:
            yield self._info(key[len(self._prefix) :])
        except NotFound:
            return  # deleted again before we looked

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()
