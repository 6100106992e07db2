"""The options of ``gcppubsub://`` and ``gs://`` endpoints, and which of them are secret.

Kept apart from the endpoint classes (no SDK import), so that the plugin can
tell ``config show`` and the reprs what may be printed without loading the
Google libraries.
"""

from __future__ import annotations

__all__ = ["BROKER_OPTIONS", "CREDENTIAL_OPTIONS", "PUBLIC_OPTIONS", "STORE_OPTIONS"]

CREDENTIAL_OPTIONS = ("credentials", "credentials_file", "credentials_json")
"""Options that may only be given as keywords, never in a URL (URLs get logged)."""

_COMMON = frozenset({*CREDENTIAL_OPTIONS, "project", "emulator_host"})

BROKER_OPTIONS = _COMMON | {
    "topic",
    "subscription",
    "ordering_key",
    "lock_seconds",
    "dead_letter_topic",
    "dead_letter_subscription",
    "batch_latency",
    "timeout",
    "keepalive",
    "claim_check",
}
"""Every option of a ``gcppubsub://`` broker."""

STORE_OPTIONS = _COMMON | {"endpoint", "chunk_size", "notification_subscription"}
"""Every option of a ``gs://`` store."""

# credentials_file is a path; the key is in the file, not in the option.
_SECRET = frozenset({"credentials", "credentials_json"})

PUBLIC_OPTIONS = {"gcppubsub": BROKER_OPTIONS - _SECRET, "gs": STORE_OPTIONS - _SECRET}
"""Per scheme, the options whose values may be printed."""
