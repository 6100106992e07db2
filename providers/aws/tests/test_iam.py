"""Least privilege with moto's IAM enforcement: what IRIS-style credentials may and may not do.

The integrator's write-only credentials allow ``s3:PutObject`` and
``sqs:SendMessage`` and nothing else; each refused call must raise
PermissionDenied naming the missing right (and the IAM action to grant).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from iris_cloud.errors import AlreadyExists, PermissionDenied
from iris_cloud_aws import S3Store, SqsBroker
from iris_cloud_aws.broker import FALLBACK_MAX_MESSAGE_BYTES
from iris_cloud_aws.testing import RECEIVE_ONLY, MotoServer, least_privilege_credentials

MIB = 2**20


@pytest.fixture
def write_only(moto: MotoServer) -> dict[str, str]:
    """Credentials of an IAM user allowed s3:PutObject and sqs:SendMessage only."""
    return least_privilege_credentials(moto, ["s3:PutObject", "sqs:SendMessage"])


@pytest.fixture
def enforced(moto: MotoServer) -> Iterator[None]:
    """IAM checks on for the test (moto's reset-auth), off again afterwards."""
    with moto.enforce_iam():
        yield


def _denied(call: object, right: str) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as exc:
        call()  # type: ignore[operator]
    assert exc.value.right == right
    assert f"'{right}' right" in str(exc.value)
    return exc.value


def test_write_only_store(
    moto: MotoServer, bucket: str, write_only: dict[str, str], enforced: None
) -> None:
    admin = S3Store.from_url(moto.store_url(bucket), **moto.options())
    admin.put("existing.jpg", b"e")
    store = S3Store.from_url(moto.store_url(bucket), **{**moto.options(), **write_only})
    info = store.put("new.jpg", b"jpeg", content_type="image/jpeg", metadata={"eye": "OD"})
    assert info.size == 4 and info.etag
    assert admin.get("new.jpg") == b"jpeg"
    assert "s3:GetObject" in str(_denied(lambda: store.get("existing.jpg"), "read"))
    # HeadObject is refused with a bare 403 (no error code in a HEAD response).
    _denied(lambda: store.info("existing.jpg"), "read")
    _denied(lambda: store.exists("existing.jpg"), "read")
    assert "s3:ListBucket" in str(_denied(lambda: list(store.list()), "list"))
    _denied(lambda: store.delete("existing.jpg"), "delete")
    assert admin.exists("existing.jpg")
    # overwrite=False is still enforced by S3 itself for a writer that cannot look.
    with pytest.raises(AlreadyExists):
        store.put("new.jpg", b"again")


def test_write_only_multipart_upload(
    moto: MotoServer, bucket: str, write_only: dict[str, str], enforced: None
) -> None:
    options = {**moto.options(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)}
    store = S3Store.from_url(moto.store_url(bucket), **{**options, **write_only})
    store.put("scan.dcm", io.BytesIO(b"d" * 6 * MIB), content_type="application/dicom")
    admin = S3Store.from_url(moto.store_url(bucket), **moto.options())
    assert admin.info("scan.dcm").size == 6 * MIB


def test_read_only_store(moto: MotoServer, bucket: str, enforced: None) -> None:
    admin = S3Store.from_url(moto.store_url(bucket), **moto.options())
    admin.put("result.pdf", b"%PDF")
    creds = least_privilege_credentials(moto, ["s3:GetObject", "s3:ListBucket"])
    store = S3Store.from_url(moto.store_url(bucket), **{**moto.options(), **creds})
    assert store.get("result.pdf") == b"%PDF"
    assert [o.name for o in store.list()] == ["result.pdf"]
    assert "s3:PutObject" in str(_denied(lambda: store.put("x.txt", b"x"), "write"))
    _denied(lambda: store.delete("result.pdf"), "delete")


def test_send_only_broker(
    moto: MotoServer, queue: str, write_only: dict[str, str], enforced: None
) -> None:
    url = moto.queue_url_form(queue)
    broker = SqsBroker.from_url(url, **{**moto.options(), **write_only})
    # GetQueueAttributes is refused: the safe default size applies.
    assert broker.capabilities.max_message_bytes == FALLBACK_MAX_MESSAGE_BYTES
    broker.send(b"order")
    assert "sqs:ReceiveMessage" in str(_denied(lambda: broker.receive(wait=0), "receive"))
    admin = SqsBroker.from_url(url, **moto.options())
    [msg] = admin.receive(wait=1)
    assert msg.body == b"order"
    admin.complete(msg)


def test_send_only_broker_by_name_explains_the_url_form(
    moto: MotoServer, queue: str, write_only: dict[str, str], enforced: None
) -> None:
    with pytest.raises(PermissionDenied, match="give the full queue URL"):
        SqsBroker.from_url(moto.broker_url(queue), **{**moto.options(), **write_only})


def test_send_only_batch_needs_moto_specific_action(
    moto: MotoServer, queue: str, enforced: None
) -> None:
    # AWS authorises SendMessageBatch with sqs:SendMessage; moto checks an
    # action "sqs:SendMessageBatch" that AWS does not have. Single messages go
    # as SendMessage (above); batches need both actions granted on moto.
    creds = least_privilege_credentials(moto, ["sqs:SendMessage", "sqs:SendMessageBatch"])
    broker = SqsBroker.from_url(moto.queue_url_form(queue), **{**moto.options(), **creds})
    assert len(broker.send([b"a", b"b", b"c"])) == 3


def test_receive_only_broker(moto: MotoServer, queue: str, enforced: None) -> None:
    creds = least_privilege_credentials(moto, RECEIVE_ONLY)
    admin = SqsBroker.from_url(moto.broker_url(queue), **moto.options())
    admin.send(b"event")
    broker = SqsBroker.from_url(moto.broker_url(queue), **{**moto.options(), **creds})
    assert broker.capabilities.native_dead_letter
    assert "sqs:SendMessage" in str(_denied(lambda: broker.send(b"x"), "send"))
    [msg] = broker.receive(wait=1)
    broker.renew_lock(msg)
    broker.complete(msg)
    # Dead-lettering sends to the DLQ: a receive-only reader may not.
    admin.send(b"poison")
    [bad] = broker.receive(wait=1)
    _denied(lambda: broker.dead_letter(bad, "Poison"), "send")
