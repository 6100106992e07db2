"""What the sync and the async Blob stores share: everything that does no I/O.

:class:`BlobStoreCommon` holds the URL and option parsing, the capabilities
a SAS grants, metadata encoding, SAS signing, the parsing of ``BlobCreated``
notifications, and the upload's decisions as steps (:mod:`iris_cloud.steps`):
one request or staged blocks, the early refusal of an existing name, the
block ids, and the conditional commit. The sync store drives them with
``azure.storage.blob``, the async one awaits ``azure.storage.blob.aio``.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

from azure.core import MatchConditions
from azure.storage.blob import (
    BlobBlock,
    BlobProperties,
    BlobSasPermissions,
    ContentSettings,
    generate_blob_sas,
)
from iris_cloud.errors import AlreadyExists, ConfigurationError
from iris_cloud.logs import get_logger
from iris_cloud.ports import Capabilities, Message, ObjectInfo
from iris_cloud.steps import Call, Steps

from iris_cloud_azure.errors import translate
from iris_cloud_azure.options import BLOB_CREDENTIAL_OPTIONS, NOTIFICATION_OPTIONS, TUNING_OPTIONS

log = get_logger("iris_cloud_azure.store")

__all__ = [
    "KEY_MARKER",
    "VALUE_MARKER",
    "BlobStoreCommon",
    "decode_metadata",
    "encode_metadata",
    "sas_permissions",
]

DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY = 4
# Downloads fetch ranges of this size. The SDK's default first range is 32 MB, and
# reading one range peaks at several times its size in transient buffers (measured
# ~9x with azure-storage-blob 12.31 on requests), so ranges stay small.
DEFAULT_READ_CHUNK_SIZE = 1024 * 1024
MAX_BLOCKS = 50_000  # Azure's limit of blocks in one block blob
BLOB_CREATED = "Microsoft.Storage.BlobCreated"

# Metadata names must be C# identifiers and values ASCII header text. Other
# names / values are stored encoded behind these markers and decoded on read;
# names or values that happen to start with a marker are encoded too, so the
# mapping stays reversible for every input.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
KEY_MARKER = "irisk_"
VALUE_MARKER = "iris-pct:"


def encode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Azure-safe metadata: hex-encoded names where not identifiers, percent-encoded values."""
    encoded: dict[str, str] = {}
    for key, value in metadata.items():
        if _IDENTIFIER.match(key) and not key.lower().startswith(KEY_MARKER):
            name = key
        else:
            name = KEY_MARKER + key.encode("utf-8").hex()
        plain = (
            value
            and value.isascii()
            and value.isprintable()
            and value == value.strip()
            and not value.startswith(VALUE_MARKER)
        )
        encoded[name] = value if plain else VALUE_MARKER + quote(value, safe="")
    return encoded


