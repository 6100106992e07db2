"""The options of ``azuresb://`` and ``azblob://`` endpoints, and which of them are secret.

Kept apart from the endpoint classes (no SDK import), so that the plugin can
tell ``config show`` and the reprs what may be printed without loading the
Azure SDKs.
"""

from __future__ import annotations

__all__ = [
    "BLOB_CREDENTIAL_OPTIONS",
    "BUS_CREDENTIAL_OPTIONS",
    "NOTIFICATION_OPTIONS",
    "PROBE_OPTIONS",
    "PUBLIC_OPTIONS",
    "RETRY_OPTIONS",
    "TUNING_OPTIONS",
]

BUS_CREDENTIAL_OPTIONS = ("connection_string", "sas_token", "credential")
"""A Service Bus endpoint's credential options (one at most)."""
RETRY_OPTIONS = ("retry_total", "retry_backoff_factor", "retry_backoff_max")
"""The Service Bus client's retry settings."""
PROBE_OPTIONS = ("probe_interval", "probe_timeout")
"""When and how long a silent Service Bus connection is checked (seconds)."""

BLOB_CREDENTIAL_OPTIONS = ("connection_string", "sas_url", "sas_token", "account_key", "credential")
"""A blob store's credential options (one at most)."""
TUNING_OPTIONS = ("block_size", "max_concurrency", "page_size", "read_chunk_size")
"""Upload, download and listing sizes of a blob store."""
NOTIFICATION_OPTIONS = ("notification_queue", "notification_connection_string")
"""Where a blob store's BlobCreated events arrive (and the key to read them)."""

PUBLIC_OPTIONS = {
    "azuresb": frozenset({"claim_check", *RETRY_OPTIONS, *PROBE_OPTIONS}),
    "azblob": frozenset({"account_url", "notification_queue", *TUNING_OPTIONS}),
}
"""Per scheme, the options whose values may be printed: no credential of any kind."""
