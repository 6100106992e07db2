"""``validate`` and ``schema`` through click's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from iris_cloud.cli.validate import register
from iris_cloud.model import SCHEMA_TYPES, sample_files


@click.group()
def cli() -> None:
    """Stand-in for the iris-cloud group."""


register(cli)
SAMPLES = {p.name: p.read_bytes() for p in sample_files()}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("order-new.json", "event-unknown-type.json", "grading-2.json"):
        out[name] = tmp_path / name
        out[name].write_bytes(SAMPLES[name])
    bad = json.loads(SAMPLES["order-new.json"])
    del bad["Version"]
    bad["Order"]["LocalId"] = ""
    out["bad.json"] = tmp_path / "bad.json"
    out["bad.json"].write_text(json.dumps(bad))
    return out


def test_validate_ok(files: dict[str, Path]) -> None:
    names = ("order-new.json", "event-unknown-type.json", "grading-2.json")
    result = CliRunner().invoke(cli, ["validate", *(str(files[n]) for n in names)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("OK order")
    assert lines[1].endswith("OK event:OrderReopenedEvent")
    assert lines[2].endswith("OK grading")


def test_validate_reports_every_error_and_exits_1(files: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        cli, ["validate", str(files["order-new.json"]), str(files["bad.json"])]
    )
    assert result.exit_code == 1
    assert "OK order" in result.output
    assert f"{files['bad.json']}: INVALID order" in result.output
    assert "  Version: Field required [missing]" in result.output
    assert "  Order.LocalId:" in result.output


def test_validate_json_output(files: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        cli, ["validate", "--json", str(files["grading-2.json"]), str(files["bad.json"])]
    )
    assert result.exit_code == 1
    verdicts = json.loads(result.output)
    assert verdicts[0] == {
        "source": str(files["grading-2.json"]),
        "valid": True,
        "kind": "grading",
        "errors": [],
    }
    assert verdicts[1]["valid"] is False and verdicts[1]["kind"] == "order"
    assert {e["path"] for e in verdicts[1]["errors"]} == {"Version", "Order.LocalId"}


def test_validate_undetectable_document(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text('{"Hello": 1}')
    result = CliRunner().invoke(cli, ["validate", "--json", str(target)])
    assert result.exit_code == 1
    [verdict] = json.loads(result.output)
    assert verdict["kind"] is None and verdict["errors"][0]["type"] == "message_kind"


def test_validate_stdin() -> None:
    result = CliRunner().invoke(cli, ["validate", "-"], input=SAMPLES["result-final.json"])
    assert result.exit_code == 0
    assert result.output == "-: OK result\n"


def test_validate_bundled_samples() -> None:
    result = CliRunner().invoke(cli, ["validate", "--samples"])
    assert result.exit_code == 0, result.output
    assert result.output.count(": OK ") == len(SAMPLES)


def test_validate_needs_input() -> None:
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 2
    result = CliRunner().invoke(cli, ["validate", "/nonexistent/x.json"])
    assert result.exit_code == 2


def test_schema_prints_one() -> None:
    result = CliRunner().invoke(cli, ["schema", "order"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "OrderRequest"


def test_schema_all_to_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["schema", "all", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert len(written) == len(SCHEMA_TYPES)
    assert "event-OrderGradedEvent.schema.json" in written
    assert (
        json.loads((tmp_path / "s" / "grading.schema.json").read_text())["title"]
        == "GradingSubmission"
    )


def test_schema_all_printed_and_unknown_type() -> None:
    result = CliRunner().invoke(cli, ["schema", "all"])
    assert result.exit_code == 0
    assert set(json.loads(result.output)) == set(SCHEMA_TYPES)
    result = CliRunner().invoke(cli, ["schema", "invoice"])
    assert result.exit_code == 2
    assert "unknown message type" in result.output


def test_help_on_both_commands() -> None:
    for command in ("validate", "schema"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0
        assert "Usage:" in result.output
