"""``iris-cloud deadletters`` on mem:// and local://, and a replay killed half-way."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from iris_cloud.cli import main
from iris_cloud.config import Profile, load_profile
from iris_cloud.deadletters import REPLAY_PROPERTY, SweepReport, browse
from iris_cloud.ports import Message
from iris_cloud.providers.memory import MemoryBroker
from test_cli_workflow import wide_console  # noqa: F401 - autouse: a wide console, no env

pytestmark = pytest.mark.timeout(60)

HOSTILE_REASON = "Bad\x1b]0;owned\x07\nFAKE LINE"
HOSTILE_DESCRIPTION = "field \u202eevil\u202c\r\x1b[2J"


def write_config(tmp_path: Path, kind: str) -> Path:
    if kind == "mem":
        url = f"mem://dl-{uuid.uuid4().hex[:10]}"
    else:
        url = f"local://{tmp_path}/queues?queue=events&lock_seconds=1"
    path = tmp_path / "iris-cloud.toml"
    path.write_text(f'default_profile = "dev"\n[profiles.dev]\nevents = "{url}"\n')
    return path


def run(*args: str, stdin: str | None = None) -> Result:
    # A short wait at the end of each sweep: these queues are local and quiet.
    argv = [*args, "--wait", "0.2"] if args[0] == "deadletters" and "--help" not in args else args
    return CliRunner().invoke(main, list(argv), input=stdin, catch_exceptions=False)


def dead_letter(config: Path, *messages: tuple[Message, str, str]) -> None:
    """Put each message in the dead-letter queue with its reason and description."""
    with load_profile(config_file=config).open_broker("events") as broker:
        for msg, reason, description in messages:
            broker.send(msg)
            [got] = broker.receive(1, wait=2)
            broker.dead_letter(got, reason, description)


def source(profile: Profile) -> list[Message]:
    """Every message now on the events queue (taken and completed)."""
    got: list[Message] = []
    with profile.open_broker("events") as broker:
        while batch := broker.receive(10, wait=0.3):
            for m in batch:
                broker.complete(m)
            got.extend(batch)
    return got


def order(i: int) -> Message:
    return Message(
        body=json.dumps({"n": i}).encode(),
        message_id=f"msg-{i}",
        correlation_id=f"order-{i}",
        subject="OrderResult",
        properties={"MessageType": "OrderResult", "n": i, "flag": True},
    )


@pytest.fixture(params=["mem", "local"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = write_config(tmp_path, request.param)
    dead_letter(
        path,
        (order(1), HOSTILE_REASON, HOSTILE_DESCRIPTION),
        (order(2), "ValidationFailed", "ClientGuid: field required"),
        (order(3), "ValidationFailed", "Order.LocalId: field required"),
    )
    return path


def test_list_shows_headers_escaped_and_no_body(config: Path) -> None:
    out = run("deadletters", "list", "events", "--config", str(config))
    assert out.exit_code == 0, out.output
    for i in (1, 2, 3):
        assert f"msg-{i}" in out.stdout
    assert "ValidationFailed" in out.stdout and "ClientGuid: field required" in out.stdout
    assert "\x1b" not in out.output and "\u202e" not in out.output and "\x07" not in out.output
    assert "\\x1b]0;owned\\x07\\x0aFAKE LINE" in out.stdout
    assert "FAKE LINE" not in [line.strip() for line in out.stdout.splitlines()]
    assert '"n"' not in out.stdout  # no body
    assert "3 dead letter(s)" in out.stderr
    data = json.loads(
        run("deadletters", "list", "events", "--config", str(config), "--json").stdout
    )
    assert {d["message_id"] for d in data} == {"msg-1", "msg-2", "msg-3"}
    first = next(d for d in data if d["message_id"] == "msg-1")
    assert first["reason"] == HOSTILE_REASON and first["description"] == HOSTILE_DESCRIPTION
    assert first["delivery_count"] >= 1 and first["enqueued_at"]
    # Looking settles nothing.
    again = run("deadletters", "list", "events", "--config", str(config), "--json").stdout
    assert len(json.loads(again)) == 3


def test_show_prints_the_body_only_when_asked(config: Path) -> None:
    args = ("deadletters", "show", "events", "msg-2", "--config", str(config))
    out = run(*args)
    assert out.exit_code == 0, out.output
    assert "correlation_id: order-2" in out.stdout and "property n: 2" in out.stdout
    assert "body_bytes: 8" in out.stdout and "body:" not in out.stdout
    with_body = run(*args, "--body")
    assert 'body:\n{\n  "n": 2\n}' in with_body.stdout
    data = json.loads(run(*args, "--json", "--body").stdout)
    assert data["body"] == '{"n": 2}' and data["properties"]["flag"] is True
    hostile = run("deadletters", "show", "events", "msg-1", "--config", str(config))
    assert "\x1b" not in hostile.output and "\\x1b]0;owned" in hostile.stdout
    missing = run("deadletters", "show", "events", "nope\x1b[2J", "--config", str(config))
    assert missing.exit_code == 1 and "\x1b" not in missing.output


def test_replay_by_id_reason_and_all(config: Path) -> None:
    profile = load_profile(config_file=config)
    out = run("deadletters", "replay", "events", "--id", "msg-2", "--config", str(config))
    assert out.exit_code == 0, out.output
    assert "replayed 1 of 3" in out.stderr
    [back] = source(profile)
    want = order(2)
    assert (back.message_id, back.body, back.correlation_id, back.subject) == (
        want.message_id,
        want.body,
        want.correlation_id,
        want.subject,
    )
    replay_id = back.properties.pop(REPLAY_PROPERTY)
    assert back.properties == want.properties and isinstance(replay_id, str) and replay_id
    assert back.dead_letter_reason is None and back.delivery_count == 1
    out = run(
        "deadletters", "replay", "events", "--reason", "ValidationFailed", "--config", str(config)
    )
    assert out.exit_code == 0, out.output
    assert [m.message_id for m in source(profile)] == ["msg-3"]
    out = run("deadletters", "replay", "events", "--all", "--config", str(config))
    assert "replayed 1 of 1" in out.stderr
    assert [m.message_id for m in source(profile)] == ["msg-1"]
    assert run("deadletters", "list", "events", "--config", str(config), "--json").stdout == "[]\n"


def test_replay_needs_one_selection_and_reports_unknown_ids(config: Path) -> None:
    assert run("deadletters", "replay", "events", "--config", str(config)).exit_code == 2
    both = run("deadletters", "replay", "events", "--all", "--id", "x", "--config", str(config))
    assert both.exit_code == 2
    out = run(
        "deadletters", "replay", "events", "--id", "msg-3", "--id", "gone", "--config", str(config)
    )
    assert out.exit_code == 1 and "1 id(s) not found" in out.stderr
    assert [m.message_id for m in source(load_profile(config_file=config))] == ["msg-3"]


def test_purge_asks_then_reports_the_count(config: Path) -> None:
    declined = run("deadletters", "purge", "events", "--config", str(config), stdin="n\n")
    assert declined.exit_code == 1 and "Delete every dead letter of events" in declined.output
    listed = run("deadletters", "list", "events", "--config", str(config), "--json").stdout
    assert len(json.loads(listed)) == 3
    one = run(
        "deadletters", "purge", "events", "--id", "msg-1", "--config", str(config), stdin="y\n"
    )
    assert one.exit_code == 0 and "purged 1 dead letter(s)" in one.stderr
    out = run("deadletters", "purge", "events", "--yes", "--config", str(config))
    assert out.exit_code == 0 and "purged 2 dead letter(s)" in out.stderr
    assert run("deadletters", "list", "events", "--config", str(config), "--json").stdout == "[]\n"
    assert source(load_profile(config_file=config)) == []


# The replay, in a process that SIGKILLs itself at a real point of the work:
# inside the provider's send (nothing sent yet) or its complete (sent, not removed).
KILLED_REPLAY = """
import os, signal, sys
from iris_cloud.providers.local import LocalBroker

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

