"""Credential selection without a server: DefaultAzureCredential and its absence."""

from __future__ import annotations

import sys

import pytest
from iris_cloud.errors import ConfigurationError
from iris_cloud_azure import AzureBlobStore, ServiceBusBroker


def test_default_credential_when_none_given() -> None:
    identity = pytest.importorskip("azure.identity")
    store = AzureBlobStore.from_url("azblob://contoso/images")
    assert isinstance(store.container_client.credential, identity.DefaultAzureCredential)
    assert "auth=default_credential" in repr(store)
    assert store.capabilities.can_read and not store.capabilities.signed_urls
    broker = ServiceBusBroker.from_url("azuresb://contoso/orders")
    assert "contoso.servicebus.windows.net" in repr(broker)
    assert "auth=default_credential" in repr(broker)
    broker.close()
    store.close()


def test_missing_azure_identity_says_what_to_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail as if not installed.
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    for open_endpoint in (
        lambda: AzureBlobStore.from_url("azblob://contoso/images"),
        lambda: ServiceBusBroker.from_url("azuresb://contoso/orders"),
    ):
        with pytest.raises(
            ConfigurationError, match=r"azure-identity.*iris-cloud-azure\[identity\]"
        ):
            open_endpoint()
