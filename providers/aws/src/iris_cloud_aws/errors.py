"""botocore exceptions -> iris-cloud errors, in one place.

Every call into boto3 runs inside :func:`aws_errors`, which names the AWS
operation (``GetObject``, ``SendMessageBatch``, ...) and the resource it
touched. The operation decides which right a :class:`PermissionDenied` names
and which IAM action to grant; the error code *and* the HTTP status decide the
class, because services disagree on codes: S3 answers a denied ``HeadObject``
with a bare ``403`` (no body, so no code) and moto answers denied SQS calls
with the code ``"403"``. The botocore exception stays as ``__cause__``; its
text is not copied into our message, since service messages may echo request
parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from botocore import exceptions as bexc
from iris_cloud.errors import (
    AlreadyExists,
    ConfigurationError,
    CredentialsRejected,
    FieldError,
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

__all__ = ["IAM_ACTIONS", "RIGHTS", "aws_errors", "batch_entry_error", "map_error"]

# The right each AWS operation exercises, in the vocabulary of PermissionDenied.
RIGHTS: dict[str, str] = {
    "PutObject": "write",
    "CreateMultipartUpload": "write",
    "UploadPart": "write",
    "CompleteMultipartUpload": "write",
    "AbortMultipartUpload": "write",
    "GetObject": "read",
    "HeadObject": "read",
    "ListObjectsV2": "list",
    "DeleteObject": "delete",
    "PutBucketNotificationConfiguration": "write",
    "SendMessage": "send",
    "SendMessageBatch": "send",
    "ReceiveMessage": "receive",
    "DeleteMessage": "receive",
    "DeleteMessageBatch": "receive",
    "ChangeMessageVisibility": "receive",
    "ChangeMessageVisibilityBatch": "receive",
    "GetQueueUrl": "read",
    "GetQueueAttributes": "read",
}

# The IAM action to grant for each operation, so the error tells an operator
# exactly what the policy lacks (ListObjectsV2 is s3:ListBucket, the batch and
# multipart calls are covered by their single-call actions).
IAM_ACTIONS: dict[str, str] = {
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "DeleteObject": "s3:DeleteObject",
    "PutBucketNotificationConfiguration": "s3:PutBucketNotification",
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "GetQueueUrl": "sqs:GetQueueUrl",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
}

_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "AllAccessDisabled",
    "Forbidden",
    "403",
}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "AuthFailure",
    "MissingAuthenticationToken",
}
_NOT_FOUND = {
    "NoSuchKey",
    "NoSuchBucket",
    "NoSuchUpload",
    "NotFound",
    "404",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
}
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "AWS.SimpleQueueService.RequestThrottled",
    "SlowDown",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "KMS.ThrottlingException",
}
_LOCK_LOST = {
    "ReceiptHandleIsInvalid",
    "InvalidReceiptHandle",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
}
_TOO_LARGE = {
    "BatchRequestTooLong",
    "AWS.SimpleQueueService.BatchRequestTooLong",
    "EntityTooLarge",
}
_INVALID = {
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "MessageAttributesInvalid",
    "InvalidMessageContents",
    "InvalidAttributeName",
    "InvalidAttributeValue",
    "MissingParameter",
    "ValidationError",
    "InvalidArgument",
    "InvalidRequest",
    "EntityTooSmall",
    "InvalidPart",
    "InvalidPartOrder",
    "KeyTooLongError",
    "MetadataTooLarge",
    "UnsupportedOperation",
    "AWS.SimpleQueueService.UnsupportedOperation",
    "InvalidBatchEntryId",
    "BatchEntryIdsNotDistinct",
    "TooManyEntriesInBatchRequest",
    "EmptyBatchRequest",
}


_XML_CODE = re.compile(r"<Code>([A-Za-z.]{1,64})</Code>")


def _denied(operation: str, target: str) -> PermissionDenied:
    right = RIGHTS.get(operation, operation)
    action = IAM_ACTIONS.get(operation, operation)
    return PermissionDenied(
        f"permission denied: the credentials lack the '{right}' right on {target} "
        f"({operation} needs IAM action {action})",
        right=right,
    )


def _client_error(exc: bexc.ClientError, operation: str, target: str) -> IrisCloudError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = str(error.get("Message", ""))
    return _coded_error(code, status, message, operation, target)


def batch_entry_error(failed: Mapping[str, Any], operation: str, target: str) -> IrisCloudError:
    """The iris-cloud error for one ``Failed`` entry of an SQS batch call's answer.

    An entry failed on the service's side (not ``SenderFault``) with a code we
    do not know is :class:`Unavailable`: worth another try.
    """
    code = str(failed.get("Code", ""))
    error = _coded_error(code, None, "", operation, target)
    if not failed.get("SenderFault") and type(error) is IrisCloudError:
        return Unavailable(f"{operation} on {target} failed on the AWS side ({code}); try again")
    return error


def _coded_error(
    code: str, status: int | None, message: str, operation: str, target: str
) -> IrisCloudError:
    what = f"{operation} on {target}"
    if code == "403" and (inner := _XML_CODE.search(message)):
        # moto answers JSON-protocol SQS calls with code "403" and the XML error
        # (InvalidClientTokenId, AccessDenied, ...) as the message: only its code is used.
        code = inner.group(1)
    if code in _BAD_CREDENTIALS:
        right = RIGHTS.get(operation, operation)
        return CredentialsRejected(
            f"the credentials were not accepted for {what} (AWS error {code}); "
            "check the access key, secret, session token and clock",
            right=right,
        )
    if code == "RequestTimeTooSkewed":
        return ConfigurationError(f"{what}: this machine's clock differs too much from AWS")
    if code in _DENIED or status == 403:
        return _denied(operation, target)
    if code in _LOCK_LOST:
        return LockLost(
            f"{what}: the receipt handle is no longer valid (lock expired, message "
            "redelivered or already settled)"
        )
    if code in ("PreconditionFailed", "412") or status == 412:
        return AlreadyExists(f"{target} already exists (conditional create refused)")
    if code == "ConditionalRequestConflict":
        return Unavailable(f"{what}: a concurrent write to the same key is in progress")
    if code in _NOT_FOUND or status == 404:
        return NotFound(f"{target} does not exist ({operation}: {code or status})")
    if code in _THROTTLED or status == 429:
        return Throttled(f"{what} was throttled by AWS ({code or status})")
    if code in _TOO_LARGE or "must be shorter than" in message:
        return MessageTooLarge(f"{what}: the request is over the service's size limit ({code})")
    if code in _INVALID or status == 400:
        return ValidationError(
            f"AWS rejected {what}",
            [FieldError(operation, code or str(status), f"AWS error code {code or status}")],
        )
    if (status is not None and status >= 500) or code in ("InternalError", "ServiceUnavailable"):
        return Unavailable(f"{what} failed on the AWS side ({code or status}); try again")
    return IrisCloudError(f"{what} failed (AWS error {code or status})")


def map_error(exc: BaseException, operation: str, target: str) -> IrisCloudError | None:
    """The iris-cloud error for ``exc`` raised by ``operation`` on ``target``.

    Returns ``None`` for exceptions that do not come from boto3/botocore,
    which the caller lets propagate unchanged.
    """
    if isinstance(exc, bexc.ClientError):
        return _client_error(exc, operation, target)
    if isinstance(exc, (bexc.NoCredentialsError, bexc.PartialCredentialsError)):
        return ConfigurationError(
            f"{operation} on {target}: no complete AWS credentials (pass aws_access_key_id / "
            "aws_secret_access_key or profile_name, or configure boto3's default chain)"
        )
    if isinstance(exc, bexc.NoRegionError):
        return ConfigurationError(
            f"{operation} on {target}: no AWS region (pass region=... in the URL or options)"
        )
    if isinstance(exc, bexc.ProfileNotFound):
        return ConfigurationError(f"{operation} on {target}: the AWS profile is not configured")
    if isinstance(exc, bexc.ParamValidationError):
        return ConfigurationError(f"{operation} on {target}: invalid request parameters ({exc})")
    if isinstance(exc, (bexc.ReadTimeoutError, bexc.ConnectTimeoutError)):
        return Timeout(f"{operation} on {target} timed out")
    if isinstance(
        exc,
        (
            bexc.EndpointConnectionError,
            bexc.ConnectionClosedError,
            bexc.ConnectionError,
            bexc.HTTPClientError,
            bexc.ResponseStreamingError,
            bexc.IncompleteReadError,
        ),
    ):
        return Unavailable(
            f"{operation} on {target}: AWS could not be reached ({type(exc).__name__})"
        )
    if isinstance(exc, bexc.BotoCoreError):
        return IrisCloudError(f"{operation} on {target} failed ({type(exc).__name__})")
    return None


@contextmanager
def aws_errors(operation: str, target: str) -> Iterator[None]:
    """Run boto3 calls of ``operation`` on ``target``, raising iris-cloud errors.

    Errors that are already iris-cloud errors, and exceptions that do not come
    from botocore, pass through unchanged.
    """
    try:
        yield
    except IrisCloudError:
        raise
    except Exception as exc:
        mapped = map_error(exc, operation, target)
        if mapped is None:
            raise
        raise mapped from exc
