"""``iris-cloud deadletters`` on SQS (moto): a queue with a dead-letter queue, and one without."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from iris_cloud.cli import main
from iris_cloud.config import load_profile
from iris_cloud.ports import Message
from iris_cloud_aws.testing import MotoServer


def write_config(
    moto: MotoServer, tmp_path: Path, queue: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    options = moto.options()
    lines = ["[profiles.t]", "[profiles.t.events]", f'url = "{moto.broker_url(queue)}"']
    for key, value in options.items():
        if key.startswith("aws_"):
            monkeypatch.setenv(f"T_{key.upper()}", value)
            lines.append(f'{key} = {{ env = "T_{key.upper()}" }}')
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    path = tmp_path / "iris-cloud.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(config: Path, *args: str) -> tuple[int, str, str]:
    argv = ["deadletters", *args, "events", "--profile", "t", "--config", str(config)]
    out = CliRunner().invoke(main, [*argv, "--wait", "1"], catch_exceptions=False)
    return out.exit_code, out.stdout, out.stderr


def test_list_and_replay_on_sqs(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    moto.create_queue(name, dead_letter=True, max_receive_count=3)
    config = write_config(moto, tmp_path, name, monkeypatch)
    with load_profile("t", config_file=config).open_broker("events") as broker:
        broker.send(Message(b"{}", message_id="m-1", properties={"k": "v"}))
        [msg] = broker.receive(1, wait=2)
        broker.dead_letter(msg, "HandlerFailed", "ValueError")
    code, stdout, _ = run(config, "list", "--json")
    assert code == 0 and [d["message_id"] for d in json.loads(stdout)] == ["m-1"]
    code, _, stderr = run(config, "replay", "--all")
    assert code == 0 and "replayed 1 of 1" in stderr
    with load_profile("t", config_file=config).open_broker("events") as broker:
        [back] = broker.receive(1, wait=2)
        assert back.message_id == "m-1" and back.properties["k"] == "v"


def test_a_queue_without_dead_letter_queue_is_refused_clearly(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    moto.create_queue(name)
    config = write_config(moto, tmp_path, name, monkeypatch)
    code, _, stderr = run(config, "list")
    assert code == 2
    assert "no dead-letter queue to read here" in stderr and "no redrive policy" in stderr
