"""S3Store behaviour beyond the contract suite: multipart, conditional create, URLs, watch."""

from __future__ import annotations

import base64
import io
import os
import time
import urllib.request
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from iris_cloud.errors import AlreadyExists, ConfigurationError, NotFound
from iris_cloud.testing import Watcher
from iris_cloud_aws import S3Store
from iris_cloud_aws import store as store_module
from iris_cloud_aws.testing import MotoServer

MIB = 2**20


def _uploads(moto: MotoServer, bucket: str) -> list[Any]:
    return list(moto.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", []))


class _FailingStream(io.RawIOBase):
    """Yields ``good`` bytes, then fails as a broken disk or socket would."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            raise OSError("source failed")
        n = min(len(buffer), self.left)
        buffer[:n] = b"x" * n
        self.left -= n
        return n


def test_prefix_maps_to_keys(moto: MotoServer, bucket: str) -> None:
    store = S3Store.from_url(f"s3://{bucket}/tenant/a/", **moto.options())
    store.put("img.jpg", b"j")
    keys = [o["Key"] for o in moto.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["tenant/a/img.jpg"]
    assert [o.name for o in store.list()] == ["img.jpg"]
    assert store.container == bucket


def test_multipart_upload_round_trip(moto: MotoServer, store: S3Store, bucket: str) -> None:
    data = os.urandom(11 * MIB)
    info = store.put("big.bin", io.BytesIO(data), content_type="application/dicom")
    assert info.size == len(data)
    head = moto.client("s3").head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"].endswith('-3"')  # three parts of 5, 5 and 1 MiB
    assert head["ContentType"] == "application/dicom"
    assert store.get("big.bin") == data
    assert store.read_range("big.bin", 5 * MIB - 2, 4) == data[5 * MIB - 2 : 5 * MIB + 2]
    assert store.read_range("big.bin", len(data) - 3) == data[-3:]


def test_failed_multipart_upload_leaves_no_object_and_no_parts(
    moto: MotoServer, store: S3Store, bucket: str
) -> None:
    with pytest.raises(OSError, match="source failed"):
        store.put("broken.bin", io.BufferedReader(_FailingStream(12 * MIB)))
    assert not store.exists("broken.bin")
    assert _uploads(moto, bucket) == []


def test_multipart_upload_from_a_file_sends_parts_from_the_file_with_checksums(
    moto: MotoServer, store: S3Store, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(11 * MIB)
    path = tmp_path / "big.bin"
    path.write_bytes(b"header|" + data)
    with path.open("rb") as fh:
        fh.read(7)  # a partly read file continues at its position
        info = store.put("big.bin", fh)
        assert fh.read() == b""
    assert info.size == len(data)
    assert store.get("big.bin") == data
    head = moto.client("s3").head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-3"')
    # Declared on the upload, carried by each part: the CRC32 of the parts' CRC32s.
    crcs = b"".join(
        zlib.crc32(data[i : i + 5 * MIB]).to_bytes(4, "big") for i in range(0, len(data), 5 * MIB)
    )
    assert head["ChecksumCRC32"].split("-")[0] == base64.b64encode(
        zlib.crc32(crcs).to_bytes(4, "big")
    ).decode("ascii")


def test_checksum_algorithm_is_an_option(moto: MotoServer, bucket: str, tmp_path: Path) -> None:
    store = S3Store.from_url(
        moto.store_url(bucket),
        **moto.options(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB),
        checksum_algorithm="sha256",
    )
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(6 * MIB))
    store.put("sha.bin", path)
    head = moto.client("s3").head_object(Bucket=bucket, Key="sha.bin", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"]
    with pytest.raises(ConfigurationError, match="checksum_algorithm"):
        S3Store.from_url(moto.store_url(bucket), **moto.options(), checksum_algorithm="md5")


def test_a_failed_multipart_upload_is_aborted_after_its_parts_in_flight(
    moto: MotoServer, store: S3Store, bucket: str
) -> None:
    # S3 may keep a part that finishes after AbortMultipartUpload (AWS: abort
    # again to free it), which a lifecycle rule then has to find: the abort must
    # wait for the parts already sent. The source fails while two are in flight.
    calls: list[str] = []
    events = store._s3.meta.events
    events.register("after-call.s3.UploadPart", lambda **kw: calls.append("part"))
    events.register("before-call.s3.AbortMultipartUpload", lambda **kw: calls.append("abort"))
    with pytest.raises(OSError, match="source failed"):
        store.put("broken.bin", io.BufferedReader(_FailingStream(12 * MIB)))
    assert calls == ["part", "part", "abort"]
    assert not store.exists("broken.bin")
    assert _uploads(moto, bucket) == []


def test_a_file_cut_short_during_a_multipart_upload_leaves_no_object(
    moto: MotoServer, store: S3Store, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shrinking.bin"
    path.write_bytes(os.urandom(12 * MIB))
    measure = store_module._file_region

    def measured_then_cut(stream: Any) -> Any:
        region = measure(stream)
        os.truncate(path, 7 * MIB)  # after the upload measured it: parts come up short
        return region

    monkeypatch.setattr(store_module, "_file_region", measured_then_cut)
    with pytest.raises(OSError, match="shorter"):
        store.put("shrinking.bin", path)
    assert not store.exists("shrinking.bin")
    assert _uploads(moto, bucket) == []


def test_conditional_create_checked_at_multipart_completion(
    moto: MotoServer, store: S3Store, bucket: str
) -> None:
    # Someone else creates the key while our parts are uploading: S3's
    # If-None-Match on CompleteMultipartUpload refuses ours.
    raw = moto.client("s3")

    class Racing(io.RawIOBase):
        def __init__(self) -> None:
            self.left = 6 * MIB

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if self.left == 0:
                raw.put_object(Bucket=bucket, Key="race.bin", Body=b"the other writer")
                return 0
            n = min(len(buffer), self.left)
            buffer[:n] = b"o" * n
            self.left -= n
            return n

    with pytest.raises(AlreadyExists):
        store.put("race.bin", io.BufferedReader(Racing()))
    assert store.get("race.bin") == b"the other writer"
    assert _uploads(moto, bucket) == []


def test_conditional_create_refused_before_upload_when_visible(store: S3Store) -> None:
    store.put("taken.bin", b"first")
    with pytest.raises(AlreadyExists):
        store.put("taken.bin", io.BytesIO(b"y" * 6 * MIB))
    store.put("taken.bin", io.BytesIO(b"y" * 6 * MIB), overwrite=True)
    assert store.info("taken.bin").size == 6 * MIB


def test_non_ascii_metadata_travels_rfc2047_encoded(
    moto: MotoServer, store: S3Store, bucket: str
) -> None:
    store.put("m.txt", b"m", metadata={"patient": "Zoë", "plain": "ascii"})
    head = moto.client("s3").head_object(Bucket=bucket, Key="m.txt")
    encoded = base64.b64encode("Zoë".encode()).decode()
    assert head["Metadata"] == {"patient": f"=?UTF-8?B?{encoded}?=", "plain": "ascii"}
    assert dict(store.info("m.txt").metadata) == {"patient": "Zoë", "plain": "ascii"}


def test_presigned_urls(store: S3Store) -> None:
    # moto does not check presigned signatures (and fails them with HTTP 500
    # while IAM is enforced): this checks the URLs work, not that they expire.
    store.put("doc.pdf", b"%PDF", content_type="application/pdf")
    url = store.signed_url("doc.pdf", "GET", timedelta(minutes=1))
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"%PDF"
    put_url = store.signed_url("up.jpg", "PUT")
    req = urllib.request.Request(
        put_url, data=b"jpeg", method="PUT", headers={"Content-Type": "image/jpeg"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    assert store.get("up.jpg") == b"jpeg"
    with pytest.raises(ConfigurationError):
        store.signed_url("doc.pdf", "GET", timedelta(days=8))


def test_signed_urls_can_be_switched_off(moto: MotoServer, bucket: str) -> None:
    store = S3Store.from_url(moto.store_url(bucket), **moto.options(signed_urls="false"))
    assert not store.capabilities.signed_urls
    with pytest.raises(ConfigurationError):
        store.signed_url("x")


def test_missing_bucket_is_not_found(moto: MotoServer) -> None:
    store = S3Store.from_url("s3://no-such-bucket", **moto.options())
    with pytest.raises(NotFound):
        store.put("x", b"x")
    with pytest.raises(NotFound):
        list(store.list())


def test_bad_options(moto: MotoServer, bucket: str) -> None:
    with pytest.raises(ConfigurationError, match="5 MiB"):
        S3Store.from_url(moto.store_url(bucket), **moto.options(multipart_chunksize=MIB))
    with pytest.raises(ConfigurationError, match="3 characters"):
        S3Store.from_url("s3://ab", **moto.options())
    with pytest.raises(ConfigurationError, match="must be passed as options"):
        S3Store.from_url(f"s3://{bucket}?aws_access_key_id=AKIA")


def test_watch_follows_s3_notifications(moto: MotoServer, name: str) -> None:
    moto.create_queue(f"{name}-events")
    bucket = moto.create_bucket(name, notification_queue=f"{name}-events")
    options = moto.options(
        notification_queue=f"{name}-events",
        multipart_threshold=5 * MIB,
        multipart_chunksize=5 * MIB,
    )
    store = S3Store.from_url(f"s3://{bucket}/site", **options)
    assert store.capabilities.native_watch
    store.put("inbox/existing.jpg", b"old")
    with Watcher(store, "inbox/", poll_interval=1) as watcher:
        store.put("inbox/a b+c.jpg", b"spaces and plus")
        store.put("outbox/not-mine.jpg", b"x")
        store.put("inbox/big.dcm", io.BytesIO(b"d" * 6 * MIB))  # multipart: two events in moto
        moto.client("s3").put_object(Bucket=bucket, Key="elsewhere.jpg", Body=b"outside prefix")
        watcher.wait_for(2)
        time.sleep(1.5)  # room for a duplicate event to show up
    seen = watcher.seen
    assert sorted(o.name for o in seen) == ["inbox/a b+c.jpg", "inbox/big.dcm"]
    sizes = {o.name: o.size for o in seen}
    assert sizes == {"inbox/a b+c.jpg": 15, "inbox/big.dcm": 6 * MIB}
