"""The integrator's results consumer of the reliability test, run as a subprocess.

    python reliability_listener.py RESULTS_QUEUE_URL HANDLED_DB

Consumes OrderResults with the core consumer engine and records every
delivery to its handler (LocalId, message id, pid) in HANDLED_DB, committed
before the handler returns, so a SIGKILL can lose nothing the test counts.
The broker is opened directly (not through the plugin manager) to keep the
restarts quick.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time

from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.model import OrderResult
from iris_cloud.providers.local import LocalBroker


def main(url: str, db_path: str) -> int:
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS handled (local_id TEXT, message_id TEXT, pid INT)")
    lock = threading.Lock()
    app = IrisApp()

    @app.on(OrderResult)
    def on_result(result: OrderResult, ctx: Context) -> None:
        # Some work before and after recording, so that kills land both before
        # a result is recorded (it must come back) and after (a redelivery).
        time.sleep(0.005)
        local_id = result.order.local_id if result.order else None
        with lock:
            conn.execute(
                "INSERT INTO handled VALUES (?, ?, ?)",
                (local_id, ctx.message.message_id, os.getpid()),
            )
        time.sleep(0.005)

    # Long enough for kills not to dead-letter a healthy result, short enough
    # that what a killed process held comes back quickly.
    broker = LocalBroker.from_url(url, lock_seconds=1.5, max_delivery_count=100)
    consumer = Consumer(app, {"results": broker}, wait=0.2, concurrency=4, batch_size=10)
    print("ready", flush=True)
    try:
        return consumer.run()
    finally:
        consumer.close()
        broker.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
