"""JSON log lines: their keys, the delivery context in handler threads, exception text withheld."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.jsonlogs import FIELDS, DeliveryLog, JsonFormatter, use_json_logs
from iris_cloud.logs import get_logger
from iris_cloud.model import Event
from iris_cloud.providers.memory import MemoryBroker
from test_observers import event_body

pytestmark = pytest.mark.timeout(60)

SECRET_TEXT = "patient Jane Doe, born 1970-01-01"


@pytest.fixture
def json_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Root logging at DEBUG into a JSON-formatted buffer; a call parses its lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def test_a_consumer_run_as_json_lines(json_lines: Callable[[], list[dict[str, Any]]]) -> None:
    broker = MemoryBroker(f"json-{uuid.uuid4().hex[:8]}")
    broker.send([event_body(), b"{not json"])
    app = IrisApp()
    handler_log = logging.getLogger("integrator.handler")

    @app.on(Event)
    def handle(evt: Event) -> None:
        handler_log.info("handling an event")

    with Consumer(app, {"events": broker}, observers=[DeliveryLog()], wait=0.05) as consumer:
        consumer.run_until(lambda s: s.completed >= 1 and s.poison >= 1, timeout=10)
    lines = json_lines()
    assert lines
    for line in lines:
        assert list(line)[:4] == ["time", "level", "logger", "message"]
        assert set(FIELDS) <= set(line)
        assert line["time"].endswith("Z")
    [mine] = [line for line in lines if line["logger"] == "integrator.handler"]
    # The handler's own line is tagged with the delivery it was handling.
    assert mine["role"] == "events" and mine["kind"] == "event:OrderGradedEvent"
    assert mine["delivery_count"] == 1 and mine["message_id"] and mine["outcome"] is None
    ends = {line["outcome"]: line for line in lines if line["logger"] == "iris_cloud.deliveries"}
    assert set(ends) == {"completed", "poison"}
    assert ends["completed"]["message_id"] == mine["message_id"]
    assert ends["poison"]["kind"] == "invalid"


def test_exception_text_is_withheld_from_any_logger(
    json_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    try:
        raise ValueError(SECRET_TEXT)  # the traceback shows this line: code, not the text
    except ValueError:
        logging.getLogger("some.library").exception("it failed")
        get_logger("iris_cloud.test").exception("it failed")
    assert len(json_lines()) == 2
    for line in json_lines():
        text = json.dumps(line)
        assert "ValueError (text withheld)" in text
        assert "Jane" not in text and "1970" not in text


def test_ids_from_a_sender_are_escaped(json_lines: Callable[[], list[dict[str, Any]]]) -> None:
    from iris_cloud.observers import Delivery
    from iris_cloud.ports import Message

    forged = Message(body=b"", message_id='x"}\n{"level": "ERROR", "forged": true')
    DeliveryLog().message_finished(Delivery("events", forged, "result", 1), "completed")
    [line] = json_lines()
    assert "forged" not in line and line["level"] == "INFO"
    assert "\n" not in line["message_id"]


def test_use_json_logs_keeps_other_handlers() -> None:
    root = logging.getLogger()
    mine = logging.StreamHandler(io.StringIO())
    capture = logging.FileHandler("/dev/null")  # a handler of another kind
    before = list(root.handlers)
    root.handlers = [mine, capture]
    try:
        formatter = use_json_logs()
        assert mine.formatter is formatter and capture.formatter is not formatter
    finally:
        root.handlers = before
        capture.close()


def test_use_json_logs_adds_a_handler_only_to_a_bare_root() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    capture = logging.FileHandler("/dev/null")
    stream = io.StringIO()
    try:
        root.handlers = [capture]
        use_json_logs(stream)
        assert root.handlers == [capture]
        root.handlers = []
        use_json_logs(stream)
        [added] = root.handlers
        assert isinstance(added.formatter, JsonFormatter)
    finally:
        root.handlers = before
        capture.close()
