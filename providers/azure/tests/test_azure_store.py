"""``azblob://`` against Azurite: the store contract, SAS rights, streaming and metadata."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator

import iris_cloud
import pytest
from iris_cloud.aio import AsyncObjectStore
from iris_cloud.errors import AlreadyExists, ConfigurationError, NotFound, PermissionDenied
from iris_cloud.ports import ObjectStore
from iris_cloud.testing import StoreContract, Watcher
from iris_cloud_azure._blob import BlobStoreCommon
from iris_cloud_azure.broker import ServiceBusBroker
from iris_cloud_azure.store import (
    KEY_MARKER,
    VALUE_MARKER,
    AzureBlobStore,
    decode_metadata,
    encode_metadata,
    sas_permissions,
)
from iris_cloud_azure.testing import AzuriteServer, BlobStoreEnv, ServiceBusServer, unique_name


@pytest.fixture
def store_env(azurite_server: AzuriteServer) -> BlobStoreEnv:
    return BlobStoreEnv(azurite_server)


class TestAzureBlobContract(StoreContract):
    """The shared store contract on Azurite, with account-key and SAS-URL credentials."""

    @pytest.fixture
    def store_env(self, azurite_server: AzuriteServer) -> BlobStoreEnv:
        # Page size 5 against 16 objects in the listing test exercises paging.
        return BlobStoreEnv(azurite_server, page_size=5)


@pytest.fixture
def container(azurite_server: AzuriteServer) -> str:
    name = unique_name("unit")
    azurite_server.create_container(name)
    return name


@pytest.fixture
def full(azurite_server: AzuriteServer, container: str) -> Iterator[AzureBlobStore]:
    with AzureBlobStore.from_url(
        azurite_server.store_url(container), connection_string=azurite_server.connection_string
    ) as store:
        yield store


# -- metadata encoding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        {"ClientGuid": "abc", "laterality": "OS"},
        {"with-dash": "x", "1starts_with_digit": "y", "dot.ted": "z", "空": "v"},
        {"patient": "José Ñúñez 山田", "padded": "  spaced  ", "tab": "a\tb", "nl": "a\nb"},
        {KEY_MARKER + "41": "looks encoded", "v": VALUE_MARKER + "41", "empty": ""},
    ],
)
def test_metadata_encoding_round_trips(metadata: dict[str, str]) -> None:
    encoded = encode_metadata(metadata)
    for key, value in encoded.items():
        assert key.isidentifier() and key.isascii()
        assert value.isascii() and value.isprintable() and value == value.strip()
    assert decode_metadata(encoded) == metadata


def test_plain_metadata_is_stored_unchanged() -> None:
    # Other tools reading the container see ordinary metadata where it is ordinary.
    assert encode_metadata({"ClientGuid": "0b3c", "Laterality": "OD"}) == {
        "ClientGuid": "0b3c",
        "Laterality": "OD",
    }


def test_unicode_metadata_through_azurite(full: AzureBlobStore) -> None:
    meta = {"patient-name": "Zoë 眼底 📷", "Plain": "ascii", "trailing ": " x "}
    full.put("m.jpg", b"j", content_type="image/jpeg", metadata=meta)
    assert dict(full.info("m.jpg").metadata) == meta
    assert [dict(o.metadata) for o in full.list()] == [meta]
    raw = full.container_client.get_blob_client("m.jpg").get_blob_properties().metadata
    assert raw["Plain"] == "ascii"  # stored as given where Azure allows it


def test_sas_permissions_parsing() -> None:
    assert sas_permissions("https://a.blob.core.windows.net/c?sv=2024&sp=cw&sig=x") == "cw"
    assert sas_permissions("?sp=rl&sig=x") == "rl"
    assert sas_permissions("sv=1&sig=x") is None


@pytest.mark.parametrize("port", [ObjectStore, AsyncObjectStore])
def test_a_store_without_the_credential_hook_cannot_be_made(port: type) -> None:
    # Refused when made, not when an endpoint opened without credentials calls the hook.
    class Half(BlobStoreCommon, port):
        pass

    with pytest.raises(TypeError, match=r"abstract method.*\bdefault_credential\b"):
        Half()


# -- credentials and capabilities -------------------------------------------------------


def test_write_only_sas_capabilities(azurite_server: AzuriteServer, container: str) -> None:
    store = AzureBlobStore.from_url(
        azurite_server.store_url(container),
        sas_url=azurite_server.container_sas_url(container, "cw"),
    )
    caps = store.capabilities
    assert (caps.can_write, caps.can_read, caps.can_list, caps.signed_urls) == (
        True,
        False,
        False,
        False,
    )
    info = store.put("upload/eye.jpg", b"jpeg", content_type="image/jpeg", metadata={"k": "v"})
    # The receipt is what a write-only holder trusts (Image First workflow).
    assert info.name == "upload/eye.jpg" and info.size == 4 and info.etag
    with pytest.raises(AlreadyExists):
        store.put("upload/eye.jpg", b"again")
    with pytest.raises(PermissionDenied) as exc:
        store.delete("upload/eye.jpg")
    assert exc.value.right == "delete"
    with pytest.raises(ConfigurationError, match="account key"):
        store.signed_url("upload/eye.jpg")
    # A missing object is still a refusal, not "absent": the SAS may not look.
    with pytest.raises(PermissionDenied) as exc:
        store.exists("nothing-here")
    assert exc.value.right == "read"


def test_sas_token_option(azurite_server: AzuriteServer, container: str) -> None:
    token = azurite_server.container_sas(container, "rl")
    store = AzureBlobStore.from_url(
        azurite_server.store_url(container),
        sas_token=token,
        account_url=azurite_server.account_url,
    )
    assert store.capabilities.can_read and not store.capabilities.can_write
    with pytest.raises(PermissionDenied) as exc:
        store.put("x", b"x")
    assert exc.value.right == "write"
    assert list(store.list()) == []


def test_account_key_option_signs(azurite_server: AzuriteServer, container: str) -> None:
    url = f"{azurite_server.store_url(container)}?account_url={azurite_server.account_url}"
    with AzureBlobStore.from_url(url, account_key=azurite_server.account_key) as store:
        assert store.capabilities.signed_urls
        store.put("k", b"key")
        assert store.get("k") == b"key"
        assert "sig=" in store.signed_url("k")


def test_repr_hides_credentials(azurite_server: AzuriteServer, container: str) -> None:
    sas_url = azurite_server.container_sas_url(container, "cw")
    store = AzureBlobStore.from_url(azurite_server.store_url(container), sas_url=sas_url)
    text = repr(store)
    assert "sig" not in text and sas_url.split("sig=")[1][:10] not in text
    assert container in text
    keyed = AzureBlobStore.from_url(
        azurite_server.store_url(container), connection_string=azurite_server.connection_string
    )
    assert azurite_server.account_key[:12] not in repr(keyed)


def test_refusal_messages_carry_no_secret(azurite_server: AzuriteServer, container: str) -> None:
    sas_url = azurite_server.container_sas_url(container, "cw")
    store = AzureBlobStore.from_url(azurite_server.store_url(container), sas_url=sas_url)
    with pytest.raises(PermissionDenied) as exc:
        store.get("x")
    signature = sas_url.split("sig=")[1].split("&")[0]
    assert signature not in str(exc.value)
    assert "sig=" not in str(exc.value)


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("azblob://acct", {"account_key": "k"}, "ACCOUNT/CONTAINER"),
        ("s3://acct/c", {"account_key": "k"}, "azblob"),
        ("azblob://acct/c?sig=abc", {}, "credentials do not belong"),
        ("azblob://acct/c", {"account_key": "k", "sas_token": "sp=r"}, "one azblob credential"),
        ("azblob://acct/c", {"account_key": "k", "colour": "blue"}, "unknown azblob option"),
    ],
)
def test_bad_configuration(url: str, options: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        AzureBlobStore.from_url(url, **options)


def test_sas_url_for_another_container(azurite_server: AzuriteServer, container: str) -> None:
    with pytest.raises(ConfigurationError, match="container"):
        AzureBlobStore.from_url(
            azurite_server.store_url("other-container"),
            sas_url=azurite_server.container_sas_url(container, "cw"),
        )


def test_connection_string_for_another_account(azurite_server: AzuriteServer) -> None:
    with pytest.raises(ConfigurationError, match="storage account"):
        AzureBlobStore.from_url(
            "azblob://someoneelse/c", connection_string=azurite_server.connection_string
        )


# -- uploads ----------------------------------------------------------------------------


def test_block_upload_conditional_and_overwrite(
    azurite_server: AzuriteServer, container: str
) -> None:
    store = AzureBlobStore.from_url(
        azurite_server.store_url(container, "pre/fix"),
        connection_string=azurite_server.connection_string,
        block_size=64 * 1024,
        max_concurrency=2,
    )
    data = bytes(range(256)) * 1000  # 256,000 bytes: four blocks
    info = store.put("big.bin", io.BytesIO(data), content_type="application/dicom")
    assert info.size == len(data)
    blocks = store.container_client.get_blob_client("pre/fix/big.bin").get_block_list()[0]
    assert len(blocks) == 4
    with pytest.raises(AlreadyExists):
        store.put("big.bin", io.BytesIO(b"y" * len(data)))
    assert store.get("big.bin") == data
    store.put("big.bin", io.BytesIO(data[::-1]), overwrite=True)
    assert store.get("big.bin") == data[::-1]
    assert [o.name for o in store.list()] == ["big.bin"]
    assert store.info("big.bin").content_type == "application/octet-stream"


def test_write_only_block_upload_cannot_replace(
    azurite_server: AzuriteServer, container: str, full: AzureBlobStore
) -> None:
    # Without read rights the pre-check is skipped: the commit's If-None-Match guards.
    full.put("taken.bin", b"original")
    store = AzureBlobStore.from_url(
        azurite_server.store_url(container),
        sas_url=azurite_server.container_sas_url(container, "cw"),
        block_size=64 * 1024,
    )
    with pytest.raises(AlreadyExists):
        store.put("taken.bin", io.BytesIO(b"z" * 200_000))
    assert full.get("taken.bin") == b"original"
    store.put("fresh.bin", io.BytesIO(b"z" * 200_000))
    assert full.info("fresh.bin").size == 200_000


def test_failed_block_upload_commits_nothing(
    azurite_server: AzuriteServer, container: str, full: AzureBlobStore
) -> None:
    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            if self.sent >= 300_000:
                raise OSError("disk gone")
            n = min(len(buffer), 50_000)
            buffer[:n] = b"d" * n
            self.sent += n
            return n

    store = AzureBlobStore.from_url(
        azurite_server.store_url(container),
        connection_string=azurite_server.connection_string,
        block_size=64 * 1024,
    )
    with pytest.raises(OSError, match="disk gone"):
        store.put("half.bin", Failing())
    assert not full.exists("half.bin")
    assert list(full.list()) == []


def test_delete_missing_and_info_missing(full: AzureBlobStore) -> None:
    with pytest.raises(NotFound):
        full.delete("ghost")
    with pytest.raises(NotFound):
        full.info("ghost")


# -- plugin resolution ------------------------------------------------------------------


def test_open_store_resolves_azblob(azurite_server: AzuriteServer, container: str) -> None:
    store = iris_cloud.open_store(
        azurite_server.store_url(container), connection_string=azurite_server.connection_string
    )
    assert isinstance(store, AzureBlobStore)
    store.put("via-plugin", b"p")
    assert store.get("via-plugin") == b"p"
    store.close()


# -- watch through Event Grid events --------------------------------------------------------


def _blob_created(
    store: AzureBlobStore, name: str, *, container: str | None = None, cloud_events: bool = False
) -> bytes:
    """The BlobCreated event Event Grid delivers to Service Bus for blob ``name``."""
    props = store.container_client.get_blob_client(name).get_blob_properties()
    account = (
        "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/"
        + store.container_client.account_name
    )
    subject = f"/blobServices/default/containers/{container or store.container}/blobs/{name}"
    data = {
        "api": "PutBlockList",
        "eTag": props.etag.strip('"'),
        "contentType": props.content_settings.content_type,
        "contentLength": props.size,
        "blobType": "BlockBlob",
        "url": f"https://example.blob.core.windows.net/{store.container}/{name}",
    }
    if cloud_events:
        event = {"specversion": "1.0", "type": "Microsoft.Storage.BlobCreated", "source": account}
    else:
        event = {"eventType": "Microsoft.Storage.BlobCreated", "topic": account}
    return json.dumps({**event, "id": str(uuid.uuid4()), "subject": subject, "data": data}).encode()


def test_watch_follows_event_grid_blob_created(
    azurite_server: AzuriteServer, sb_server: ServiceBusServer, container: str
) -> None:
    queue = unique_name("blob-events")
    sb_server.create_queue(queue)
    store = AzureBlobStore.from_url(
        azurite_server.store_url(container, "site"),
        connection_string=azurite_server.connection_string,
        notification_queue=sb_server.url(queue),
        notification_connection_string=sb_server.connection_string(),
    )
    assert store.capabilities.native_watch
    grid = ServiceBusBroker.from_url(
        sb_server.url(queue), connection_string=sb_server.connection_string()
    )
    with store, grid:
        store.put("inbox/old.jpg", b"old", content_type="image/jpeg")
        with Watcher(store, "inbox/", poll_interval=0.5) as watcher:
            store.put("inbox/od 1.jpg", b"left eye", content_type="image/jpeg")
            store.put("inbox/os.dcm", b"right eye", content_type="application/dicom")
            store.put("outbox/x.jpg", b"elsewhere")
            grid.send(
                [
                    _blob_created(store, "site/inbox/old.jpg"),  # existed when the watch began
                    b"not json",
                    _blob_created(store, "site/outbox/x.jpg"),  # outside the watched prefix
                    _blob_created(store, "site/inbox/od 1.jpg", container="other"),
                    json.dumps({"eventType": "Microsoft.Storage.BlobDeleted"}).encode(),
                    _blob_created(store, "site/inbox/od 1.jpg"),
                    _blob_created(store, "site/inbox/od 1.jpg"),  # delivered twice
                    _blob_created(store, "site/inbox/os.dcm", cloud_events=True),
                ]
            )
            watcher.wait_for(2)
            time.sleep(1.0)  # room for a stray third
        seen = watcher.seen
        assert [o.name for o in seen] == ["inbox/od 1.jpg", "inbox/os.dcm"]
        assert [o.size for o in seen] == [8, 9]
        assert seen[1].content_type == "application/dicom"
        # The ETag matches the one the store reports, so dedupe against listings works.
        assert seen[0].etag == store.info("inbox/od 1.jpg").etag
        # Every event was settled, the skipped ones too.
        assert grid.peek(10) == []


def test_notification_queue_must_be_service_bus(azurite_server: AzuriteServer) -> None:
    with pytest.raises(ConfigurationError, match="notification_queue"):
        AzureBlobStore.from_url(
            azurite_server.store_url("c1"),
            connection_string=azurite_server.connection_string,
            notification_queue="https://example.queue.core.windows.net/events",
        )
