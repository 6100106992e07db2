"""Google Cloud exceptions -> iris-cloud errors, in one place.

Every call into google-cloud-storage or google-cloud-pubsub runs inside
:func:`gcp_errors`, which says what the call was doing (``right``: the
permission it needs, ``target``: the bucket/object or topic/subscription it
touched). The SDK exception is kept as ``__cause__``; its text is not copied
into our message, because GCS error bodies echo request URLs and Pub/Sub ones
may echo attribute values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.cloud.pubsub_v1.publisher.exceptions import MessageTooLargeError
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from iris_cloud.errors import (
    AlreadyExists,
    ConfigurationError,
    CredentialsRejected,
    IrisCloudError,
    LockLost,
    MessageTooLarge,
    NotFound,
    PermissionDenied,
    Throttled,
    Timeout,
    Unavailable,
)

__all__ = ["IAM_PERMISSIONS", "gcp_errors", "map_error"]

# The IAM permission behind each right, so a PermissionDenied tells an
# operator exactly what to grant.
IAM_PERMISSIONS: dict[str, str] = {
    "read": "storage.objects.get",
    "list": "storage.objects.list",
    "write": "storage.objects.create",
    "overwrite": "storage.objects.delete",
    "delete": "storage.objects.delete",
    "sign": "iam.serviceAccounts.signBlob",
    "send": "pubsub.topics.publish",
    "receive": "pubsub.subscriptions.consume",
    "dead_letter": "pubsub.topics.publish",
}

# Substrings by which Pub/Sub and gRPC say a request was too big.
_TOO_LARGE_HINTS = ("too large", "exceeds", "larger than max", "size limit", "payload size")


def _too_large(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(hint in text for hint in _TOO_LARGE_HINTS)


def map_error(
    exc: BaseException, *, right: str, target: str, lock: bool = False
) -> IrisCloudError | None:
    """The iris-cloud error for ``exc`` raised while exercising ``right`` on ``target``.

    ``lock`` marks settlement calls (acknowledge, modify_ack_deadline), where
    Pub/Sub rejects an ack id that expired or was superseded with
    INVALID_ARGUMENT / FAILED_PRECONDITION. Returns ``None`` for exceptions
    that are not Google client errors, which the caller lets propagate.
    """
    name = type(exc).__name__
    if lock and isinstance(exc, (gexc.InvalidArgument, gexc.FailedPrecondition)):
        return LockLost(
            f"{target}: the message's ack id is no longer valid; it will be redelivered"
        )
    if isinstance(exc, MessageTooLargeError):
        return MessageTooLarge(f"{target}: the message is over Pub/Sub's publish request limit")
    permission = IAM_PERMISSIONS.get(right, right)
    if isinstance(exc, InvalidResponse):
        # Raw media errors (streamed reads and writes) carry only the HTTP status.
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status is None:
            return Unavailable(f"{target}: invalid response from Cloud Storage ({name})")
        exc = gexc.from_http_status(status, f"{name} from Cloud Storage")
    if isinstance(exc, (gexc.Forbidden, gexc.PermissionDenied)):
        return PermissionDenied(
            f"permission denied: the credentials lack the '{right}' right on {target} "
            f"(IAM permission {permission})",
            right=right,
        )
    if isinstance(exc, (gexc.Unauthorized, gexc.Unauthenticated)):
        return CredentialsRejected(
            f"the credentials were not accepted for {target} ('{right}' right, "
            f"IAM permission {permission}): check the service account or ADC",
            right=right,
        )
    if isinstance(exc, gexc.NotFound):
        return NotFound(f"{target} does not exist")
    if isinstance(exc, (gexc.AlreadyExists, gexc.PreconditionFailed, gexc.Conflict)):
        return AlreadyExists(f"{target} already exists")
    if isinstance(exc, (gexc.InvalidArgument, gexc.BadRequest)) and _too_large(exc):
        return MessageTooLarge(f"{target}: the service rejected the request as too large")
    if isinstance(exc, (gexc.TooManyRequests, gexc.ResourceExhausted)):
        if _too_large(exc):
            return MessageTooLarge(f"{target}: the request is larger than the channel allows")
        return Throttled(f"{target}: the service asked to slow down ({name})")
    if isinstance(exc, gexc.MethodNotImplemented):
        return ConfigurationError(f"{target}: the endpoint does not implement this call ({name})")
    if isinstance(exc, (gexc.DeadlineExceeded, gexc.GatewayTimeout, requests.Timeout)):
        return Timeout(f"{target}: the call did not finish in time ({name})")
    if isinstance(
        exc,
        (
            gexc.ServiceUnavailable,
            gexc.ServerError,
            gexc.Aborted,
            gexc.Cancelled,
            gexc.Unknown,
            gexc.RetryError,
            requests.ConnectionError,
            auth_exc.TransportError,
        ),
    ):
        return Unavailable(f"{target}: the service could not be reached or failed ({name})")
    if isinstance(exc, DataCorruption):
        return Unavailable(f"{target}: checksum mismatch in transfer, retry ({name})")
    if isinstance(exc, (gexc.InvalidArgument, gexc.BadRequest, gexc.FailedPrecondition)):
        return ConfigurationError(f"{target}: the service rejected the request ({name})")
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return ConfigurationError(
            f"{target}: no Google credentials: pass credentials_file / credentials_json, or "
            "set up Application Default Credentials (gcloud auth application-default login)"
        )
    if isinstance(exc, auth_exc.RefreshError):
        return CredentialsRejected(
            f"the credentials could not obtain a token for {target} ('{right}' right)",
            right=right,
        )
    if isinstance(exc, gexc.GoogleAPICallError):
        return IrisCloudError(f"{target}: unexpected service error ({name})")
    return None


@contextmanager
def gcp_errors(right: str, target: str, *, lock: bool = False) -> Iterator[None]:
    """Run a Google client call, re-raising its errors as iris-cloud errors.

    ``right`` is the right the call exercises (``read``, ``list``, ``write``,
    ``delete``, ``send``, ``receive``, ...), named by PermissionDenied;
    ``target`` names the resource (``gs://bucket/key``, a topic path), never a
    credential; ``lock`` marks message settlement (see :func:`map_error`).
    """
    try:
        yield
    except IrisCloudError:
        raise
    except Exception as exc:
        mapped = map_error(exc, right=right, target=target, lock=lock)
        if mapped is None:
            raise
        raise mapped from exc