def decode_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The metadata as it was given to :func:`encode_metadata`."""
    decoded: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        key = name
        if name.lower().startswith(KEY_MARKER):
            try:
                key = bytes.fromhex(name[len(KEY_MARKER) :]).decode("utf-8")
            except ValueError:
                key = name  # written by someone else: keep it as stored
        if value.startswith(VALUE_MARKER):
            value = unquote(value[len(VALUE_MARKER) :])
        decoded[key] = value
    return decoded


def sas_permissions(sas: str) -> str | None:
    """The ``sp=`` permission letters of a SAS token or URL, or ``None`` if it has none."""
    query = sas.split("?", 1)[1] if "?" in sas else sas
    values = parse_qs(query.lstrip("?")).get("sp")
    return values[0] if values else None


class BlobStoreCommon(ABC):
    """The I/O-free half of ``AzureBlobStore`` and ``AsyncAzureBlobStore``.

    ``sas_permission`` is the ``sp=`` of the SAS in use, if any: it sets
    ``capabilities.can_read`` / ``can_list`` / ``can_write`` so a caller
    holding a write-only SAS knows not to read its uploads back. A subclass
    names its SDK ``ContainerClient`` class, the broker class of its
    notifications, and the credential used when none is given.
    """

    scheme: ClassVar[str] = "azblob"
    container_client_class: ClassVar[Any]
    """``azure.storage.blob.ContainerClient`` or its ``aio`` twin."""
    notification_broker: ClassVar[str]
    """Import path of the Service Bus broker class that carries notifications."""
    capabilities = Capabilities(conditional_create=True, signed_urls=False, native_watch=False)

    def __init__(
        self,
        container_client: Any,
        *,
        prefix: str = "",
        sas_permission: str | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        page_size: int | None = None,
        auth: str = "custom",
        notification_queue: str | None = None,
        notification_connection_string: str | None = None,
    ) -> None:
        if notification_queue is not None and not notification_queue.startswith("azuresb://"):
            raise ConfigurationError(
                "notification_queue must be an azuresb:// queue or topic subscription URL"
            )
        if block_size < 1 or max_concurrency < 1 or (page_size is not None and page_size < 1):
            raise ConfigurationError("block_size, max_concurrency and page_size must be positive")
        self._client = container_client
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._block_size = block_size
        self._max_concurrency = max_concurrency
        self._page_size = page_size
        self._auth = auth
        self._notification_queue = notification_queue
        self._notification_connection_string = notification_connection_string
        can_sign = self._shared_key() is not None
        native_watch = notification_queue is not None
        if sas_permission is None:
            self.capabilities = Capabilities(
                conditional_create=True, signed_urls=can_sign, native_watch=native_watch
            )
        else:
            self.capabilities = Capabilities(
                conditional_create=True,
                signed_urls=can_sign,
                native_watch=native_watch,
                can_read="r" in sas_permission,
                can_list="l" in sas_permission,
                can_write="w" in sas_permission or "c" in sas_permission,
            )

    @staticmethod
    @abstractmethod
    def default_credential() -> Any:
        """The credential when none is given (``DefaultAzureCredential``)."""

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``azblob://ACCOUNT/CONTAINER[/PREFIX]``.

        Options: one of ``connection_string``, ``sas_url``, ``sas_token``,
        ``account_key``, ``credential`` (default: ``DefaultAzureCredential``);
        ``account_url`` (also as a URL query parameter); ``block_size`` and
        ``max_concurrency`` for uploads; ``read_chunk_size`` for downloads;
        ``page_size`` for listings (the service's default is 5,000).
        """
        parts = urlsplit(url)
        if parts.scheme != cls.scheme:
            raise ConfigurationError(f"not an azblob:// URL (scheme {parts.scheme!r})")
        account = parts.hostname or ""
        container, _, prefix = parts.path.lstrip("/").partition("/")
        if not account or not container:
            raise ConfigurationError("azblob URL must be azblob://ACCOUNT/CONTAINER[/PREFIX]")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        for secret in ("sig", "sas_token", "account_key", "connection_string"):
            if secret in query:
                raise ConfigurationError(
                    f"credentials do not belong in the URL ({secret!r}): pass them as options"
                )
        settings = {**query, **options}
        unknown = set(settings) - {
            *BLOB_CREDENTIAL_OPTIONS,
            *TUNING_OPTIONS,
            *NOTIFICATION_OPTIONS,
            "account_url",
        }
        if unknown:
            raise ConfigurationError(f"unknown azblob option(s): {', '.join(sorted(unknown))}")
        given = [k for k in BLOB_CREDENTIAL_OPTIONS if settings.get(k)]
        if len(given) > 1:
            raise ConfigurationError(f"give one azblob credential, not {' and '.join(given)}")
        block_size = int(settings.get("block_size", DEFAULT_BLOCK_SIZE))
        read_chunk = int(settings.get("read_chunk_size", DEFAULT_READ_CHUNK_SIZE))
        sizes: dict[str, Any] = {
            "max_single_get_size": read_chunk,
            "max_chunk_get_size": read_chunk,
        }
        account_url = str(settings.get("account_url") or f"https://{account}.blob.core.windows.net")
        sas_permission: str | None = None
        kind = given[0] if given else "default_credential"
        client_class = cls.container_client_class
        if kind == "connection_string":
            conn = str(settings["connection_string"])
            sas = _connection_settings(conn).get("sharedaccesssignature")
            sas_permission = (sas_permissions(sas) or "") if sas else None
            client = client_class.from_connection_string(conn, container, **sizes)
            _check_account(client, account)
        elif kind == "sas_url":
            sas_url = str(settings["sas_url"])
            client = client_class.from_container_url(sas_url, **sizes)
            if client.container_name != container:
                raise ConfigurationError(
                    f"sas_url is for container {client.container_name!r}, the URL names "
                    f"{container!r}"
                )
            _check_account(client, account)
            sas_permission = sas_permissions(sas_url) or ""
        elif kind == "sas_token":
            token = str(settings["sas_token"]).lstrip("?")
            client = client_class(account_url, container, credential=token, **sizes)
            sas_permission = sas_permissions(token) or ""
        elif kind == "account_key":
            key = {"account_name": account, "account_key": str(settings["account_key"])}
            client = client_class(account_url, container, credential=key, **sizes)
        elif kind == "credential":
            client = client_class(
                account_url, container, credential=settings["credential"], **sizes
            )
        else:
            client = client_class(
                account_url, container, credential=cls.default_credential(), **sizes
            )
        return cls(
            client,
            prefix=prefix,
            sas_permission=sas_permission,
            block_size=block_size,
            max_concurrency=int(settings.get("max_concurrency", DEFAULT_MAX_CONCURRENCY)),
            page_size=int(settings["page_size"]) if settings.get("page_size") else None,
            auth=kind,
            notification_queue=settings.get("notification_queue") or None,
            notification_connection_string=settings.get("notification_connection_string") or None,
        )

    def __repr__(self) -> str:
        # Never the URL: a SAS URL carries its signature in the query string.
        return (
            f"{type(self).__name__}(account={self._client.account_name!r}, "
            f"container={self.container!r}, "
            f"prefix={self._prefix!r}, auth={self._auth})"
        )

    @property
    def container(self) -> str:
        """The container name."""
        return str(self._client.container_name)

    @property
    def prefix(self) -> str:
        """The prefix every object name is placed under ('' or ending in '/')."""
        return self._prefix

    @property
    def container_client(self) -> Any:
        """The SDK's ``ContainerClient`` in use (for what the port does not cover)."""
        return self._client

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _what(self, verb: str, name: str) -> str:
        return f"{verb} blob {name!r} in container {self.container!r}"

    def _shared_key(self) -> Any:
        credential = self._client.credential
        if hasattr(credential, "account_key") and hasattr(credential, "account_name"):
            return credential
        return None

    def _info_from(self, name: str, props: BlobProperties) -> ObjectInfo:
        settings = props.content_settings
        return ObjectInfo(
            name=name,
            size=int(props.size),
            content_type=settings.content_type if settings else None,
            metadata=decode_metadata(props.metadata),
            etag=props.etag,
            last_modified=props.last_modified,
        )

    # -- signing ----------------------------------------------------------------------
    def _sas_url(self, name: str, method: str, expires: timedelta) -> str:
        """A blob SAS URL signed with the account key (signing does no I/O)."""
        key = self._shared_key()
        if key is None:
            raise ConfigurationError(
                f"{self!r} cannot sign URLs: signing needs the account key (a connection string "
                "with AccountKey, or the account_key option); SAS and Entra ID credentials cannot"
            )
        if method == "GET":
            permission = BlobSasPermissions(read=True)
        else:
            permission = BlobSasPermissions(create=True, write=True)
        blob = self._client.get_blob_client(self._key(name))
        token = generate_blob_sas(
            account_name=key.account_name,
            container_name=self.container,
            blob_name=self._key(name),
            account_key=key.account_key,
            permission=permission,
            expiry=datetime.now(UTC) + expires,
        )
        return f"{blob.url}?{token}"

    # -- writing ----------------------------------------------------------------------
    def _put_steps(
        self,
        name: str,
        read: Callable[[int], Any],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
        stage: Callable[..., Any],
    ) -> Steps[ObjectInfo]:
        """Upload what ``read(n)`` gives as ``name``: one request, or blocks and a commit.

        ``stage(blob, first, read, block_size)`` stages the blocks (the
        driver's concurrency) and returns ``(block_ids, total)``.
        """
        blob = self._client.get_blob_client(self._key(name))
        settings = ContentSettings(content_type=content_type or "application/octet-stream")
        meta = encode_metadata(metadata)
        block_size = self._block_size
        if size is not None:
            # Stay under Azure's 50,000-block limit for very large known sizes.
            block_size = max(block_size, math.ceil(size / MAX_BLOCKS))
        with translate(self._what("write", name), "write", conditional=not overwrite):
            first = yield Call(read, (block_size,))
            if len(first) < block_size:
                # Fits one request: Put Blob, conditional on absence unless overwriting.
                result = yield Call(
                    blob.upload_blob,
                    (first,),
                    {
                        "length": len(first),
                        "overwrite": overwrite,
                        "content_settings": settings,
                        "metadata": meta,
                    },
                )
                total = len(first)
            else:
                if not overwrite and self.capabilities.can_read and (yield Call(blob.exists)):
                    # Fail before staging gigabytes; the commit below stays the real guard.
                    raise AlreadyExists(self._what("write", name) + ": the object already exists")
                block_ids, total = yield Call(stage, (blob, first, read, block_size))
                # If-None-Match: * makes the commit itself the atomic create-if-absent.
                conditions: dict[str, Any] = {}
                if not overwrite:
                    conditions = {"match_condition": MatchConditions.IfMissing}
                result = yield Call(
                    blob.commit_block_list,
                    ([BlobBlock(block_id) for block_id in block_ids],),
                    {"content_settings": settings, "metadata": meta, **conditions},
                )
        return ObjectInfo(
            name=name,
            size=total,
            content_type=settings.content_type,
            metadata=dict(metadata),
            etag=result.get("etag"),
            last_modified=result.get("last_modified"),
        )

    @staticmethod
    def _stage_steps(
        blob: Any, first: bytes, read: Callable[[int], Any], block_size: int, pool: Any
    ) -> Steps[tuple[list[str], int]]:
        """Stage blocks through ``pool`` (a :class:`~iris_cloud.parts.PartPool` or its async
        twin), reading the next only while it has room; nothing is committed."""
        # A fresh id prefix per upload: concurrent uploads of one name cannot mix blocks.
        upload = uuid.uuid4().hex
        block_ids: list[str] = []
        total = 0
        chunk = first
        while chunk:
            # Equal-length ids, as Azure requires; the SDK base64-encodes them.
            block_id = f"{upload}{len(block_ids):08d}"
            block_ids.append(block_id)
            yield Call(pool.submit, (blob.stage_block, block_id, chunk), {"length": len(chunk)})
            total += len(chunk)
            chunk = b""  # drop the reference before reading the next block
            chunk = yield Call(read, (block_size,))
        yield Call(pool.results)
        return block_ids, total

    # -- listing ----------------------------------------------------------------------
    def _list_pages(self, prefix: str) -> Any:
        """The SDK's pages of blobs under a checked prefix (fetched as they are iterated)."""
        return self._client.list_blobs(
            name_starts_with=self._key(prefix),
            include=["metadata"],
            results_per_page=self._page_size,
        ).by_page()

    # -- watching ----------------------------------------------------------------------
    def _notifications(self) -> tuple[Any, Callable[[Message], Iterator[ObjectInfo]]] | None:
        # The account's BlobCreated events, delivered by Event Grid to Service Bus.
        if self._notification_queue is None:
            return None
        from importlib import import_module

        module, _, name = self.notification_broker.partition(":")
        broker_class = getattr(import_module(module), name)
        credential = self._notification_connection_string
        options = {"connection_string": credential} if credential else {}
        return broker_class.from_url(self._notification_queue, **options), self._blobs_created

    def _blobs_created(self, message: Message) -> Iterator[ObjectInfo]:
        """The blobs of this store a BlobCreated event announces (Event Grid or CloudEvents)."""
        try:
            payload = json.loads(message.body)
        except ValueError:
            log.warning("ignoring a notification that is not JSON")
            return
        account = f"/storageAccounts/{self._client.account_name}"
        for event in payload if isinstance(payload, list) else [payload]:
            if not isinstance(event, dict):
                continue
            if (event.get("eventType") or event.get("type")) != BLOB_CREATED:
                continue
            source = str(event.get("topic") or event.get("source") or "")
            if source and not source.endswith(account):
                continue
            # /blobServices/default/containers/CONTAINER/blobs/NAME, the name unencoded.
            head, found, key = str(event.get("subject", "")).partition("/blobs/")
            if not found or head.rsplit("/", 1)[-1] != self.container:
                continue
            if not key.startswith(self._prefix):
                continue
            data = event.get("data") or {}
            yield ObjectInfo(
                name=key[len(self._prefix) :],
                size=int(data.get("contentLength") or 0),
                content_type=data.get("contentType"),
                etag=data.get("eTag"),
            )


def _connection_settings(conn: str) -> dict[str, str]:
    """``Key=Value;...`` pairs of a connection string, keys lower-cased (values may hold '=')."""
    pairs = (part.split("=", 1) for part in conn.split(";") if "=" in part)
    return {key.strip().lower(): value.strip() for key, value in pairs}


def _check_account(client: Any, account: str) -> None:
    if client.account_name and client.account_name != account:
        raise ConfigurationError(
            f"the credentials are for storage account {client.account_name!r}, the URL names "
            f"{account!r}"
        )
