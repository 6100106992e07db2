"""The one mapping from Google client exceptions to iris-cloud errors."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.cloud.pubsub_v1.publisher.exceptions import MessageTooLargeError
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
from iris_cloud_gcp.errors import gcp_errors, map_error

SECRET_LOOKING = "ya29.a0AfH6SMBxTOKEN sig=abc"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (gexc.Forbidden(SECRET_LOOKING), PermissionDenied),
        (gexc.PermissionDenied(SECRET_LOOKING), PermissionDenied),
        (gexc.Unauthorized(SECRET_LOOKING), CredentialsRejected),
        (gexc.Unauthenticated(SECRET_LOOKING), CredentialsRejected),
        (gexc.NotFound(SECRET_LOOKING), NotFound),
        (gexc.PreconditionFailed(SECRET_LOOKING), AlreadyExists),
        (gexc.AlreadyExists(SECRET_LOOKING), AlreadyExists),
        (gexc.Conflict(SECRET_LOOKING), AlreadyExists),
        (gexc.TooManyRequests(SECRET_LOOKING), Throttled),
        (gexc.ResourceExhausted("quota exceeded for publisher"), Throttled),
        (gexc.ResourceExhausted("Received message larger than max"), MessageTooLarge),
        (gexc.InvalidArgument("Request payload size exceeds the limit"), MessageTooLarge),
        (MessageTooLargeError("too large"), MessageTooLarge),
        (gexc.ServiceUnavailable(SECRET_LOOKING), Unavailable),
        (gexc.InternalServerError(SECRET_LOOKING), Unavailable),
        (gexc.BadGateway(SECRET_LOOKING), Unavailable),
        (gexc.RetryError(SECRET_LOOKING, None), Unavailable),
        (requests.ConnectionError(SECRET_LOOKING), Unavailable),
        (auth_exc.TransportError(SECRET_LOOKING), Unavailable),
        (gexc.DeadlineExceeded(SECRET_LOOKING), Timeout),
        (gexc.GatewayTimeout(SECRET_LOOKING), Timeout),
        (requests.Timeout(SECRET_LOOKING), Timeout),
        (gexc.InvalidArgument(SECRET_LOOKING), ConfigurationError),
        (gexc.BadRequest(SECRET_LOOKING), ConfigurationError),
        (auth_exc.DefaultCredentialsError(SECRET_LOOKING), ConfigurationError),
        (auth_exc.RefreshError(SECRET_LOOKING), CredentialsRejected),
        (gexc.MethodNotImplemented(SECRET_LOOKING), ConfigurationError),
        (gexc.Unknown(SECRET_LOOKING), Unavailable),
        (gexc.NotModified(SECRET_LOOKING), IrisCloudError),
    ],
)
def test_mapping(exc: Exception, expected: type[IrisCloudError]) -> None:
    mapped = map_error(exc, right="read", target="gs://b/k")
    assert type(mapped) is expected
    assert "gs://b/k" in str(mapped)
    # SDK text may quote URLs with tokens or attribute values: never copied.
    assert SECRET_LOOKING not in str(mapped)


def test_permission_denied_names_right_and_iam_permission() -> None:
    mapped = map_error(gexc.Forbidden("x"), right="list", target="gs://b/")
    assert isinstance(mapped, PermissionDenied)
    assert mapped.right == "list"
    assert "'list' right" in str(mapped) and "storage.objects.list" in str(mapped)
    mapped = map_error(gexc.PermissionDenied("x"), right="receive", target="projects/p/s")
    assert isinstance(mapped, PermissionDenied)
    assert mapped.right == "receive" and "pubsub.subscriptions.consume" in str(mapped)


def test_settlement_errors_mean_the_lock_is_gone() -> None:
    for exc in (gexc.InvalidArgument("bad ack id"), gexc.FailedPrecondition("expired")):
        assert isinstance(map_error(exc, right="receive", target="s", lock=True), LockLost)
        assert not isinstance(map_error(exc, right="receive", target="s"), LockLost)


def test_retryable_flags() -> None:
    assert map_error(gexc.ServiceUnavailable("x"), right="send", target="t").retryable  # type: ignore[union-attr]
    assert not map_error(gexc.NotFound("x"), right="send", target="t").retryable  # type: ignore[union-attr]


def test_foreign_exceptions_pass_through() -> None:
    assert map_error(KeyError("k"), right="read", target="t") is None
    with pytest.raises(KeyError), gcp_errors("read", "t"):
        raise KeyError("k")


def test_context_manager_keeps_the_cause() -> None:
    original = gexc.NotFound("gone")
    with pytest.raises(NotFound) as exc, gcp_errors("read", "gs://b/k"):
        raise original
    assert exc.value.__cause__ is original
    already = Throttled("ours")
    with pytest.raises(Throttled) as exc2, gcp_errors("read", "gs://b/k"):
        raise already
    assert exc2.value is already
