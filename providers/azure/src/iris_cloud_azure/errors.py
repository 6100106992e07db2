"""The one place where Azure SDK exceptions become iris-cloud errors.

Both SDKs raise ``azure.core`` exceptions (Blob Storage over HTTP) or
``azure.servicebus`` exceptions (Service Bus over AMQP). :func:`translate`
wraps one port call; the caller names what it was doing and which right the
call needs, so a refusal says e.g. "needs the 'read' right" instead of
showing an SDK trace.

Messages name the operation, the entity and the service's error code, never
the SDK's own text: that text can echo request URLs, and a URL can carry a
SAS token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageNotFoundError,
    MessageSizeExceededError,
    MessagingEntityDisabledError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusError,
    ServiceBusQuotaExceededError,
    ServiceBusServerBusyError,
    SessionLockLostError,
)
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

__all__ = ["map_error", "translate"]


def _code(exc: BaseException) -> str:
    """The service's error code (``BlobNotFound``, ``AuthorizationPermissionMismatch``)."""
    code = getattr(exc, "error_code", None)
    if code:
        return str(code)
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status else type(exc).__name__


def _denied(what: str, right: str | None, exc: BaseException) -> PermissionDenied:
    if isinstance(exc, ServiceBusAuthenticationError) or _code(exc) == "AuthenticationFailed":
        return CredentialsRejected(
            f"{what}: the credentials were not accepted ({_code(exc)}); check the key, "
            "the SAS token and its expiry",
            right=right,
        )
    if right:
        text = (
            f"{what}: refused ({_code(exc)}); the call needs the {right!r} right, "
            "which these credentials lack"
        )
    else:
        text = f"{what}: refused ({_code(exc)}); check the credentials"
    return PermissionDenied(text, right=right)


def map_error(
    exc: BaseException, what: str, right: str | None = None, *, conditional: bool = False
) -> IrisCloudError | None:
    """The iris-cloud error for an Azure SDK exception, or ``None`` if it is not one.

    ``what`` describes the call ("read blob 'a/b' in container 'images'"),
    ``right`` the permission it needs; ``conditional`` marks a create with
    ``overwrite=False``, where a conflict means the object is already there.
    """
    if isinstance(exc, IrisCloudError):
        return exc
    # -- Service Bus (AMQP) ------------------------------------------------------
    if isinstance(exc, ServiceBusAuthorizationError | ServiceBusAuthenticationError):
        return _denied(what, right, exc)
    if isinstance(exc, MessageLockLostError | SessionLockLostError):
        return LockLost(f"{what}: the message lock expired or was lost; it will be redelivered")
    if isinstance(exc, MessageAlreadySettled):
        return LockLost(f"{what}: the message was already settled")
    if isinstance(exc, MessageSizeExceededError):
        return MessageTooLarge(f"{what}: the message is over the entity's size limit")
    if isinstance(exc, MessagingEntityNotFoundError | MessageNotFoundError):
        return NotFound(f"{what}: the entity or message does not exist")
    if isinstance(exc, MessagingEntityDisabledError):
        return Unavailable(f"{what}: the entity is disabled")
    if isinstance(exc, ServiceBusServerBusyError | ServiceBusQuotaExceededError):
        return Throttled(f"{what}: the namespace is busy or over quota ({type(exc).__name__})")
    if isinstance(exc, OperationTimeoutError):
        return Timeout(f"{what}: the operation timed out")
    if isinstance(exc, ServiceBusConnectionError | ServiceBusCommunicationError):
        return Unavailable(f"{what}: cannot reach Service Bus ({type(exc).__name__})")
    if isinstance(exc, ServiceBusError):
        return Unavailable(f"{what}: Service Bus failed ({type(exc).__name__})")
    # -- Blob Storage (HTTP, azure-core) ---------------------------------------
    if isinstance(exc, ResourceExistsError | ResourceModifiedError) and conditional:
        return AlreadyExists(f"{what}: the object already exists")
    if isinstance(exc, ResourceNotFoundError):
        return NotFound(f"{what}: not found ({_code(exc)})")
    if isinstance(exc, ClientAuthenticationError):
        return _denied(what, right, exc)
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        if status in (401, 403):
            return _denied(what, right, exc)
        if status == 404:
            return NotFound(f"{what}: not found ({_code(exc)})")
        if status == 409 and conditional:
            return AlreadyExists(f"{what}: the object already exists")
        if status in (429, 503) or _code(exc) in ("ServerBusy", "OperationTimedOut"):
            return Throttled(f"{what}: the service asked to slow down ({_code(exc)})")
        if status in (408, 504):
            return Timeout(f"{what}: the service timed out ({_code(exc)})")
        if status >= 500:
            return Unavailable(f"{what}: the service failed ({_code(exc)})")
        return ConfigurationError(f"{what}: the service rejected the request ({_code(exc)})")
    if isinstance(exc, ServiceRequestTimeoutError | ServiceResponseTimeoutError):
        return Timeout(f"{what}: the request timed out")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return Unavailable(f"{what}: cannot reach the service ({type(exc).__name__})")
    if isinstance(exc, AzureError):
        return Unavailable(f"{what}: the Azure SDK failed ({type(exc).__name__})")
    return None


@contextmanager
def translate(what: str, right: str | None = None, *, conditional: bool = False) -> Iterator[None]:
    """Run a block, re-raising Azure SDK exceptions as iris-cloud errors.

    The SDK exception stays the ``__cause__``. Other exceptions pass through.
    """
    try:
        yield
    except IrisCloudError:
        raise
    except Exception as exc:
        mapped = map_error(exc, what, right, conditional=conditional)
        if mapped is None:
            raise
        raise mapped from exc
