"""The operations tooling (issue 15) meets a sender's text: spans, the dead-letter sweep, loggers.

A message id is the sender's on ``mem://``, ``local://`` and Service Bus: any
length, any characters. Where the tooling writes one (a span attribute, a log
line) it must be escaped and capped as every other log line is.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from iris_cloud import deadletters
from iris_cloud.config import load_profile
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.errors import LockLost
from iris_cloud.logs import SafeLogger
from iris_cloud.model import OrderRequest
from iris_cloud.model.samples import sample_files
from iris_cloud.ports import Message
from iris_cloud.providers.memory import MemoryBroker
from iris_cloud.testing.spans import SpanRecorder
from iris_cloud.untrusted import MAX_CHARS

# A forged log line, a terminal escape, a bidi override and a flood.
HOSTILE_ID = "m1\nWARNING forged line\x1b[2J\u202e" + "A" * 100_000


def order_body() -> bytes:
    [path] = [f for f in sample_files() if f.name == "order-new.json"]
    return path.read_bytes()


def assert_clean(value: object) -> None:
    assert isinstance(value, str)
    assert not any(ch in value for ch in "\n\x1b\u202e"), value[:80]
    assert len(value) <= MAX_CHARS + 20


def test_span_attributes_carry_a_hostile_message_id_escaped_and_capped(
    spans: SpanRecorder,
) -> None:
    broker = MemoryBroker(f"ops-{uuid.uuid4().hex}")
    app = IrisApp()

    @app.on(OrderRequest)
    def take(order: OrderRequest, ctx: Context) -> None:
        pass

    # Straight onto the queue, as another sender could.
    broker._send_batch([Message(order_body(), message_id=HOSTILE_ID)])
    with Consumer(app, {"orders": broker}, wait=0.1) as consumer:
        stats = consumer.run_until(lambda s: s.completed >= 1, timeout=30)
    assert stats.completed == 1
    recorded = [s for s in spans.finished if s.name in ("receive", "handle")]
    assert {s.name for s in recorded} == {"receive", "handle"}
    for span in recorded:
        attributes = dict(span.attributes or {})
        assert_clean(attributes["messaging.message.id"])
        assert "A" * (MAX_CHARS + 1) not in json.dumps(attributes)


class _NoGiveBack(MemoryBroker):
    """A broker whose abandon fails as after a lost lock (the message comes back by itself)."""

    def abandon(self, message: Message, delay: float | None = None) -> None:
        raise LockLost("gone")


def test_a_dead_letter_sweep_logs_a_hostile_message_id_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = _NoGiveBack(f"ops-{uuid.uuid4().hex}")
    broker._send_batch([Message(b"{}", message_id=HOSTILE_ID)])
    [got] = broker.receive(1, wait=1.0)
    broker.dead_letter(got, "Poison")
    report = deadletters.browse(broker, wait=0.1)
    assert report.seen == 1
    lines = [r.getMessage() for r in caplog.records if r.name == deadletters.__name__]
    assert lines, "the failed give-back was not logged"
    for line in lines:
        assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
        assert "A" * (MAX_CHARS + 1) not in line


def _framework_modules() -> list[str]:
    names = []
    for top in ("iris_cloud", "iris_cloud_aws", "iris_cloud_azure", "iris_cloud_gcp"):
        try:
            package = importlib.import_module(top)
        except ImportError:
            continue
        names.append(top)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{top}."):
            names.append(info.name)
    return names


def test_every_framework_logger_escapes_its_arguments() -> None:
    # A module logging through a plain logging.Logger passes a sender's id
    # (or a name derived from one) to the log unescaped and uncapped.
    plain = []
    for name in _framework_modules():
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue  # an optional extra this env does not install
        for attr in ("log", "logger", "_log", "_logger"):
            value = getattr(module, attr, None)
            if isinstance(value, logging.Logger) and not isinstance(value, SafeLogger):
                plain.append(f"{name}.{attr}")
    assert not plain, f"plain loggers (use iris_cloud.logs.get_logger): {plain}"


def test_dead_letters_sharing_one_id_hide_no_other_from_the_deadletters_command(
    local_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    # A sender reuses one message id for a flood of poison: each is a dead
    # letter of its own, and the one legitimate dead letter behind them must
    # still be listed, replayed and purged.
    config = local_config()
    flood = [Message(b"poison", message_id="X") for _ in range(25)]
    with load_profile(config_file=config).open_broker("events") as broker:
        broker._send_batch([*flood, Message(b"{}", message_id="legit-1")])
        taken: list[Message] = []
        while len(taken) < 26:
            taken += broker.receive(10, wait=1.0)
        for msg in taken:
            broker.dead_letter(msg, "Poison")
    where = ("--config", str(config), "--wait", "0.2")
    listed = cli("deadletters", "list", "events", "--json", *where)
    assert listed.exit_code == 0, listed.output
    ids = [m["message_id"] for m in json.loads(listed.stdout)]
    assert sorted(ids) == ["X"] * 25 + ["legit-1"]
    replayed = cli("deadletters", "replay", "events", "--id", "legit-1", *where)
    assert replayed.exit_code == 0, replayed.output
    with load_profile(config_file=config).open_broker("events") as broker:
        [back] = broker.receive(10, wait=1.0)
        assert back.message_id == "legit-1"
        broker.complete(back)
    purged = cli("deadletters", "purge", "events", "--yes", *where)
    assert purged.exit_code == 0, purged.output
    assert "purged 25 dead letter(s)" in purged.output
    with load_profile(config_file=config).open_broker("events") as broker:
        assert broker.receive_dead_letters(10, wait=0.5) == []
