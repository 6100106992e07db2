"""The simulator's Order First watcher skips an object whose name the store refuses.

S3 accepts a key with a ``..`` segment (``exam/../escape.jpg``); every store
call refuses such a name, so reading it raised on each scan and the watcher
never got past it: no later exam image was ever seen. Against moto, with
the key written by the raw SDK as a sender with write access would.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from iris_cloud.client import IrisClient
from iris_cloud.config import Profile
from iris_cloud.model import OrderRequest
from iris_cloud.testing import require_server
from iris_cloud_simulator import Simulator
from iris_cloud_simulator.samples import dicom_image, jpeg_image, new_local_id, sample_order

pytestmark = pytest.mark.timeout(180)

CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
CONSUMER = {"wait": 0.5, "backoff_initial": 0.1, "backoff_max": 1.0}
REFUSED = ["exam/../escape.jpg", "../up.jpg", "exam/./dot.jpg"]


@pytest.fixture(scope="module")
def moto() -> Any:
    try:
        from iris_cloud_aws.testing import moto_server
    except ImportError as exc:
        require_server(f"iris_cloud_aws.testing is not importable ({exc})")
    with moto_server() as server:
        yield server


def exchange(moto: Any) -> tuple[Profile, Profile, str]:
    from iris_cloud_aws.testing import workflow_profiles

    integrator, platform = workflow_profiles(moto)
    common = {"client_guid": CLIENT_GUID, "consumer": CONSUMER}
    bucket = urlsplit(integrator["images"]["url"]).netloc
    return (
        Profile.from_dict({**integrator, **common}),
        Profile.from_dict({**platform, **common}, side="platform"),
        bucket,
    )


def plant_refused_keys(moto: Any, bucket: str) -> None:
    s3 = moto.client("s3")
    for key in REFUSED:
        s3.put_object(Bucket=bucket, Key=key, Body=jpeg_image(9))
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert set(REFUSED) <= listed  # the service kept the keys as sent


def order_first(iris: IrisClient) -> str:
    request = sample_order(new_local_id())
    model = OrderRequest.model_validate(request)
    lid = model.order.local_id
    iris.submit_order(request)
    iris.upload_exam_image(dicom_image(), order=model, laterality="OD", image_local_id=f"{lid}-OD")
    iris.upload_exam_image(jpeg_image(3), order=model, laterality="OS", image_local_id=f"{lid}-OS")
    return lid


def test_the_watcher_skips_refused_keys_and_sees_later_images(
    moto: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    integrator, platform, bucket = exchange(moto)
    plant_refused_keys(moto, bucket)
    with Simulator(platform, tmp_path / "sim", poll_interval=0.1) as sim:
        with IrisClient(integrator) as iris:
            lid = order_first(iris)
        with caplog.at_level(logging.WARNING, logger="iris_cloud_simulator"):
            sim.run_until(lambda _: sim.status(lid) == "Complete", timeout=60)
        assert sim.status(lid) == "Complete"
        stats = sim.stats()
        assert stats.images_received == 2 and stats.ignored >= len(REFUSED)
    warnings = [r.getMessage() for r in caplog.records if "refuses" in r.getMessage()]
    assert len(warnings) == len(REFUSED)  # once each, not on every scan
    assert not any(key in w for w in warnings for key in REFUSED)


def test_a_scan_step_skips_refused_keys(moto: Any, tmp_path: Path) -> None:
    integrator, platform, bucket = exchange(moto)
    plant_refused_keys(moto, bucket)
    with Simulator(platform, tmp_path / "sim", poll_interval=0.1) as sim:
        with IrisClient(integrator) as iris:
            lid = order_first(iris)
        sim.step()
        assert sim.status(lid) == "Complete"
        assert sim.scan_images() == 0  # nothing new; the refused keys are not retried
