"""Credentials both the Service Bus broker and the Blob store fall back to.

Here, below both, so that ``broker`` and ``store`` import this module rather
than each other.
"""

from __future__ import annotations

from typing import Any

from iris_cloud.errors import ConfigurationError

__all__ = ["default_credential"]


def default_credential(*, aio: bool = False) -> Any:
    """``DefaultAzureCredential`` from azure-identity, or a clear error if it is missing.

    With ``aio`` the one of ``azure.identity.aio``, for the async SDK clients.
    """
    try:
        if aio:
            from azure.identity.aio import DefaultAzureCredential
        else:
            from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigurationError(
            "no credentials given and azure-identity is not installed: pass connection_string, "
            "sas_url, sas_token or account_key, or install 'iris-cloud-azure[identity]'"
        ) from exc
    return DefaultAzureCredential()