setattr(LocalBroker, sys.argv[2], die)
from iris_cloud.cli import main
main(["deadletters", "replay", "events", "--all", "--config", sys.argv[1]])
"""


@pytest.mark.parametrize("point", ["_send_batch", "complete"])
def test_replay_killed_between_send_and_complete_loses_nothing(tmp_path: Path, point: str) -> None:
    config = write_config(tmp_path, "local")
    dead_letter(config, (order(7), "HandlerFailed", "ValueError"))
    script = tmp_path / "replay.py"
    script.write_text(KILLED_REPLAY)
    proc = subprocess.run(
        [sys.executable, str(script), str(config), point], timeout=30, check=False
    )
    assert proc.returncode == -signal.SIGKILL
    profile = load_profile(config_file=config)
    sent = source(profile)
    assert [m.message_id for m in sent] == ([] if point == "_send_batch" else ["msg-7"])
    time.sleep(1.2)  # the killed process's locks (1 s) run out
    listed = run("deadletters", "list", "events", "--config", str(config), "--json").stdout
    assert [d["message_id"] for d in json.loads(listed)] == ["msg-7"]  # still dead-lettered
    out = run("deadletters", "replay", "events", "--all", "--config", str(config))
    assert out.exit_code == 0 and "replayed 1 of 1" in out.stderr, out.output
    # Replayed once more: a duplicate after the kill in complete, never a loss.
    assert [m.message_id for m in source(profile)] == ["msg-7"]
    assert run("deadletters", "list", "events", "--config", str(config), "--json").stdout == "[]\n"


def test_a_sweep_that_outlasts_the_locks_sees_each_dead_letter_once() -> None:
    # The locks of the held dead letters run out during the sweep: their copies
    # come back and are held again, not counted as new, and the sweep ends.
    broker = MemoryBroker(f"dl-{uuid.uuid4().hex[:10]}", lock_seconds=0.2)
    broker._send_batch([Message(b"x", message_id=f"m{i}") for i in range(3)])
    for msg in broker.receive(10, wait=1.0):
        broker.dead_letter(msg, "Poison")

    def slow(report: SweepReport) -> None:
        time.sleep(0.3)  # past every lock taken so far

    report = browse(broker, wait=0.2, progress=slow)
    assert sorted(m.message_id for m in report.messages) == ["m0", "m1", "m2"]
    assert report.seen == 3


def test_a_long_sweep_renews_the_locks_it_holds_and_sees_every_dead_letter() -> None:
    # Longer than the lock (2 s): without renewal the first batch would come
    # back before the last, the sweep would end there, and list would stop at 30.
    broker = MemoryBroker(f"dl-{uuid.uuid4().hex[:10]}", lock_seconds=2.0)
    broker._send_batch([Message(b"x", message_id=f"m{i}") for i in range(40)])
    taken: list[Message] = []
    while len(taken) < 40:
        taken += broker.receive(10, wait=1.0)
    for msg in taken:
        broker.dead_letter(msg, "Poison")

    def slow(report: SweepReport) -> None:
        time.sleep(0.7)

    report = browse(broker, wait=0.2, progress=slow)
    assert report.seen == 40
    assert sorted(m.message_id for m in report.messages) == sorted(f"m{i}" for i in range(40))
