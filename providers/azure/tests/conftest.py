"""Test servers for the Azure provider's tests: Azurite and the Service Bus emulator.

Each is started once per session on a free loopback port. A server that
cannot start fails the tests in CI (``IRIS_CLOUD_REQUIRE_EMULATORS=1``) and
skips them elsewhere, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from iris_cloud.testing import require_server
from iris_cloud_azure.testing import (
    AzuriteServer,
    ServerUnavailable,
    ServiceBusBrokerEnv,
    ServiceBusServer,
    azurite,
)


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    """A session-wide Azurite Blob service (in memory)."""
    try:
        context = azurite()
        server = context.__enter__()
    except ServerUnavailable as exc:
        require_server(f"Azurite: {exc}")
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def sb_env(azurite_server: AzuriteServer) -> Iterator[ServiceBusBrokerEnv]:
    """Service Bus emulators (one per lock/delivery setting), stopped at session end."""
    env = ServiceBusBrokerEnv(azurite_server)
    try:
        env.server(lock_seconds=2.0, max_delivery_count=3)
    except ServerUnavailable as exc:
        env.close()
        require_server(f"Service Bus emulator: {exc}")
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="session")
def sb_server(sb_env: ServiceBusBrokerEnv) -> ServiceBusServer:
    """The emulator with 2 s locks and 3 deliveries before dead-lettering."""
    return sb_env.server(lock_seconds=2.0, max_delivery_count=3)
