"""Servers for the interop tests: the ones the provider envs start, shared per session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from iris_cloud.testing import require_server


@pytest.fixture(scope="session")
def sb_server() -> Iterator[Any]:
    """The Service Bus emulator with 2 s locks and 3 deliveries, and Send/Listen/Manage keys."""
    from iris_cloud_azure.testing import ServerUnavailable, servicebus

    try:
        with servicebus(lock_duration=2.0, max_delivery_count=3) as server:
            yield server
    except ServerUnavailable as exc:
        require_server(f"Service Bus emulator: {exc}")


@pytest.fixture(scope="session")
def moto() -> Iterator[Any]:
    """A moto server (SQS and S3) on loopback for the session."""
    from iris_cloud_aws.testing import ServerUnavailable, moto_server

    try:
        with moto_server() as server:
            yield server
    except ServerUnavailable as exc:
        require_server(f"moto: {exc}")


@pytest.fixture(scope="session")
def pubsub() -> Iterator[Any]:
    """The Pub/Sub emulator (deadlines down to 1 s, so tests can watch them expire)."""
    from iris_cloud_emulators.pubsub import PubSubEmulator

    try:
        emulator = PubSubEmulator(min_ack_deadline=1).start()
    except OSError as exc:
        require_server(f"Pub/Sub emulator: {exc}")
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def pubsub_admin(pubsub: Any) -> Iterator[Any]:
    """Creates topics and subscriptions on the emulator."""
    from iris_cloud_gcp.testing import PubSubAdmin

    admin = PubSubAdmin(pubsub.host_port)
    yield admin
    admin.close()
