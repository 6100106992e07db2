"""JSON Schema export for each message type."""

from __future__ import annotations

from typing import Any

from iris_cloud.model.common import MODEL_VERSION, IrisModel
from iris_cloud.model.event import EVENT_TYPES, GenericEvent
from iris_cloud.model.grading import GradingSubmission
from iris_cloud.model.order import OrderRequest
from iris_cloud.model.result import OrderResult

__all__ = ["GENERIC_EVENT_SCHEMA", "SCHEMA_TYPES", "json_schema", "schema_file_name"]

GENERIC_EVENT_SCHEMA = "event:generic"
"""Schema name of :class:`GenericEvent` (any event type this model does not know)."""

SCHEMA_TYPES: dict[str, type[IrisModel]] = {
    "order": OrderRequest,
    "result": OrderResult,
    "grading": GradingSubmission,
    **{f"event:{name}": cls for name, cls in EVENT_TYPES.items()},
    GENERIC_EVENT_SCHEMA: GenericEvent,
}
"""Exportable schemas by name: the message kinds of :func:`detect_kind`, plus
``event:generic``."""


def _lookup(name: str) -> tuple[str, type[IrisModel]]:
    if name in SCHEMA_TYPES:
        return name, SCHEMA_TYPES[name]
    # Class names (OrderRequest, OrderGradedEvent, ...) and bare event types work too.
    folded = name.casefold()
    for key, cls in SCHEMA_TYPES.items():
        if folded in (key.casefold(), cls.__name__.casefold(), key.partition(":")[2].casefold()):
            return key, cls
    raise KeyError(name)


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one message type, with wire field names.

    ``kind`` is a key of :data:`SCHEMA_TYPES` (``order``, ``result``, ``grading``,
    ``event:OrderGradedEvent``, ``event:generic``, ...) or a class name.

    Raises:
        KeyError: ``kind`` names no message type.
    """
    key, cls = _lookup(kind)
    schema = cls.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"IRIS object model {MODEL_VERSION}, message type {key}",
        **schema,
    }


def schema_file_name(kind: str) -> str:
    """A portable file name for the schema of ``kind``.

    For example ``event-OrderGradedEvent.schema.json``.
    """
    key, _ = _lookup(kind)
    return key.replace(":", "-") + ".schema.json"
