"""The package is found through the iris_cloud entry point and serves awssqs:// and s3://."""

from __future__ import annotations

from importlib.metadata import entry_points

import iris_cloud
from iris_cloud import plugins
from iris_cloud_aws import S3Store, SqsBroker
from iris_cloud_aws.testing import MotoServer


def test_entry_point_declared() -> None:
    [ep] = [ep for ep in entry_points(group="iris_cloud") if ep.name == "aws"]
    assert ep.value == "iris_cloud_aws.provider"


def test_schemes_registered() -> None:
    assert plugins.broker_schemes()["awssqs"] is SqsBroker
    assert plugins.store_schemes()["s3"] is S3Store
    [info] = [p for p in plugins.providers() if p.name == "aws"]
    assert info.distribution == "iris-cloud-aws"
    assert set(info.broker_schemes) == {"awssqs"} and set(info.store_schemes) == {"s3"}


def test_open_broker_and_store_by_url(moto: MotoServer, queue: str, bucket: str) -> None:
    with iris_cloud.open_store(moto.store_url(bucket, "claims"), **moto.options()) as store:
        assert isinstance(store, S3Store)
        with iris_cloud.open_broker(
            moto.broker_url(queue), claim_check=store, **moto.options()
        ) as broker:
            assert isinstance(broker, SqsBroker)
            broker.send(b"x" * (broker.capabilities.max_message_bytes + 1))
            [msg] = broker.receive(wait=1)
            assert len(msg.body) == broker.capabilities.max_message_bytes + 1
            broker.complete(msg)
        assert [o.name for o in store.list()] != []
