"""What erasing completed bodies costs the ``local://`` broker (issue 12 §3).

A completed message must not stay readable in the queue's files. That takes
two things, measured here separately, side by side in one run:

* ``secure_delete=ON`` (zero the deleted row and the pages it frees) against
  ``FAST`` (zero only what costs no extra I/O, which leaves freed overflow
  pages, i.e. bodies over ~4 KB, as they were): bare SQLite deletes of the
  same rows, WAL and ``synchronous=NORMAL`` as the broker;
* truncating the write-ahead log, which still holds the pages as they were
  before the delete: the broker's ``receive`` + ``complete`` of every message
  with ``erase_after=1`` (the default: one truncating checkpoint a second at
  most) against ``erase_after=0`` (one per completion) and ``erase_after=3600``
  (none during the run: what erasing within a second costs).

Prints completions per second and the cost of each choice per message.

    uv run --no-sync python benchmarks/local_erase.py [--messages 5000] [--body 1024]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from iris_cloud.ports import Message
from iris_cloud.providers.local import LocalBroker

BATCH = 100


def bare_deletes(directory: Path, count: int, body: bytes, secure_delete: str) -> float:
    """Seconds to delete ``count`` rows one by one, each in its own transaction."""
    db = sqlite3.connect(directory / f"bare-{uuid.uuid4().hex}.sqlite3", isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=10000"):
        db.execute(f"PRAGMA {pragma}")
    db.execute(f"PRAGMA secure_delete={secure_delete}")
    db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO rows (body) VALUES (?)", [(body,)] * count)
    db.execute("COMMIT")
    start = time.perf_counter()
    for row_id in range(1, count + 1):
        db.execute("DELETE FROM rows WHERE id = ?", (row_id,))
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def broker_completes(directory: Path, count: int, body: bytes, erase_after: float) -> float:
    """Seconds to receive (in batches) and complete ``count`` messages."""
    with LocalBroker(
        directory / uuid.uuid4().hex, "bench", lock_seconds=600, erase_after=erase_after
    ) as broker:
        for i in range(0, count, BATCH):
            broker.send([Message(body=body) for _ in range(min(BATCH, count - i))])
        start = time.perf_counter()
        done = 0
        while done < count:
            got = broker.receive(max_messages=BATCH, wait=1.0)
            if not got:
                raise RuntimeError(f"queue ran dry after {done} of {count} messages")
            for m in got:
                broker.complete(m)
            done += len(got)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--body", type=int, default=1024, help="body bytes")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go")
    args = parser.parse_args()
    n = args.messages
    body = os.urandom(args.body)
    runs: dict[str, list[float]] = {}
    cases = {
        "bare DELETE, secure_delete=FAST": lambda d: bare_deletes(d, n, body, "FAST"),
        "bare DELETE, secure_delete=ON": lambda d: bare_deletes(d, n, body, "ON"),
        "local:// complete, erase_after=3600": lambda d: broker_completes(d, n, body, 3600.0),
        "local:// complete, erase_after=1": lambda d: broker_completes(d, n, body, 1.0),
        # Far slower: a tenth of the messages, scaled below.
        "local:// complete, erase_after=0": lambda d: broker_completes(
            d, max(1, n // 10), body, 0.0
        ),
    }
    scale = {"local:// complete, erase_after=0": max(1, n // 10)}
    # Alternating runs, best of each: the machine is shared.
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for _ in range(args.repeat):
            for name, case in cases.items():
                runs.setdefault(name, []).append(case(Path(tmp)))
    per_second = {name: scale.get(name, n) / min(times) for name, times in runs.items()}
    print(f"{n} messages of {args.body} B, best of {args.repeat} alternating runs")
    print(f"{'case':<36}{'per second':>12}{'us each':>10}")
    for name, rate in per_second.items():
        print(f"{name:<36}{rate:>12,.0f}{1e6 / rate:>10.0f}")
    fast = per_second["bare DELETE, secure_delete=FAST"]
    on = per_second["bare DELETE, secure_delete=ON"]
    never, lazy, eager = (
        per_second["local:// complete, erase_after=3600"],
        per_second["local:// complete, erase_after=1"],
        per_second["local:// complete, erase_after=0"],
    )
    print(f"erase_after=1 costs {1e6 / lazy - 1e6 / never:+.0f} us per completion")
    print(f"secure_delete=ON costs {1e6 / on - 1e6 / fast:+.0f} us per delete ({fast / on:.2f}x)")
    print(f"erase_after=0 instead of 1 makes a completion {lazy / eager:.1f}x slower")


if __name__ == "__main__":
    main()
