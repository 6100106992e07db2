"""Logs carry no patient data and no secret at any level (issue 12 §4), end to end.

Root logging is at DEBUG, as an operator who wants detail would set it, for
the whole demo (simulator included) and for a consumer on SQS (moto) whose
credentials carry a session token. The SDKs log bodies and the
``x-amz-security-token`` header at DEBUG; importing iris_cloud keeps their
loggers at WARNING, so neither the patients' data nor the secrets may appear.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.model import OrderRequest
from iris_cloud.testing import require_server
from iris_cloud_simulator.demo import run_demo
from iris_cloud_simulator.samples import sample_message, sample_order


def patient_values(order: dict[str, Any]) -> list[str]:
    """The PHI of a sample order: names, date of birth, MRN, address, phone."""
    patient = order["Patient"]
    values = [patient["Name"]["First"], patient["Name"]["Last"], patient["LocalId"]]
    values += [str(patient.get("Dob", ""))]
    address = patient.get("Address") or {}
    values += [str(v) for k, v in address.items() if k.startswith("Line")]
    values += [str(patient.get("Phone", ""))]
    return [v for v in values if len(v) >= 4]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def all_text(caplog: pytest.LogCaptureFixture) -> str:
    # Tracebacks included: exc_text is what a handler would print.
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records)


def test_the_demo_at_debug_logs_no_patient_data(
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    orders, ok = run_demo(tmp_path / "demo", count=2, timeout=90.0)
    assert ok, [o.failures for o in orders]
    text = all_text(debug_logs)
    assert "iris_cloud" in text, "the demo logged nothing to check"
    # The demo's patients: the sample's data with fresh MRNs, all named John Doe.
    sample = sample_message("order-new.json")
    phi = [v for v in patient_values(sample) if v != sample["Patient"]["LocalId"]]
    phi += ["John", "Doe"]
    found = [v for v in phi if v in text]
    assert not found, f"patient data in the log: {found}"
    assert "PAT-" not in text, "a patient's MRN is in the log"


@pytest.fixture
def moto() -> Iterator[Any]:
    from iris_cloud_aws.testing import ServerUnavailable, moto_server

    try:
        with moto_server() as server:
            yield server
    except ServerUnavailable as exc:
        require_server(str(exc))


def test_an_sqs_consumer_at_debug_logs_no_body_and_no_secret(
    moto: Any, debug_logs: pytest.LogCaptureFixture
) -> None:
    from iris_cloud_aws.broker import SqsBroker

    token = f"SESSIONTOKEN{uuid.uuid4().hex}"
    name = f"orders-{uuid.uuid4().hex[:8]}"
    moto.create_queue(name, dead_letter=True)
    options = moto.options(aws_session_token=token)
    order = sample_order(first_name="Quixotely", last_name="Zarathustra-Phi")
    order["Patient"]["LocalId"] = f"MRN{uuid.uuid4().hex[:10]}"
    handled: list[str] = []
    app = IrisApp()

    @app.on(OrderRequest)
    def handle(request: OrderRequest, ctx: Context) -> None:
        handled.append(request.order.local_id)

    with SqsBroker.from_url(moto.queue_url_form(name), **options) as broker:
        broker.send(json.dumps(order).encode())
        with Consumer(app, {"orders": broker}, wait=0.5) as consumer:
            consumer.run_until(lambda s: s.handled >= 1, timeout=30)
    assert handled == [order["Order"]["LocalId"]]
    text = all_text(debug_logs)
    assert "iris_cloud" in text, "the consumer logged nothing to check"
    secrets = [token, options["aws_secret_access_key"]]
    assert not [s for s in secrets if s in text], "a secret is in the log"
    found = [v for v in patient_values(order) if v in text]
    assert not found, f"patient data in the log: {found}"
