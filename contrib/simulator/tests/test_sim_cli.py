"""The commands: ``iris-cloud demo`` and ``iris-cloud simulate``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from iris_cloud.client import IrisClient
from iris_cloud.config import Profile
from iris_cloud_simulator import Simulator
from iris_cloud_simulator.demo import demo_command
from iris_cloud_simulator.samples import jpeg_image, new_local_id, sample_order
from simhelpers import CLIENT_GUID, Reader


def demo_cli() -> click.Group:
    @click.group()
    def cli() -> None:
        """Test group."""

    cli.add_command(demo_command)
    return cli


def test_demo_runs_the_whole_exchange(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        demo_cli(), ["demo", "--dir", str(tmp_path), "--orders", "2", "--timeout", "120"]
    )
    assert result.exit_code == 0, result.output
    assert "events seen" in result.output and "saved reports" in result.output
    assert "cancelled" in result.output
    pdfs = sorted((tmp_path / "results").glob("*.pdf"))
    # one Image First, one Order First and the changed order; the cancelled one has none
    assert len(pdfs) == 3
    assert {p.name[:3] for p in pdfs} == {"IF-", "OF-", "XO-"}
    for pdf in pdfs:
        assert pdf.read_bytes().startswith(b"%PDF")
        assert str(pdf) in result.output.replace("\n", "")


def test_demo_reports_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A simulator that never starts: nothing comes back within the timeout.
    monkeypatch.setattr(Simulator, "start", lambda self: None)
    result = CliRunner().invoke(
        demo_cli(), ["demo", "--dir", str(tmp_path), "--orders", "1", "--timeout", "2"]
    )
    assert result.exit_code == 1
    assert "demo incomplete" in result.output
    assert "no result; events seen: none" in result.output
    assert "no OrderCancelled" in result.output


def test_simulate_and_demo_are_registered_as_plugin_commands() -> None:
    from iris_cloud.cli import BUILTIN_COMMANDS, main

    assert main.commands["demo"] is demo_command
    assert not any("demo" in name for name in BUILTIN_COMMANDS)  # core has no demo of its own
    assert "simulate" in main.commands
    result = CliRunner().invoke(main, ["simulate", "--help"])
    assert result.exit_code == 0
    assert "--state-dir" in result.output and "--auto-grade" in result.output


def test_simulate_serves_until_sigterm(tmp_path: Path) -> None:
    queues = f"local://{tmp_path}/queues"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "IRIS_CLOUD_CLIENT_GUID": CLIENT_GUID,
        "IRIS_CLOUD_ORDERS": f"{queues}?queue=orders",
        "IRIS_CLOUD_EVENTS": f"{queues}?queue=events",
        "IRIS_CLOUD_RESULTS": f"{queues}?queue=results",
        "IRIS_CLOUD_GRADINGS": f"{queues}?queue=gradings",
        "IRIS_CLOUD_IMAGES": f"file://{tmp_path}/images",
        "IRIS_CLOUD_CLAIM_CHECK": f"file://{tmp_path}/claims",
        "IRIS_CLOUD_CONSUMER__WAIT": "0.2",
    }
    env.pop("IRIS_CLOUD_PROFILE", None)
    env.pop("IRIS_CLOUD_CONFIG", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from iris_cloud.cli import main; main()",
            "simulate",
            "--state-dir",
            str(tmp_path / "state"),
            "--poll-interval",
            "0.1",
            "-v",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        integrator = Profile.from_dict(
            {
                "client_guid": CLIENT_GUID,
                "orders": f"{queues}?queue=orders",
                "events": f"{queues}?queue=events",
                "images": f"file://{tmp_path}/images",
            }
        )
        local_id = new_local_id()
        with IrisClient(integrator) as iris:
            ref = iris.upload_image(jpeg_image())
            iris.submit_order(
                sample_order(local_id, images=[ref.image(local_id="1", laterality="OD").to_dict()])
            )
        with integrator.open_broker("events") as broker:
            reader = Reader(broker)
            seen: list[str] = []
            deadline = time.monotonic() + 90
            while "ResultsDeliveryReceipt" not in seen and time.monotonic() < deadline:
                seen += [e.result_object_type for e in reader.events(wait=0.5)]
        assert seen == [
            "OrderCreationReceipt",
            "ImageReceipt",
            "ReadyForGradingEvent",
            "GradingReceipt",
            "OrderGradedEvent",
            "ResultsDeliveryReceipt",
        ]
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output.decode(errors="replace")
    text = output.decode(errors="replace")
    assert "simulator stopped" in text and "results_sent 1" in text
    assert "order " in text  # -v logged what it did ...
    assert "John" not in text and "Doe" not in text  # ... without patient data
