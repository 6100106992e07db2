"""Logs and terminal against a hostile sender (issue 12 §4-§5), on the built-in providers.

A sender controls message ids, ``ResultObjectType`` and every field: with
root logging at DEBUG none of it may forge a log line, put a patient's data
in the log or in a dead-letter reason, or drive the terminal of
``iris-cloud listen``; error messages print literally.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from iris_cloud.cli import main as iris_cloud_cli
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.logs import SDK_LOGGERS, get_logger
from iris_cloud.model import OrderRequest
from iris_cloud.ports import Message
from iris_cloud.untrusted import clean
from test_cli_workflow import profile_of, write_config
from wfhelpers import make_profile, new_order, sample

PHI = "Quixotely"
"""A surname no log line has any reason to contain."""
FORGED = "\nCRITICAL root: FORGED \x1b]0;pwned\x07\x1b[2J\u202e"


def test_clean_escapes_controls_and_caps() -> None:
    assert clean("a\nb\r\x1b[2J\x07\u2028\u202e") == "a\\x0ab\\x0d\\x1b[2J\\x07\\u2028\\u202e"
    assert clean("x" * 500) == "x" * 200 + "…(+300)"
    assert clean("tab\there\nline", None, lines=True) == "tab\there\nline"


def test_safe_logger_escapes_every_non_number_argument(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    get_logger("iris_cloud.test").warning("id=%s n=%d t=%.1f obj=%s", FORGED, 3, 1.5, [FORGED])
    (record,) = caplog.records
    text = record.getMessage()
    assert "\n" not in text and "\x1b" not in text and "\u202e" not in text
    assert "n=3 t=1.5" in text
    assert record.funcName == "test_safe_logger_escapes_every_non_number_argument"


def test_sdk_loggers_stay_at_warning_under_a_debug_root() -> None:
    import iris_cloud  # noqa: F401 - importing it is what quiets them

    for name in SDK_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name


@pytest.fixture(params=["mem", "local"])
def profile(request: pytest.FixtureRequest, tmp_path: Path) -> Profile:
    return make_profile(request.param, tmp_path)


def phi_order(local_id: str) -> dict[str, object]:
    order = new_order(local_id)
    order["Patient"]["Name"] = {"First": f"Ann{PHI}", "Last": PHI}
    order["Patient"]["LocalId"] = f"MRN-{PHI}"
    return order


def test_a_debug_consumer_logs_no_phi_and_no_forged_line(
    profile: Profile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    poison = phi_order("ORD-POISON")
    poison["Patient"]["Dob"] = f"{PHI}-1970"  # invalid: the value must not travel
    event = sample("event-order-graded.json")
    event["ResultObjectType"] = f"Order{FORGED}"  # an unknown kind, sender-made
    with profile.open_broker("orders") as broker:
        broker.send(
            [
                Message(body=json.dumps(phi_order("ORD-OK")).encode(), message_id="ok-1"),
                Message(body=json.dumps(phi_order("ORD-FAIL")).encode(), message_id=f"f{FORGED}"),
                Message(body=json.dumps(poison).encode(), message_id=f"p{FORGED}"),
            ]
        )
    with profile.open_broker("events") as broker:
        broker.send(Message(body=json.dumps(event).encode(), message_id=f"e{FORGED}"))
    app = IrisApp()

    @app.on(OrderRequest)
    def handle(order: OrderRequest, ctx: Context) -> None:
        if order.order.local_id == "ORD-FAIL":
            raise FileExistsError(17, "File exists", f"/saved/{PHI}")

    app.fallback(lambda model, ctx: None)
    with Consumer.from_profile(
        app, profile, roles=("orders", "events"), max_attempts=1, wait=0.1
    ) as consumer:
        stats = consumer.run_until(lambda s: s.handled + s.dead_lettered >= 4, timeout=20)
    assert stats.dead_lettered == 2, stats
    logged = [r.getMessage() for r in caplog.records]
    assert any("ok-1" in line for line in logged), "the consumer logged nothing to check"
    for line in logged:
        assert PHI not in line and "MRN-" not in line, line
        assert "\n" not in line and "\x1b" not in line and "\u202e" not in line, line
    with profile.open_broker("orders") as broker:
        dead = broker.receive_dead_letters(10, wait=1.0)
    assert len(dead) == 2
    for d in dead:
        text = f"{d.dead_letter_reason} {d.dead_letter_description}"
        assert PHI not in text and "/saved" not in text and "1970" not in text, text
    reasons = sorted(d.dead_letter_reason or "" for d in dead)
    assert reasons == ["FileExistsError", "invalid message: Patient.Dob"]


# -- the terminal ------------------------------------------------------------------


def test_listen_prints_sender_text_plainly_and_handles_it(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    hostile = sample("event-order-creation-failed.json")
    hostile["ErrorMessage"] = "[link=https://evil.example]click[/link] [/] \x1b]0;pwned\x07\x1b[2J"
    hostile["OrderLocalId"] = "ORD[/]\nFAKE line"
    with profile_of(config).open_broker("events") as broker:
        broker.send(json.dumps(hostile).encode())
    out = CliRunner().invoke(
        iris_cloud_cli,
        ["listen", "events", "--config", str(config), "--count", "1", "--timeout", "20"],
        catch_exceptions=False,
    )
    assert out.exit_code == 0, out.output
    assert "[link=https://evil.example]click[/link] [/]" in out.stdout
    assert "\x1b" not in out.output and "\x07" not in out.output
    assert "ORD[/]\\x0aFAKE line" in out.stdout
    assert "handled 1, dead-lettered 0" in out.output
    with profile_of(config).open_broker("events") as broker:
        assert broker.receive_dead_letters(1, wait=0.3) == []


def test_error_messages_print_literally(tmp_path: Path) -> None:
    # No AWS provider in this environment: the hint names the extra to install.
    config = write_config(tmp_path, events=f"awssqs://q-{uuid.uuid4().hex[:6]}?region=x")
    out = CliRunner().invoke(
        iris_cloud_cli, ["listen", "events", "--config", str(config), "--count", "1"]
    )
    assert out.exit_code != 0
    assert "iris-cloud[aws]" in out.output, out.output


def test_cli_verbosity_flags(caplog: pytest.LogCaptureFixture) -> None:
    runner = CliRunner()
    root = logging.getLogger()
    try:
        assert runner.invoke(iris_cloud_cli, ["-vv", "providers"]).exit_code == 0
        assert root.level == logging.DEBUG
        assert logging.getLogger("botocore").getEffectiveLevel() == logging.WARNING
        assert not any("SDK logging" in r.getMessage() for r in caplog.records)
        out = runner.invoke(iris_cloud_cli, ["--log-level", "info", "--sdk-logs", "providers"])
        assert out.exit_code == 0
        assert root.level == logging.INFO
        assert logging.getLogger("botocore").level == logging.INFO
        assert any("may log credentials" in r.getMessage() for r in caplog.records)
    finally:
        for name in SDK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        root.setLevel(logging.WARNING)


def test_a_logged_exception_keeps_frames_but_not_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    log = get_logger("iris_cloud.test")
    try:
        try:
            raise FileExistsError(17, "File exists", f"/saved/{PHI}.pdf")
        except OSError as inner:
            raise RuntimeError(f"saving {PHI} failed") from inner
    except RuntimeError:
        log.exception("unexpected error processing message_id=%s", "m1")
    (record,) = caplog.records
    text = logging.Formatter().format(record)
    assert PHI not in text
    assert "builtins.RuntimeError (text withheld)" in text
    assert "builtins.FileExistsError (text withheld)" in text
    assert "test_a_logged_exception_keeps_frames_but_not_its_text" in text
    assert record.exc_info is None


def test_validate_prints_names_and_paths_escaped(tmp_path: Path) -> None:
    bad = tmp_path / "order\x1b]0;pwned\x07.json"
    bad.write_text(json.dumps({"ResultObjectType": "OrderGradedEvent", "Success": "maybe"}))
    out = CliRunner().invoke(iris_cloud_cli, ["validate", str(bad)])
    assert out.exit_code != 0
    assert "\x1b" not in out.output and "\x07" not in out.output
    assert "order\\x1b]0;pwned\\x07.json: INVALID" in out.output
