"""The botocore -> iris-cloud error table, for responses a test server cannot produce.

Errors moto does produce (403 with code "403", bare 403 on HEAD, NoSuchKey,
PreconditionFailed, ReceiptHandleIsInvalid, connection refused) are covered
against the server in the other test modules; throttling, 5xx and timeouts
are built here as botocore builds them from a response.
"""

from __future__ import annotations

import pytest
from botocore import exceptions as bexc
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
    ValidationError,
)
from iris_cloud_aws.errors import aws_errors, map_error


def _client_error(code: str, status: int, message: str = "secret detail") -> bexc.ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return bexc.ClientError(response, "Op")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "operation", "expected", "right"),
    [
        ("AccessDenied", 403, "GetObject", PermissionDenied, "read"),
        ("403", 403, "HeadObject", PermissionDenied, "read"),
        ("403", 403, "ReceiveMessage", PermissionDenied, "receive"),
        ("AccessDenied", 403, "ListObjectsV2", PermissionDenied, "list"),
        ("AccessDenied", 403, "PutObject", PermissionDenied, "write"),
        ("AccessDenied", 403, "DeleteObject", PermissionDenied, "delete"),
        ("AccessDenied", 403, "SendMessageBatch", PermissionDenied, "send"),
        ("InvalidClientTokenId", 403, "SendMessage", CredentialsRejected, "send"),
        ("NoSuchKey", 404, "GetObject", NotFound, None),
        ("404", 404, "HeadObject", NotFound, None),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, "GetQueueUrl", NotFound, None),
        ("QueueDoesNotExist", 400, "SendMessage", NotFound, None),
        ("PreconditionFailed", 412, "PutObject", AlreadyExists, None),
        ("ReceiptHandleIsInvalid", 400, "ChangeMessageVisibility", LockLost, None),
        ("Throttling", 400, "SendMessage", Throttled, None),
        ("SlowDown", 503, "PutObject", Throttled, None),
        ("RequestThrottled", 400, "ReceiveMessage", Throttled, None),
        ("InternalError", 500, "GetObject", Unavailable, None),
        ("ServiceUnavailable", 503, "GetObject", Unavailable, None),
        ("ConditionalRequestConflict", 409, "PutObject", Unavailable, None),
        (
            "AWS.SimpleQueueService.BatchRequestTooLong",
            400,
            "SendMessageBatch",
            MessageTooLarge,
            None,
        ),
        ("InvalidParameterValue", 400, "SendMessage", ValidationError, None),
        ("RequestTimeTooSkewed", 403, "PutObject", ConfigurationError, None),
    ],
)
def test_client_errors(
    code: str, status: int, operation: str, expected: type[Exception], right: str | None
) -> None:
    err = map_error(_client_error(code, status), operation, "s3://bucket/key")
    assert type(err) is expected
    if right is not None:
        assert isinstance(err, PermissionDenied) and err.right == right
    # The service's message text is not copied (it may echo request data).
    assert "secret detail" not in str(err)


def test_retryable_flags() -> None:
    assert map_error(_client_error("Throttling", 400), "SendMessage", "q").retryable  # type: ignore[union-attr]
    assert map_error(_client_error("InternalError", 500), "SendMessage", "q").retryable  # type: ignore[union-attr]
    assert not map_error(_client_error("AccessDenied", 403), "SendMessage", "q").retryable  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (bexc.EndpointConnectionError(endpoint_url="http://x"), Unavailable),
        (bexc.ConnectTimeoutError(endpoint_url="http://x"), Timeout),
        (bexc.ReadTimeoutError(endpoint_url="http://x"), Timeout),
        (bexc.NoCredentialsError(), ConfigurationError),
        (bexc.NoRegionError(), ConfigurationError),
        (bexc.ProfileNotFound(profile="p"), ConfigurationError),
    ],
)
def test_transport_and_config_errors(exc: Exception, expected: type[Exception]) -> None:
    assert type(map_error(exc, "GetObject", "s3://b/k")) is expected


def test_other_exceptions_pass_through() -> None:
    assert map_error(KeyError("x"), "GetObject", "s3://b/k") is None
    with pytest.raises(KeyError), aws_errors("GetObject", "s3://b/k"):
        raise KeyError("x")


def test_cause_is_kept() -> None:
    original = _client_error("NoSuchKey", 404)
    with pytest.raises(NotFound) as exc, aws_errors("GetObject", "s3://b/k"):
        raise original
    assert exc.value.__cause__ is original
    assert isinstance(exc.value, IrisCloudError)
