"""The options of ``awssqs://`` and ``s3://`` endpoints, and which of them are secret.

Kept apart from the endpoint classes (no SDK import), so that the plugin can
tell ``config show`` and the reprs what may be printed without loading boto3.
"""

from __future__ import annotations

__all__ = [
    "BROKER_OPTIONS",
    "CREDENTIAL_OPTIONS",
    "PUBLIC_OPTIONS",
    "SESSION_OPTIONS",
    "STORE_OPTIONS",
]

CREDENTIAL_OPTIONS = frozenset(
    {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "profile_name"}
)
"""Options that may hold or select secrets: never taken from a URL."""

SESSION_OPTIONS = frozenset(
    {
        "region",
        "region_name",
        "endpoint_url",
        "session",
        "max_pool_connections",
        "connect_timeout",
        "read_timeout",
        "max_attempts",
    }
    | CREDENTIAL_OPTIONS
)
"""Options every AWS endpoint accepts (besides its own)."""

BROKER_OPTIONS = frozenset(
    {
        "claim_check",
        "lock_seconds",
        "dead_letter_queue",
        "queue_owner",
        "max_message_bytes",
        "send_retries",
        "group_property",
    }
)
"""The ``awssqs://`` broker's own options."""

STORE_OPTIONS = frozenset(
    {
        "multipart_threshold",
        "multipart_chunksize",
        "max_concurrency",
        "checksum_algorithm",
        "notification_queue",
        "signed_urls",
        "addressing_style",
    }
)
"""The ``s3://`` store's own options."""

# profile_name only names a profile; a boto3 session object holds credentials.
_SECRET = frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "session"})

PUBLIC_OPTIONS = {
    "awssqs": (BROKER_OPTIONS | SESSION_OPTIONS) - _SECRET,
    "s3": (STORE_OPTIONS | SESSION_OPTIONS) - _SECRET,
}
"""Per scheme, the options whose values may be printed."""
