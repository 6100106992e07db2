"""gs:// beyond the contract: URLs and options, prefixes, signing, notifications, streams."""

from __future__ import annotations

import io
import json
import os
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import iris_cloud
import pytest
from google.oauth2 import service_account
from iris_cloud.errors import ConfigurationError, IrisCloudError, NotFound
from iris_cloud.plugins import providers
from iris_cloud.testing import Watcher
from iris_cloud_gcp.store import GcsStore, _UploadStream
from iris_cloud_gcp.testing import GcpServers, GcsEmulator, PubSubAdmin


@pytest.fixture
def bucket(gcs: GcsEmulator) -> str:
    return gcs.create_bucket()


@pytest.fixture
def store(gcs: GcsEmulator, bucket: str) -> GcsStore:
    return GcsStore.from_url(f"gs://{bucket}", endpoint=gcs.endpoint)


# -- opening -------------------------------------------------------------------------


def test_open_store_through_plugin(gcs: GcsEmulator, bucket: str) -> None:
    with iris_cloud.open_store(f"gs://{bucket}/images", endpoint=gcs.endpoint) as store:
        assert isinstance(store, GcsStore)
        assert store.container == bucket
        assert store.prefix == "images/"
        store.put("x.jpg", b"x")
        assert store.get("x.jpg") == b"x"
    gcp = [p for p in providers() if "gs" in p.store_schemes]
    assert len(gcp) == 1 and gcp[0].distribution == "iris-cloud-gcp"
    assert gcp[0].broker_schemes.keys() == {"gcppubsub"}


def test_endpoint_as_query_parameter(gcs: GcsEmulator, bucket: str) -> None:
    query = urllib.parse.urlencode({"endpoint": gcs.endpoint})
    with GcsStore.from_url(f"gs://{bucket}/p?{query}") as store:
        assert store.emulator
        store.put("q", b"q")
        assert [o.name for o in store.list()] == ["q"]


