"""amazon-sqs-extended-client (Python) <-> SqsBroker with an S3 claim check, on moto.

The library runs in a process of its own (``sqs_extended_peer.py``): importing
it replaces ``boto3.Session`` process-wide. Bodies of 300 KiB and 1 MiB go
through S3 in both directions, small ones inline; with a claim-check store
under a key prefix, the pointer names the object's full key and a foreign
pointer's key is used as sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iris_cloud.ports import Message
from iris_cloud_aws import S3Store, SqsBroker

from .helpers import unique

PEER = Path(__file__).resolve().parent / "sqs_extended_peer.py"
SIZES = {"small": 2_000, "300KiB": 300 * 1024, "1MiB": 1024 * 1024}


def body(label: str) -> str:
    """A JSON text body of the given size (the library handles text bodies)."""
    size = SIZES[label]
    filler = "x" * (size - len('{"label":"","pad":""}') - len(label))
    return json.dumps({"label": label, "pad": filler}, separators=(",", ":"))


def library(moto: Any, queue_url: str, bucket: str, op: str, **plan: Any) -> dict[str, Any]:
    """Run the extended client on ``queue_url`` with ``bucket`` for large payloads."""
    full = {
        "endpoint_url": moto.endpoint_url,
        "region": moto.region,
        "credentials": moto.credentials,
        "queue_url": queue_url,
        "bucket": bucket,
        "op": op,
        **plan,
    }
    done = subprocess.run(
        [sys.executable, str(PEER)],
        input=json.dumps(full),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(params=["", "claims"], ids=["no-prefix", "key-prefix"])
def prefix(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def setup(moto: Any, prefix: str) -> Iterator[tuple[SqsBroker, str, str]]:
    """Our broker on a fresh queue, its claim check on a fresh bucket (under ``prefix``)."""
    name = unique("xc")
    # The classic 256 KiB limit, which the library assumes whatever the queue allows.
    queue_url = moto.create_queue(name, max_message_bytes=262_144, dead_letter=True)
    bucket = moto.create_bucket(name)
    store = S3Store.from_url(moto.store_url(bucket, prefix), **moto.options())
    with SqsBroker.from_url(moto.broker_url(name), claim_check=store, **moto.options()) as b:
        yield b, queue_url, bucket


def test_the_library_sends_and_our_broker_receives(
    moto: Any, setup: tuple[SqsBroker, str, str], prefix: str
) -> None:
    broker, queue_url, bucket = setup
    messages: list[dict[str, Any]] = []
    for label in SIZES:
        message: dict[str, Any] = {"body": body(label), "attributes": {"label": label}}
        if prefix:  # how a library user puts payloads under a prefix: the S3Key attribute
            message["s3_key"] = f"{prefix}/{uuid.uuid4()}"
        messages.append(message)
    sent = library(moto, queue_url, bucket, "send", messages=messages)["message_ids"]
    got: dict[str, Message] = {}
    for _ in range(10):
        for m in broker.receive(max_messages=10, wait=1):
            got[str(m.properties["label"])] = m
        if len(got) == len(SIZES):
            break
    assert sorted(got) == sorted(SIZES)
    for label, m in got.items():
        assert m.body == body(label).encode(), label
        assert m.message_id in sent
        broker.complete(m)
    s3 = moto.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == 2  # the two large bodies went through S3, the small one inline
    if prefix:
        assert all(k.startswith(prefix + "/") for k in keys)


def test_our_broker_sends_and_the_library_receives(
    moto: Any, setup: tuple[SqsBroker, str, str], prefix: str
) -> None:
    broker, queue_url, bucket = setup
    broker.send(
        [Message(body=body(label).encode(), properties={"label": label}) for label in SIZES]
    )
    s3 = moto.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == 2
    if prefix:
        assert all(k.startswith(prefix + "/") for k in keys)
    received = library(moto, queue_url, bucket, "receive", max=len(SIZES))["messages"]
    by_label = {m["attributes"]["label"]: m for m in received}
    assert sorted(by_label) == sorted(SIZES)
    for label, m in by_label.items():
        assert m["body"] == body(label), label
    assert broker.receive(wait=0.5) == []  # the library deleted every one
