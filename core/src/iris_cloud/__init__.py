"""iris-cloud: the IRIS order exchange on any cloud.

The public API lives here; submodules are implementation detail unless
documented.
"""

from __future__ import annotations

from iris_cloud.decoding import UndecodableMessage
from iris_cloud.errors import (
    AlreadyExists,
    ConfigurationError,
    CredentialsRejected,
    FieldError,
    IrisCloudError,
    LockLost,
    MessageTooLarge,
    MissingField,
    NotFound,
    PermissionDenied,
    Throttled,
    Timeout,
    Unavailable,
    UnknownField,
    ValidationError,
    is_transient,
)
from iris_cloud.health import HealthServer, HealthState
from iris_cloud.hookspecs import hookimpl
from iris_cloud.jsonlogs import DeliveryLog, JsonFormatter
from iris_cloud.logs import enable_sdk_logs, quiet_sdk_loggers
from iris_cloud.metrics import MetricsObserver
from iris_cloud.model import (
    MODEL_VERSION,
    GenericEvent,
    GradingReceipt,
    GradingSubmission,
    ImageReceipt,
    OrderCancelled,
    OrderCreationReceipt,
    OrderGradedEvent,
    OrderRequest,
    OrderResult,
    ReadyForGradingEvent,
    ResultsDeliveryReceipt,
    detect_kind,
    json_schema,
    parse_event,
    parse_message,
    require,
)
from iris_cloud.observers import (
    OUTCOMES,
    ConsumerObserver,
    Delivery,
    ObservedConsumer,
    Outcome,
)
from iris_cloud.plugins import open_broker, open_store
from iris_cloud.ports import (
    MAX_SIGNED_URL_EXPIRY,
    Capabilities,
    Message,
    MessageBroker,
    ObjectInfo,
    ObjectStore,
)
from iris_cloud.systemd import SystemdNotifier
from iris_cloud.tracing import TracingObserver, trace_context, with_trace_context

__all__ = [
    "MAX_SIGNED_URL_EXPIRY",
    "MODEL_VERSION",
    "OUTCOMES",
    "AlreadyExists",
    "Capabilities",
    "ConfigurationError",
    "ConsumerObserver",
    "CredentialsRejected",
    "Delivery",
    "DeliveryLog",
    "FieldError",
    "GenericEvent",
    "GradingReceipt",
    "GradingSubmission",
    "HealthServer",
    "HealthState",
    "ImageReceipt",
    "IrisCloudError",
    "JsonFormatter",
    "LockLost",
    "Message",
    "MessageBroker",
    "MessageTooLarge",
    "MetricsObserver",
    "MissingField",
    "NotFound",
    "ObjectInfo",
    "ObjectStore",
    "ObservedConsumer",
    "OrderCancelled",
    "OrderCreationReceipt",
    "OrderGradedEvent",
    "OrderRequest",
    "OrderResult",
    "Outcome",
    "PermissionDenied",
    "ReadyForGradingEvent",
    "ResultsDeliveryReceipt",
    "SystemdNotifier",
    "Throttled",
    "Timeout",
    "TracingObserver",
    "Unavailable",
    "UndecodableMessage",
    "UnknownField",
    "ValidationError",
    "detect_kind",
    "enable_sdk_logs",
    "hookimpl",
    "is_transient",
    "json_schema",
    "open_broker",
    "open_store",
    "parse_event",
    "parse_message",
    "require",
    "trace_context",
    "with_trace_context",
]

# The SDKs log request bodies (patient data) and credentials at DEBUG: keep
# them at WARNING unless the application set their level or enable_sdk_logs.
quiet_sdk_loggers()
