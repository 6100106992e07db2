"""What the docs' hidden setup blocks use: a profile, IRIS played by the simulator, files.

A setup block (``<!-- docs-test setup ... -->``) imports from here, e.g.::

    from docsenv import write_profile, play_iris, write_sample_files
    profile = write_profile("clinic")
    play_iris(profile)

Everything is in-process (``mem://`` endpoints), so the blocks, the
``iris-cloud`` commands the runner runs and the simulator see the same queues.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iris_cloud.config import Profile, load_profile

__all__ = [
    "CLIENT_GUID",
    "play_iris",
    "sigterm_when",
    "sigterm_when_iris_answers",
    "submit_sample_order",
    "write_profile",
    "write_sample_files",
]

CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
"""The ClientGuid of the documented samples."""


def write_profile(name: str = "dev", *, default: bool = True) -> Profile:
    """Write ``./iris-cloud.toml`` with profile ``name`` on ``mem://`` endpoints; load it."""
    roles = ("orders", "events", "results", "gradings", "images", "results_store", "claim_check")
    lines = [f'default_profile = "{name}"'] if default else []
    lines += [f"[profiles.{name}]", f'client_guid = "{CLIENT_GUID}"']
    lines += [f'{role} = "mem://{name}-{role}"' for role in roles]
    lines += [f"[profiles.{name}.consumer]", "wait = 0.2"]
    Path("iris-cloud.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_profile(name)


def play_iris(profile: Profile, *, grading: str = "auto") -> Any:
    """Start the IRIS simulator on the other side of ``profile``, stopped at exit."""
    from iris_cloud_simulator import Simulator

    sim = Simulator(profile.mirror(), Path("sim-state"), grading=grading, poll_interval=0.2)
    sim.start()
    atexit.register(sim.close)
    return sim


def write_sample_files() -> dict[str, Any]:
    """Write the files the docs name: ``order.json`` (an Image First NW order without
    images), ``od.jpg`` / ``os.jpg`` / ``eye.jpg``, ``eye.dcm``; return the order."""
    from iris_cloud_simulator.samples import dicom_image, jpeg_image, sample_order

    order = sample_order()
    Path("order.json").write_text(json.dumps(order, indent=2), encoding="utf-8")
    for seed, name in enumerate(("od.jpg", "os.jpg", "eye.jpg", "OD.jpg")):
        Path(name).write_bytes(jpeg_image(seed))
    Path("eye.dcm").write_bytes(dicom_image())
    return order


def sigterm_when(done: Callable[[], bool], timeout: float = 90.0) -> None:
    """Send this process SIGTERM once ``done()`` holds (or ``timeout`` passed).

    For snippets that run a consumer "until SIGTERM": the check after the
    snippet then says whether ``done`` was reached.
    """

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="docs-sigterm", daemon=True).start()


def sigterm_when_iris_answers(profile: Profile, timeout: float = 90.0) -> None:
    """Submit a sample order on ``profile``; SIGTERM this process once an event is back.

    For snippets that serve the IRIS side "until Ctrl-C" (the simulator).
    """
    from iris_cloud.client import IrisClient
    from iris_cloud_simulator.samples import sample_order

    with IrisClient(profile) as iris:
        iris.submit_order(sample_order())
    events = profile.open_broker("events")
    atexit.register(events.close)
    sigterm_when(lambda: bool(events.peek(1)), timeout)


def submit_sample_order(profile: Profile) -> str:
    """Upload a JPEG and submit an Image First order referencing it; its LocalId."""
    from iris_cloud.client import IrisClient
    from iris_cloud_simulator.samples import jpeg_image, sample_order

    with IrisClient(profile) as iris:
        ref = iris.upload_image(jpeg_image())
        order = sample_order(images=[ref.image(local_id="1", laterality="OD").to_dict()])
        iris.submit_order(order)
    local_id = order["Order"]["LocalId"]
    assert isinstance(local_id, str)
    return local_id
