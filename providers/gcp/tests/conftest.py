"""Fixtures: the test servers, started once per session on loopback ports.

A server that cannot start skips the tests that need it, with the reason;
with IRIS_CLOUD_REQUIRE_EMULATORS=1 (CI) it fails them instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import TypeVar

import pytest
from iris_cloud.testing import require_server
from iris_cloud_gcp.testing import (
    EmulatorUnavailable,
    GcpServers,
    GcsEmulator,
    gcs_emulator,
    pubsub_emulator,
)

T = TypeVar("T")


def _started(server: AbstractContextManager[T]) -> Iterator[T | EmulatorUnavailable]:
    # The failure is handed to the tests (not raised here) so that each one
    # skips or fails with the reason, instead of erroring in session setup.
    with ExitStack() as stack:
        try:
            value = stack.enter_context(server)
        except EmulatorUnavailable as exc:
            yield exc
            return
        yield value


@pytest.fixture(scope="session")
def _gcs_server() -> Iterator[GcsEmulator | EmulatorUnavailable]:
    yield from _started(gcs_emulator())


@pytest.fixture(scope="session")
def _pubsub_server() -> Iterator[str | EmulatorUnavailable]:
    yield from _started(pubsub_emulator())


@pytest.fixture
def gcs(_gcs_server: GcsEmulator | EmulatorUnavailable) -> GcsEmulator:
    """The running gcp-storage-emulator."""
    if isinstance(_gcs_server, EmulatorUnavailable):
        require_server(str(_gcs_server))
    assert isinstance(_gcs_server, GcsEmulator)
    return _gcs_server


@pytest.fixture
def pubsub_host(_pubsub_server: str | EmulatorUnavailable) -> str:
    """``host:port`` of the running Pub/Sub emulator."""
    if isinstance(_pubsub_server, EmulatorUnavailable):
        require_server(str(_pubsub_server))
    assert isinstance(_pubsub_server, str)
    return _pubsub_server


@pytest.fixture
def servers(gcs: GcsEmulator, pubsub_host: str) -> GcpServers:
    """Both emulators."""
    return GcpServers(gcs, pubsub_host)


@pytest.fixture(scope="session")
def service_account_info() -> dict[str, str]:
    """A service-account key file's content with a freshly generated RSA key.

    Enough to sign URLs locally (V4 signing needs no call to Google); the
    account does not exist anywhere, so nothing can be done with it online.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "iris-test",
        "private_key_id": "0" * 40,
        "private_key": pem,
        "client_email": "iris-signer@iris-test.iam.gserviceaccount.com",
        "client_id": "1" * 21,
        "token_uri": "https://oauth2.googleapis.com/token",
    }
