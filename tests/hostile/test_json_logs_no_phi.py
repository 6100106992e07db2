"""``listen --log-format json`` at DEBUG: every line is JSON, and no patient data is in any.

The messages carry PHI-like values everywhere a sender can put them: the
patient block of a result, a document that does not decode (the handler's
exception), a body that does not parse, the subject and properties. The
real ``iris-cloud`` command runs with ``-vv`` and ``--log-format json``.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iris_cloud.config import load_profile
from iris_cloud.jsonlogs import FIELDS
from iris_cloud.model import sample_files
from iris_cloud.ports import Message

FIRST, LAST, DOB, MRN = "Quixotely", "Zarathustra-Phi", "2/3/1937", "MRN7f3k29xq"
ADDRESS = "742 Evergreen Terrace"
PHI = [FIRST, LAST, DOB, "1937", MRN, ADDRESS]


def result(content: str) -> dict[str, Any]:
    [path] = [f for f in sample_files() if f.name == "result-final.json"]
    data: dict[str, Any] = json.loads(path.read_bytes())
    data["Patient"].update({"LocalId": MRN, "Name": {"First": FIRST, "Last": LAST}, "Dob": DOB})
    data["ResultsDocument"]["Content"] = content
    return data


def test_json_log_lines_carry_no_patient_data(
    tmp_path: Path, local_config: Callable[..., Path]
) -> None:
    config = local_config()
    # The consumer section comes last: a failing document is dead-lettered on its 2nd try.
    config.write_text(config.read_text() + "max_attempts = 2\nbackoff_initial = 0\n")
    pdf = base64.b64encode(b"%PDF-1.4 " + FIRST.encode()).decode()
    with load_profile(config_file=config).open_broker("results") as broker:
        broker.send(
            [
                Message(body=json.dumps(result(pdf)).encode()),
                # Does not decode: save_result raises, quoting what it can.
                Message(body=json.dumps(result(f"{LAST}!{DOB}")).encode()),
                # Does not parse: dead-lettered as poison.
                Message(body=json.dumps({"Patient": {"Name": FIRST}, "ResultCode": MRN}).encode()),
                Message(
                    body=json.dumps(result(pdf)).encode(),
                    subject=f"{FIRST} {LAST}",
                    properties={"patient": LAST, "dob": DOB, "street": ADDRESS},
                ),
            ]
        )
    script = Path(sys.executable).parent / "iris-cloud"
    command = [str(script) if script.exists() else str(shutil.which("iris-cloud"))]
    command += ["-vv", "listen", "results", "--log-format", "json", "--config", str(config)]
    command += ["--save", str(tmp_path / "saved"), "--count", "4", "--timeout", "30"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # a handler failed (the document)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines, "nothing was logged"
    for line in lines:
        assert {"time", "level", "logger", "message", *FIELDS} <= set(line), line
    outcomes = {line["outcome"] for line in lines if line["outcome"]}
    assert {"completed", "retried", "dead_lettered", "poison"} <= outcomes
    handled = [line for line in lines if line["outcome"] == "completed"]
    assert {line["kind"] for line in handled} == {"result"}
    assert {line["role"] for line in handled} == {"results"}
    assert all(line["message_id"] and line["delivery_count"] == 1 for line in handled)
    everything = done.stderr + done.stdout
    found = [value for value in PHI if value in everything]
    assert not found, f"patient data in the output: {found}"
