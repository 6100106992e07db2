"""An event type is the sender's text: one the model does not know is never shown.

A sender names its event's ``ResultObjectType``; a patient's name there must
reach no text or JSON log line and no span attribute, whether the event is
handled, retried or dead-lettered. Logs, metrics and spans all show it as
``event:other``.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.jsonlogs import DeliveryLog, JsonFormatter
from iris_cloud.model import sample_files
from iris_cloud.ports import Message, MessageBroker
from iris_cloud.testing.spans import SpanRecorder

FIRST, LAST = "Quixotely", "Zarathustra-Phi"


def named_event(fail: bool) -> Message:
    [path] = [f for f in sample_files() if f.name == "event-order-graded.json"]
    data: dict[str, Any] = json.loads(path.read_bytes())
    data["TransactionId"] = str(uuid.uuid4())
    data["ResultObjectType"] = f"{FIRST} {LAST}"
    return Message(body=json.dumps(data).encode(), properties={"fail": "yes" if fail else "no"})


@pytest.fixture
def logged() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Every record at DEBUG, as text and as JSON lines, formatted where it is logged."""
    text, lines = io.StringIO(), io.StringIO()
    plain = logging.StreamHandler(text)
    plain.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    as_json = logging.StreamHandler(lines)
    as_json.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(plain)
    root.addHandler(as_json)
    try:
        yield text, lines
    finally:
        root.removeHandler(plain)
        root.removeHandler(as_json)
        root.setLevel(level)


def test_an_unknown_event_type_reaches_no_log_and_no_span(
    mem_broker: MessageBroker, spans: SpanRecorder, logged: tuple[io.StringIO, io.StringIO]
) -> None:
    app = IrisApp()

    @app.fallback
    def handle(message: Any, ctx: Context) -> None:
        if ctx.message.properties.get("fail") == "yes":
            raise ValueError("refused")

    mem_broker.send([named_event(fail=False), named_event(fail=True)])
    consumer = Consumer(
        app,
        {"events": mem_broker},
        wait=0.1,
        backoff_initial=0,
        max_attempts=2,
        observers=[DeliveryLog()],
    )
    with consumer:
        stats = consumer.run_until(lambda s: s.completed + s.dead_lettered >= 2, timeout=20)
    assert stats.completed == 1 and stats.retried == 1 and stats.dead_lettered == 1

    text, lines = (stream.getvalue() for stream in logged)
    records = [json.loads(line) for line in lines.splitlines()]
    assert any(r["outcome"] == "dead_lettered" for r in records), "nothing to check"
    assert {r["kind"] for r in records if r["outcome"]} == {"event:other"}
    assert "event:other" in text
    attributes = [str(dict(s.attributes or {})) for s in spans.finished]
    assert any("event:other" in a for a in attributes), "no handle span to check"
    for where, shown in (("text logs", text), ("JSON logs", lines), ("spans", attributes)):
        found = [v for v in (FIRST, LAST) if v in str(shown)]
        assert not found, f"the event type in the {where}: {found}"