def test_storage_emulator_host_is_honoured(
    gcs: GcsEmulator, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint.removeprefix("http://"))
    with GcsStore.from_url(f"gs://{bucket}") as store:
        assert store.emulator
        assert "anonymous" in repr(store)
        store.put("env", b"e")
        assert store.get("env") == b"e"


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("gs:///prefix", {}, "gs://BUCKET"),
        ("s3://bucket", {}, "gs://BUCKET"),
        ("gs://b", {"region": "x"}, "unknown gs:// option"),
        ("gs://b?credentials_file=/k.json", {}, "keyword options"),
        ("gs://b?credentials_json=x", {}, "keyword options"),
        ("gs://b", {"chunk_size": "1000"}, "256 KiB"),
        ("gs://b", {"chunk_size": "many"}, "integer"),
        ("gs://b", {"notification_subscription": "projects/p/topics/t"}, "subscriptions"),
    ],
)
def test_bad_urls_and_options(
    gcs: GcsEmulator, url: str, options: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        GcsStore.from_url(url, endpoint=gcs.endpoint, **options)


def test_credentials_never_in_repr_or_errors(
    gcs: GcsEmulator, bucket: str, service_account_info: dict[str, str]
) -> None:
    key_text = json.dumps(service_account_info)
    store = GcsStore.from_url(f"gs://{bucket}", endpoint=gcs.endpoint)
    assert "private" not in repr(store)
    with pytest.raises(ConfigurationError) as exc:
        GcsStore.from_url(f"gs://{bucket}", endpoint=gcs.endpoint, credentials_json=key_text[:-20])
    assert "PRIVATE KEY" not in str(exc.value)
    with pytest.raises(ConfigurationError, match="only one of"):
        GcsStore.from_url(
            f"gs://{bucket}", credentials_json=key_text, credentials_file="/nowhere.json"
        )


def test_missing_adc_is_a_configuration_error(
    bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigurationError, match="Application Default Credentials"):
        GcsStore.from_url(f"gs://{bucket}")


def test_missing_bucket_is_not_found(gcs: GcsEmulator) -> None:
    store = GcsStore.from_url("gs://no-such-bucket-here", endpoint=gcs.endpoint)
    with store, pytest.raises(NotFound, match="no-such-bucket-here"):
        store.put("x", b"x")


# -- prefixes and streams ----------------------------------------------------------


def test_prefixes_isolate_stores_on_one_bucket(gcs: GcsEmulator, bucket: str) -> None:
    images = GcsStore.from_url(f"gs://{bucket}/site-1/images/", endpoint=gcs.endpoint)
    results = GcsStore.from_url(f"gs://{bucket}/site-1/results", endpoint=gcs.endpoint)
    images.put("a.jpg", b"a")
    results.put("a.pdf", b"p")
    assert [o.name for o in images.list()] == ["a.jpg"]
    assert [o.name for o in results.list()] == ["a.pdf"]
    assert not images.exists("a.pdf")
    whole = GcsStore.from_url(f"gs://{bucket}", endpoint=gcs.endpoint)
    assert [o.name for o in whole.list()] == ["site-1/images/a.jpg", "site-1/results/a.pdf"]


def test_put_from_file_not_at_offset_zero(store: GcsStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"HEADERpayload")
    with src.open("rb") as fh:
        fh.seek(6)
        info = store.put("tail", fh)
    assert info.size == 7
    assert store.get("tail") == b"payload"


def test_resumable_upload_in_chunks(gcs: GcsEmulator, bucket: str) -> None:
    chunk = 256 * 1024
    data = os.urandom(chunk * 3 + 1000)
    with GcsStore.from_url(f"gs://{bucket}", endpoint=gcs.endpoint, chunk_size=chunk) as store:

        class Pipe(io.RawIOBase):
            """A source that cannot seek or tell, like a socket."""

            def __init__(self) -> None:
                self.view = memoryview(data)
                self.reads: list[int] = []

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
                n = min(len(buffer), len(self.view))
                buffer[:n] = self.view[:n]
                self.view = self.view[n:]
                self.reads.append(n)
                return n

        pipe = Pipe()
        info = store.put("chunked.bin", pipe)  # type: ignore[arg-type]
        assert info.size == len(data)
        assert store.get("chunked.bin") == data
        # Read chunk by chunk, never all at once.
        assert max(pipe.reads) <= chunk
        with store.open_read("chunked.bin") as fh:
            first = fh.read(10)
            fh.seek(chunk * 2)
            assert fh.tell() == chunk * 2
            rest = fh.read()
        assert first == data[:10] and rest == data[chunk * 2 :]


def test_failed_resumable_upload_leaves_nothing(gcs: GcsEmulator, bucket: str) -> None:
    chunk = 256 * 1024

    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            if self.sent >= chunk * 2:
                raise OSError("disk gone")
            buffer[: len(buffer)] = b"z" * len(buffer)
            self.sent += len(buffer)
            return len(buffer)

    with GcsStore.from_url(f"gs://{bucket}", endpoint=gcs.endpoint, chunk_size=chunk) as store:
        source = Failing()
        with pytest.raises((OSError, IrisCloudError)):
            store.put("half.bin", source)  # type: ignore[arg-type]
        assert source.sent >= chunk * 2  # two chunks reached the server before the failure
        assert not store.exists("half.bin")


def test_upload_stream_rewinds_only_into_last_chunk() -> None:
    stream = _UploadStream(io.BufferedReader(io.BytesIO(b"abcdefghij")))  # type: ignore[arg-type]
    assert stream.tell() == 0
    assert stream.read(4) == b"abcd"
    assert stream.read(4) == b"efgh"
    stream.seek(6)  # the server kept only part of the last chunk
    assert stream.read(4) == b"gh"
    assert stream.read(4) == b"ij"
    with pytest.raises(io.UnsupportedOperation):
        stream.seek(2)


# -- emulator gaps -------------------------------------------------------------------


def test_emulator_capabilities_say_what_it_lacks(store: GcsStore) -> None:
    caps = store.capabilities
    assert store.emulator
    assert caps.conditional_create is False
    assert caps.signed_urls is False
    assert caps.native_watch is False
    with pytest.raises(ConfigurationError, match="cannot sign URLs"):
        store.signed_url("x")


def test_emulator_still_ignores_if_generation_match(store: GcsStore) -> None:
    """Why conditional_create is False on the emulator: it overwrites anyway.

    Should gcp-storage-emulator start enforcing ifGenerationMatch=0 this test
    fails, and the capability (and the contract skip) can go.
    """
    store.put("once", b"first")
    store.put("once", b"second")  # overwrite=False: Cloud Storage would raise AlreadyExists
    assert store.get("once") == b"second"


# -- signed URLs ---------------------------------------------------------------------


@pytest.fixture
def signing_store(gcs: GcsEmulator, bucket: str, service_account_info: dict[str, str]) -> GcsStore:
    """The emulator's anonymous client for data, a service-account key for signing."""
    signer = service_account.Credentials.from_service_account_info(service_account_info)
    return GcsStore(gcs.client(), bucket, "signed", signer=signer, emulator=True)


def test_v4_signed_urls_with_service_account_key(signing_store: GcsStore) -> None:
    assert signing_store.capabilities.signed_urls
    signing_store.put("report.pdf", b"%PDF", content_type="application/pdf")
    url = signing_store.signed_url("report.pdf", "GET", timedelta(minutes=5))
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Expires"] == ["300"]
    assert query["X-Goog-Credential"][0].startswith("iris-signer@iris-test.iam")
    assert len(query["X-Goog-Signature"][0]) == 512  # hex of a 2048-bit RSA signature
    assert "/signed/report.pdf" in urllib.parse.unquote(url)
    # The emulator serves signed paths without checking signatures (like moto).
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"%PDF"
    put_url = signing_store.signed_url("upload.jpg", "PUT", timedelta(minutes=5))
    request = urllib.request.Request(put_url, data=b"jpeg", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
    assert signing_store.get("upload.jpg") == b"jpeg"


def test_signed_url_limits(signing_store: GcsStore) -> None:
    with pytest.raises(ConfigurationError, match="7 days"):
        signing_store.signed_url("x", "GET", timedelta(days=8))
    with pytest.raises(ConfigurationError, match="GET or PUT"):
        signing_store.signed_url("x", "DELETE")


def test_credentials_json_gives_a_signing_store(
    bucket: str, service_account_info: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Against Cloud Storage itself: opening needs no network, signing neither.
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    store = GcsStore.from_url(f"gs://{bucket}/p", credentials_json=json.dumps(service_account_info))
    assert not store.emulator
    assert store.capabilities.signed_urls and store.capabilities.conditional_create
    url = store.signed_url("a.jpg", "GET", timedelta(minutes=1))
    assert url.startswith(f"https://storage.googleapis.com/{bucket}/p/a.jpg?")
    assert "credentials_json" in repr(store) and "PRIVATE" not in repr(store)


# -- watch through Pub/Sub notifications ---------------------------------------------


def _notify(admin: PubSubAdmin, topic: str, blob_resource: dict[str, object], event: str) -> None:
    """Publish what Cloud Storage publishes for an object event (JSON_API_V1 payload).

    gcp-storage-emulator has no notifications, so the test plays Cloud
    Storage's part, with the attributes and payload documented for
    Pub/Sub notifications for Cloud Storage.
    """
    attributes = {
        "notificationConfig": "projects/_/buckets/b/notificationConfigs/1",
        "eventType": event,
        "payloadFormat": "JSON_API_V1",
        "bucketId": str(blob_resource["bucket"]),
        "objectId": str(blob_resource["name"]),
        "objectGeneration": str(blob_resource["generation"]),
        "eventTime": str(blob_resource["updated"]),
    }
    data = json.dumps(blob_resource).encode()
    admin.publisher.publish(topic, data, **attributes).result(timeout=10)


def test_watch_through_notifications(servers: GcpServers, bucket: str) -> None:
    admin = PubSubAdmin(servers.pubsub_host)
    try:
        name = f"notify-{bucket}"
        topic = admin.topic(name)
        sub = admin.subscription(name, topic)
        store = GcsStore.from_url(
            f"gs://{bucket}/inbox",
            endpoint=servers.gcs.endpoint,
            notification_subscription=sub,
            emulator_host=servers.pubsub_host,
        )
        assert store.capabilities.native_watch
        client = servers.gcs.client()
        with Watcher(store, "eyes/", poll_interval=0.2) as watcher:
            for key, event in [
                ("inbox/eyes/od.jpg", "OBJECT_FINALIZE"),
                ("inbox/other/x.jpg", "OBJECT_FINALIZE"),  # outside the watched prefix
                ("inbox/eyes/od.jpg", "OBJECT_METADATA_UPDATE"),  # not a new object
                ("inbox/eyes/os.jpg", "OBJECT_FINALIZE"),
            ]:
                store.put(
                    key.removeprefix("inbox/"), b"jpeg", content_type="image/jpeg", overwrite=True
                )
                blob = client.bucket(bucket).get_blob(key)
                assert blob is not None
                _notify(admin, topic, blob._properties, event)
            seen = watcher.wait_for(2)
            time.sleep(0.5)  # room for a stray third
        assert [o.name for o in watcher.seen] == ["eyes/od.jpg", "eyes/os.jpg"]
        assert all(o.size == 4 and o.content_type == "image/jpeg" for o in seen)
        assert seen[0].last_modified is not None and seen[0].etag
        # Everything was acknowledged: nothing comes back.
        time.sleep(0.2)
        leftover = admin.subscriber.pull(subscription=sub, max_messages=10, timeout=2)
        assert list(leftover.received_messages) == []
        store.close()
    finally:
        admin.close()
