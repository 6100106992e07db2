"""The whole IRIS exchange, timed: orders/s from submission to saved result, and latency.

The simulator (automatic grading) runs in background threads of this
process; the integrator uploads two JPEGs per order (Image First), submits
the order with :class:`~iris_cloud.client.IrisClient`, and a consumer on
``results`` saves every PDF with :func:`~iris_cloud.workflows.save_result`.

* throughput: ``--orders`` orders submitted back to back; orders/s from the
  first submission to the last saved result;
* latency: ``--latency-orders`` orders one at a time; per order the time from
  ``submit_order`` to its PDF on disk; p50 / p95 / max.

Both run on ``mem://`` and on the ``local://`` provider (SQLite queues,
``file://`` stores) side by side; the ratio column is local / mem.

    uv run --no-sync python benchmarks/workflow.py [--orders 200] [--latency-orders 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from iris_cloud.client import IrisClient
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.model import OrderResult
from iris_cloud.workflows import save_result
from iris_cloud_simulator import Simulator
from iris_cloud_simulator.samples import jpeg_image, sample_order

CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"


def profile(kind: str, root: Path) -> Profile:
    tag = uuid.uuid4().hex[:8]
    data: dict[str, Any] = {"client_guid": CLIENT_GUID}
    for role in ("orders", "events", "results", "gradings"):
        data[role] = (
            f"mem://{role}-{tag}" if kind == "mem" else f"local://{root}/queues?queue={role}"
        )
    for role in ("images", "results_store", "claim_check"):
        data[role] = f"mem://{role}-{tag}" if kind == "mem" else f"file://{root}/{role}"
    data["consumer"] = {"wait": 0.05, "concurrency": 4, "batch_size": 20}
    return Profile.from_dict(data)


class Saved:
    """Records when each order's result was saved."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.cond = threading.Condition()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.at) >= count, timeout)

    def wait_order(self, local_id: str, timeout: float) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: local_id in self.at, timeout):
                raise TimeoutError(f"no result for {local_id} within {timeout}s")
            return self.at[local_id]


def run(kind: str, orders: int, latency_orders: int, timeout: float) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix=f"iris-bench-{kind}-"))
    integrator = profile(kind, root)
    saved = Saved()
    out_dir = root / "saved"

    app = IrisApp()

    @app.on(OrderResult)
    def on_result(result: OrderResult, ctx: Context) -> None:
        save_result(result, out_dir)
        local_id = result.order.local_id if result.order else None
        with saved.cond:
            saved.at[str(local_id)] = time.perf_counter()
            saved.cond.notify_all()

    images = [jpeg_image(i) for i in range(4)]
    with (
        Simulator(integrator.mirror(), root / "sim", poll_interval=0.2) as sim,
        IrisClient(integrator) as iris,
    ):
        consumer = Consumer.from_profile(app, integrator, roles=("results",))
        listener = threading.Thread(target=consumer.run_until, daemon=True)
        sim.start()
        listener.start()

        def submit(n: int) -> str:
            local_id = f"B{n:06d}-{uuid.uuid4().hex[:6]}"
            right = iris.upload_image(images[n % 4])
            left = iris.upload_image(images[(n + 1) % 4])
            iris.submit_order(
                sample_order(
                    local_id,
                    images=[
                        right.image(local_id=f"{local_id}-OD", laterality="OD").to_dict(),
                        left.image(local_id=f"{local_id}-OS", laterality="OS").to_dict(),
                    ],
                )
            )
            return local_id

        try:
            # warm-up: imports, fonts, SQLite files
            saved.wait_order(submit(0), timeout)
            latencies = []
            for n in range(1, latency_orders + 1):
                start = time.perf_counter()
                done = saved.wait_order(submit(n), timeout)
                latencies.append(done - start)
            base = len(saved.at)
            start = time.perf_counter()
            for n in range(latency_orders + 1, latency_orders + 1 + orders):
                submit(n)
            submitted = time.perf_counter() - start
            if not saved.wait_for(base + orders, timeout):
                raise TimeoutError(f"{kind}: only {len(saved.at) - base} of {orders} results")
            elapsed = max(saved.at.values()) - start
        finally:
            consumer.stop()
            listener.join()
            consumer.close()
            sim.stop()
    latencies.sort()
    return {
        "orders/s (submit -> saved PDF)": orders / elapsed,
        "submission only, orders/s": orders / submitted,
        "latency p50 (ms)": statistics.median(latencies) * 1000,
        "latency p95 (ms)": latencies[max(0, round(0.95 * len(latencies)) - 1)] * 1000,
        "latency max (ms)": latencies[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--latency-orders", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    print(
        f"IRIS exchange benchmark: {args.orders} orders back to back, "
        f"{args.latency_orders} one at a time (2 JPEGs per order, automatic grading, PDF saved)"
    )
    figures = {
        kind: run(kind, args.orders, args.latency_orders, args.timeout) for kind in ("mem", "local")
    }
    print(f"{'':34} {'mem://':>10} {'local://':>10} {'local/mem':>10}")
    for key in figures["mem"]:
        mem, local = figures["mem"][key], figures["local"][key]
        print(f"{key:34} {mem:10.1f} {local:10.1f} {local / mem:10.2f}")


if __name__ == "__main__":
    main()
