"""Interoperability with the AWS SQS extended client libraries (Java and Python).

Both libraries offload a large body to S3 and send instead the pointer
``["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": B,
"s3Key": K}]`` with a message attribute ``ExtendedPayloadSize`` (``Number``,
the payload's byte length; ``SQSLargePayloadSize`` in older versions). On
receipt they recognise an offloaded message by that attribute's *name*,
require the body to parse as a two-element JSON list whose second element
holds ``s3BucketName`` and ``s3Key``, and fetch that object. The messages here
are built by hand with plain boto3 exactly that way, in both directions.
"""

from __future__ import annotations

import json
import uuid

import pytest
from iris_cloud.claimcheck import POINTER_CLASS
from iris_cloud.errors import ConfigurationError
from iris_cloud.ports import Message
from iris_cloud_aws import S3Store, SqsBroker
from iris_cloud_aws.testing import MotoServer

RESULT = json.dumps(
    {"ResultCode": "F", "ResultsDocument": {"Type": "PDF", "Content": "JVBERi0x" * 40_000}}
).encode()


def _open(moto: MotoServer, queue: str, claim_store: S3Store) -> SqsBroker:
    return SqsBroker.from_url(moto.broker_url(queue), claim_check=claim_store, **moto.options())


@pytest.fixture(params=["", "claims"], ids=["no prefix", "key prefix"])
def prefix(request: pytest.FixtureRequest) -> str:
    """The claim-check store's key prefix: pointers name the full key either way."""
    return str(request.param)


@pytest.fixture
def claim_store(moto: MotoServer, bucket: str, prefix: str) -> S3Store:
    return S3Store.from_url(moto.store_url(bucket, prefix), **moto.options())


@pytest.fixture
def small_queue(moto: MotoServer, name: str) -> str:
    """A queue whose 64 KiB limit forces the PDF result through the claim check."""
    moto.create_queue(name, max_message_bytes=65536, dead_letter=True)
    return name


@pytest.mark.parametrize("size_attribute", ["ExtendedPayloadSize", "SQSLargePayloadSize"])
def test_we_read_what_an_extended_client_sends(
    moto: MotoServer,
    small_queue: str,
    bucket: str,
    prefix: str,
    claim_store: S3Store,
    size_attribute: str,
) -> None:
    s3, sqs = moto.client("s3"), moto.client("sqs")
    # An extended client configured with the same prefix sends the object's full key.
    key = f"{prefix}/{uuid.uuid4()}" if prefix else str(uuid.uuid4())
    s3.put_object(Bucket=bucket, Key=key, Body=RESULT)
    # The Java client serialises the pointer with Jackson: no spaces.
    pointer = json.dumps(
        [POINTER_CLASS, {"s3BucketName": bucket, "s3Key": key}], separators=(",", ":")
    )
    queue_url = sqs.get_queue_url(QueueName=small_queue)["QueueUrl"]
    sent = sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=pointer,
        MessageAttributes={
            size_attribute: {"DataType": "Number", "StringValue": str(len(RESULT))},
            "ResultObjectType": {"DataType": "String", "StringValue": "OrderResult"},
        },
    )
    broker = SqsBroker.from_url(
        moto.broker_url(small_queue), claim_check=claim_store, **moto.options()
    )
    [msg] = broker.receive(wait=1)
    assert msg.body == RESULT
    assert msg.message_id == sent["MessageId"]
    assert msg.properties == {"ResultObjectType": "OrderResult"}
    broker.complete(msg)


def test_an_extended_client_reads_what_we_send(
    moto: MotoServer, small_queue: str, bucket: str, prefix: str, claim_store: S3Store
) -> None:
    broker = SqsBroker.from_url(
        moto.broker_url(small_queue), claim_check=claim_store, **moto.options()
    )
    broker.send(Message(body=RESULT, properties={"ResultObjectType": "OrderResult"}))
    sqs, s3 = moto.client("sqs"), moto.client("s3")
    # What the extended clients do on receive, step by step:
    raw = sqs.receive_message(
        QueueUrl=broker.queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"][0]
    attrs = raw["MessageAttributes"]
    # 1. the reserved attribute, a Number holding the payload's length;
    assert attrs["ExtendedPayloadSize"] == {
        "DataType": "Number",
        "StringValue": str(len(RESULT)),
    }
    # 2. the body: a two-element list, the pointer class, then bucket and key only;
    pointer = json.loads(raw["Body"])
    assert isinstance(pointer, list) and len(pointer) == 2
    assert pointer[0] == POINTER_CLASS
    assert set(pointer[1]) == {"s3BucketName", "s3Key"}
    assert pointer[1]["s3BucketName"] == bucket
    # The key is the object's full key, prefix included: a client fetches it as it is.
    assert pointer[1]["s3Key"].startswith(f"{prefix}/" if prefix else "")
    # 3. the object it names holds the original body (the Python client decodes it as UTF-8).
    payload = s3.get_object(Bucket=bucket, Key=pointer[1]["s3Key"])["Body"].read()
    assert payload == RESULT
    assert payload.decode("utf-8") == RESULT.decode("utf-8")
    # Our own attributes ride along; extended clients pass unknown ones through.
    assert attrs["ResultObjectType"]["StringValue"] == "OrderResult"
    assert len(attrs) <= 10
    sqs.delete_message(QueueUrl=broker.queue_url, ReceiptHandle=raw["ReceiptHandle"])


def test_offloaded_message_counts_the_size_attribute(
    moto: MotoServer, small_queue: str, claim_store: S3Store
) -> None:
    # 8 properties + message id + content type = 10 attributes: fine inline,
    # one too many once the claim check adds ExtendedPayloadSize.
    props: dict[str, str | int | float | bool] = {f"p{i}": i for i in range(8)}
    broker = SqsBroker.from_url(
        moto.broker_url(small_queue), claim_check=claim_store, **moto.options()
    )
    broker.send(Message(body=b"small", properties=props))
    [msg] = broker.receive(wait=1)
    broker.complete(msg)
    with pytest.raises(ConfigurationError, match="ExtendedPayloadSize"):
        broker.send(Message(body=RESULT, properties=props))
    # Refused before offloading: no orphaned payload in the bucket.
    assert list(claim_store.list()) == []


def test_a_foreign_key_outside_the_prefix_is_dead_lettered(
    moto: MotoServer, small_queue: str, bucket: str
) -> None:
    # An extended client without our prefix writes to the bucket's root: that
    # object is not in our claim-check store, so the pointer is refused unfetched.
    s3, sqs = moto.client("s3"), moto.client("sqs")
    key = str(uuid.uuid4())
    s3.put_object(Bucket=bucket, Key=key, Body=RESULT)
    pointer = json.dumps([POINTER_CLASS, {"s3BucketName": bucket, "s3Key": key}])
    queue_url = sqs.get_queue_url(QueueName=small_queue)["QueueUrl"]
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=pointer,
        MessageAttributes={
            "ExtendedPayloadSize": {"DataType": "Number", "StringValue": str(len(RESULT))}
        },
    )
    store = S3Store.from_url(moto.store_url(bucket, "claims"), **moto.options())
    broker = _open(moto, small_queue, store)
    assert broker.receive(wait=1) == []
    [dead] = broker.receive_dead_letters(wait=1)
    assert dead.dead_letter_reason == "ClaimCheckFailed"
    assert dead.dead_letter_description == "ValidationError at body[1].s3Key"
    broker.complete(dead)
