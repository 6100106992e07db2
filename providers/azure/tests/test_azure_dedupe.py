"""Two consumer processes share dedupe markers in Blob storage (Azurite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from iris_cloud.testing.shareddedupe import run_two_consumers
from iris_cloud_azure.testing import AzuriteServer, unique_name

pytestmark = pytest.mark.timeout(180)


def test_a_redelivered_event_runs_its_side_effect_once(
    azurite_server: AzuriteServer, tmp_path: Path
) -> None:
    # The queue is local://: what is under test is the marker store, on Azurite.
    data = {
        "events": f"local://{tmp_path}/queues?queue=events&lock_seconds=1",
        "consumer": {"dedupe": azurite_server.endpoint(unique_name("dedupe"), prefix="dedupe")},
    }
    run = run_two_consumers(data, tmp_path / "state", lock_seconds=1)
    assert run.effects == 1
    assert run.total("handled") == 1 and run.total("duplicates") == 1
    assert run.total("deferred") >= 1  # the redelivered copy came while the first ran
