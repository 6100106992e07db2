"""Two consumer processes sharing one dedupe store, and a redelivery forced between them.

:func:`run_two_consumers` is the test every dedupe store shared by hosts
passes (file:// in core, S3 on moto, Blob on Azurite): one event is sent;
the process that takes it holds it in its handler past the lock, without
renewing, so the service delivers it again, to the other process, while the
first still runs. The side effect must happen once: the second copy finds
the first's claim and is deferred, and once the first has marked the event
handled it is completed as a duplicate.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from importlib.resources import files
from pathlib import Path
from typing import Any

from iris_cloud.config import Profile
from iris_cloud.messages import Message

__all__ = ["SharedDedupeRun", "run_two_consumers"]

_SCRIPT = """
import json, os, sys, time
from pathlib import Path
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.model import Event

state, profile = Path(sys.argv[1]), Profile.from_dict(json.loads(sys.argv[2]))
hold = float(sys.argv[3])
app = IrisApp()

@app.on(Event)
def side_effect(evt, ctx):
    with open(state / "effects", "a") as out:
        out.write(f"{os.getpid()}\\n")
    time.sleep(hold)  # past the lock: the service delivers the event again meanwhile

consumer = Consumer.from_profile(app, profile, roles=("events",), concurrency=1, batch_size=1)
consumer.start()
(state / f"ready-{os.getpid()}").touch()
deadline = time.monotonic() + 60
while consumer.snapshot().handled + consumer.snapshot().duplicates < 1:
    if time.monotonic() > deadline:
        break
    time.sleep(0.05)
consumer.stop()
stats = consumer.join(30)
consumer.close()
(state / f"stats-{os.getpid()}.json").write_text(json.dumps(stats.as_dict()))
"""


class SharedDedupeRun:
    """What the two processes did: side-effect runs and each one's consumer stats."""

    def __init__(self, effects: int, stats: list[dict[str, Any]]) -> None:
        self.effects = effects
        self.stats = stats

    def total(self, counter: str) -> int:
        """``counter`` summed over both processes."""
        return sum(int(s[counter]) for s in self.stats)


def _event() -> Message:
    """A bundled sample event with a fresh TransactionId (its message id too)."""
    data = json.loads(
        files("iris_cloud.model.samples").joinpath("event-order-graded.json").read_bytes()
    )
    data["TransactionId"] = txid = str(uuid.uuid4())
    return Message(body=json.dumps(data).encode(), message_id=txid)


def run_two_consumers(
    profile_data: dict[str, Any], state: Path, *, lock_seconds: float
) -> SharedDedupeRun:
    """Run the scenario of the module docstring; ``profile_data`` names events and dedupe.

    ``profile_data`` is a :meth:`Profile.from_dict` mapping whose ``events``
    queue locks a message for ``lock_seconds`` and whose ``consumer.dedupe``
    is the shared store under test; ``state`` a fresh directory for the run.
    """
    state.mkdir(parents=True, exist_ok=True)
    data = dict(profile_data)
    consumer = dict(data.get("consumer") or {})
    # No renewal while the handler holds the event, so its lock runs out.
    # A deferred copy comes back after backoff_initial: each return is a delivery
    # counted towards max_delivery_count, so not too often.
    consumer.update(wait=0.1, backoff_initial=1.0, lock_renewal_interval=3600)
    data["consumer"] = consumer
    script = state / "consume.py"
    script.write_text(_SCRIPT)
    hold = str(lock_seconds * 2 + 2)
    args = [sys.executable, str(script), str(state), json.dumps(data), hold]
    procs = [subprocess.Popen(args) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while len(list(state.glob("ready-*"))) < 2:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise AssertionError("the consumer processes did not start")
            time.sleep(0.05)
        with Profile.from_dict(data).open_broker("events") as broker:
            broker.send(_event())
        for proc in procs:
            if proc.wait(timeout=120) != 0:
                raise AssertionError(f"a consumer process exited with {proc.returncode}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    effects = state / "effects"
    runs = len(effects.read_text().split()) if effects.exists() else 0
    stats = [json.loads(p.read_text()) for p in sorted(state.glob("stats-*.json"))]
    return SharedDedupeRun(runs, stats)
