"""Fixtures: one moto server per test session, fresh queues and buckets per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from iris_cloud.testing import require_server
from iris_cloud_aws import S3Store, SqsBroker
from iris_cloud_aws.testing import MotoServer, ServerUnavailable, moto_server


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """A moto server on loopback for the whole session (admin credentials in options())."""
    try:
        with moto_server() as server:
            yield server
    except ServerUnavailable as exc:
        require_server(str(exc))


@pytest.fixture(scope="session")
def moto_process() -> Iterator[MotoServer]:
    """A moto server in a child process: memory measured here is then only the client's."""
    try:
        with moto_server(separate_process=True) as server:
            yield server
    except ServerUnavailable as exc:
        require_server(str(exc))


@pytest.fixture
def name() -> str:
    """A fresh resource name (queues and buckets share one namespace per test)."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def queue(moto: MotoServer, name: str) -> str:
    """A fresh queue (2 s visibility, DLQ after 3 receives); returns its name."""
    moto.create_queue(name, dead_letter=True, max_receive_count=3, visibility_timeout=2)
    return name


@pytest.fixture
def broker(moto: MotoServer, queue: str) -> Iterator[SqsBroker]:
    """An SqsBroker on ``queue``."""
    with SqsBroker.from_url(moto.broker_url(queue), **moto.options()) as b:
        yield b


@pytest.fixture
def bucket(moto: MotoServer, name: str) -> str:
    """A fresh bucket; returns its name."""
    return moto.create_bucket(name)


@pytest.fixture
def store(moto: MotoServer, bucket: str) -> Iterator[S3Store]:
    """An S3Store on ``bucket`` with 5 MiB parts (S3's smallest) to keep multipart tests small."""
    options = moto.options(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    with S3Store.from_url(moto.store_url(bucket), **options) as s:
        yield s
