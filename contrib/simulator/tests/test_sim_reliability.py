"""Reliability: orders through the simulator while the results consumer is SIGKILLed.

``IRIS_CLOUD_RELIABILITY_ORDERS`` orders (default 1,000, about 25 s on 2
cores; lower it on a crowded machine) go
through the simulator on ``local://``. The integrator's results consumer runs
as a subprocess that is SIGKILLed and restarted several times while it
works. Every result must reach its handler at least once, none may be lost,
and the poison messages injected on ``orders`` and ``results`` must be in
their dead-letter queues with the reason.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from iris_cloud.client import IrisClient
from iris_cloud.config import Profile
from iris_cloud_simulator import Simulator
from iris_cloud_simulator.samples import jpeg_image, sample_order
from simhelpers import profile_dict

ORDERS = int(os.environ.get("IRIS_CLOUD_RELIABILITY_ORDERS", "1000"))
KILLS = 4
LISTENER = Path(__file__).with_name("reliability_listener.py")
POISON_RESULTS = [b"not JSON at all", b'{"ResultCode": "F"}', b"[1, 2, 3]"]
POISON_ORDERS = [
    b'{"OrderControlCode": "NW", "Order": {"LocalId": "POISON-A"}}',
    b"\xff\xfe garbage",
]


def handled(db: Path) -> tuple[set[str], int, int]:
    """Distinct LocalIds handled, total deliveries, distinct listener pids."""
    if not db.exists():
        return set(), 0, 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        rows = conn.execute("SELECT local_id, pid FROM handled").fetchall()
    except sqlite3.OperationalError:
        return set(), 0, 0
    finally:
        conn.close()
    return {r[0] for r in rows}, len(rows), len({r[1] for r in rows})


def start_listener(url: str, db: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(LISTENER), url, str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_results_survive_a_sigkilled_consumer(tmp_path: Path) -> None:
    integrator = Profile.from_dict(profile_dict("local", tmp_path / "exchange"))
    results_url = integrator.endpoint("results").url
    db = tmp_path / "handled.sqlite3"
    sim = Simulator(integrator.mirror(), tmp_path / "sim", poll_interval=0.2)
    sim.start()
    listener: subprocess.Popen[bytes] | None = None
    pids = []
    try:
        with IrisClient(integrator) as iris:
            with integrator.mirror().open_broker("results") as platform_results:
                platform_results.send(POISON_RESULTS)
            for body in POISON_ORDERS:
                iris.orders.send(body)
            right = iris.upload_image(jpeg_image(1))
            left = iris.upload_image(jpeg_image(2))
            images = [
                right.image(local_id="OD", laterality="OD").to_dict(),
                left.image(local_id="OS", laterality="OS").to_dict(),
            ]
            expected = set()
            for n in range(ORDERS):
                request = sample_order(f"REL-{n:05d}", images=images)
                iris.submit_order(request)
                expected.add(request["Order"]["LocalId"])

        deadline = time.monotonic() + max(240.0, ORDERS * 0.5)
        kills = 0
        listener = start_listener(results_url, db)
        pids.append(listener.pid)
        seen_at_start = 0
        while time.monotonic() < deadline:
            time.sleep(0.2)
            ids, _, _ = handled(db)
            if ids >= expected:
                break
            # Kill while it is visibly at work: some results handled by this process.
            if kills < KILLS and len(ids) - seen_at_start >= max(5, ORDERS // (3 * KILLS)):
                listener.send_signal(signal.SIGKILL)
                listener.wait()
                kills += 1
                seen_at_start = len(ids)
                listener = start_listener(results_url, db)
                pids.append(listener.pid)
        ids, deliveries, processes = handled(db)

        # a clean stop: SIGTERM finishes in-flight handlers and exits 0
        listener.send_signal(signal.SIGTERM)
        assert listener.wait(timeout=60) == 0
        listener = None
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        sim.stop()

    assert kills == KILLS, f"only {kills} kills happened before every result arrived"
    missing = expected - ids
    assert not missing, (
        f"{len(missing)} results never reached the handler, e.g. {sorted(missing)[:5]}"
    )
    assert ids == expected
    assert deliveries >= ORDERS
    assert processes >= 2
    assert sim.stats().results_sent == ORDERS

    results = integrator.open_broker("results")
    orders = integrator.open_broker("orders")
    try:
        dead_results = results.receive_dead_letters(max_messages=20, wait=0.5)
        dead_orders = orders.receive_dead_letters(max_messages=20, wait=0.5)
    finally:
        results.close()
        orders.close()
    sim.close()
    assert sorted(m.body for m in dead_results) == sorted(POISON_RESULTS)
    assert all((m.dead_letter_reason or "").startswith("invalid message") for m in dead_results)
    assert sorted(m.body for m in dead_orders) == sorted(POISON_ORDERS)
    assert all((m.dead_letter_reason or "").startswith("invalid message") for m in dead_orders)
    print(
        f"\n{ORDERS} orders, {KILLS} SIGKILLs, {len(pids)} listener processes: "
        f"{deliveries} deliveries for {len(ids)} results ({deliveries - len(ids)} redelivered)"
    )
