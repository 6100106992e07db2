"""iris-cloud: the IRIS order exchange on any cloud.

The public API lives here; submodules are implementation detail unless
documented.
"""

from __future__ import annotations

from iris_cloud.errors import (
    AlreadyExists,
    ConfigurationError,
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
from iris_cloud.hookspecs import hookimpl
from iris_cloud.plugins import open_broker, open_store
from iris_cloud.ports import Capabilities, Message, MessageBroker, ObjectInfo, ObjectStore

__all__ = [
    "AlreadyExists",
    "Capabilities",
    "ConfigurationError",
    "FieldError",
    "IrisCloudError",
    "LockLost",
    "Message",
    "MessageBroker",
    "MessageTooLarge",
    "NotFound",
    "ObjectInfo",
    "ObjectStore",
    "PermissionDenied",
    "Throttled",
    "Timeout",
    "Unavailable",
    "ValidationError",
    "hookimpl",
    "open_broker",
    "open_store",
]
