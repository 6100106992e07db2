"""Structured logs: one JSON object a line (``iris-cloud listen --log-format json``).

:class:`JsonFormatter` turns each log record into one line of JSON with the
same keys every time::

    {"time": "2026-12-07T01:02:03.456Z", "level": "INFO",
     "logger": "iris_cloud.deliveries",
     "message": "result message_id=5f1c... from results (delivery 1): completed",
     "role": "results", "message_id": "5f1c...", "kind": "result",
     "delivery_count": 1, "outcome": "completed"}

``role``, ``message_id``, ``kind`` and ``delivery_count`` are filled in for
every line logged while a handler runs (the framework's and the handler's
own, through :class:`DeliveryLog`'s handling context), ``null`` elsewhere;
``outcome`` on the one line :class:`DeliveryLog` writes when a delivery ends.

The PHI rules of :mod:`iris_cloud.logs` hold: the framework's messages carry
ids, kinds and classes only; a message's id is escaped and capped, its kind
shown as :func:`~iris_cloud.model.shown_kind` gives it (``event:other`` for an
event type the model does not know, which is the sender's text); an
exception's traceback keeps its classes and frames, never its text
(``"exception"`` key), whichever logger logged it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from iris_cloud.logs import get_logger, traceback_without_text
from iris_cloud.model import shown_kind
from iris_cloud.observers import ConsumerObserver, Delivery, Outcome
from iris_cloud.untrusted import clean

__all__ = ["FIELDS", "DeliveryLog", "JsonFormatter", "use_json_logs"]

FIELDS = ("role", "message_id", "kind", "delivery_count", "outcome")
"""The delivery keys of every JSON line (``null`` where they do not apply)."""

log = get_logger("iris_cloud.deliveries")

_current: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "iris_cloud_delivery", default=None
)


def _delivery_fields(delivery: Delivery, outcome: str | None = None) -> dict[str, Any]:
    return {
        "role": delivery.source,
        "message_id": delivery.message_id,
        "kind": shown_kind(delivery.kind),
        "delivery_count": delivery.attempt,
        "outcome": outcome,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the delivery keys."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        fields: dict[str, Any] = dict.fromkeys(FIELDS)
        current = _current.get()
        if current is not None:
            fields.update(_delivery_fields(current))
        # What a record carries itself (DeliveryLog's extra) wins over the context.
        fields.update({k: getattr(record, k) for k in FIELDS if getattr(record, k, None)})
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields.items():
            # Ids and kinds are the sender's strings: escaped and capped as in text logs.
            line[key] = value if value is None or isinstance(value, int) else clean(value)
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = traceback_without_text(record.exc_info[1])
        return json.dumps(line)


class DeliveryLog(ConsumerObserver):
    """Tags log lines with the delivery being handled; one line when each delivery ends."""

    @contextlib.contextmanager
    def handling(self, delivery: Delivery) -> Iterator[None]:
        """Lines logged in the handler's thread meanwhile carry the delivery's keys."""
        token = _current.set(delivery)
        try:
            yield
        finally:
            _current.reset(token)

    def message_finished(self, delivery: Delivery, outcome: Outcome) -> None:
        """Log how the delivery ended (INFO: ``-v``)."""
        log.info(
            "%s message_id=%s from %s (delivery %d): %s",
            shown_kind(delivery.kind),
            delivery.message_id,
            delivery.source,
            delivery.attempt,
            outcome,
            extra=_delivery_fields(delivery, outcome),
        )


def use_json_logs(stream: Any = None) -> JsonFormatter:
    """Format the root logger's stream handlers as JSON lines; returns the formatter.

    Handlers of other kinds (files an application set up, pytest's capture)
    keep their formatters. Only when the root logger has no handler at all is
    one added, writing to ``stream`` (default stderr).
    """
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(stream or sys.stderr))
    for handler in root.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(formatter)
    return formatter
