"""Two consumer processes on one SQS queue share dedupe markers in S3 (moto)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from iris_cloud.testing.shareddedupe import run_two_consumers
from iris_cloud_aws.testing import MotoServer

pytestmark = pytest.mark.timeout(180)


def test_a_redelivered_event_runs_its_side_effect_once(moto: MotoServer, tmp_path: Path) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    # Deferred copies count receives: room for them before SQS redrives.
    moto.create_queue(name, dead_letter=True, max_receive_count=10, visibility_timeout=2)
    bucket = moto.create_bucket(name)
    data = {
        "events": {"url": moto.broker_url(name), **moto.options()},
        "consumer": {"dedupe": {"url": moto.store_url(bucket, "dedupe/"), **moto.options()}},
    }
    run = run_two_consumers(data, tmp_path / "state", lock_seconds=2)
    assert run.effects == 1
    assert run.total("handled") == 1 and run.total("duplicates") == 1
    assert run.total("deferred") >= 1  # the redelivered copy came while the first ran
