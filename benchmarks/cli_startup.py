"""Start-up cost of the plugins, side by side: lazy import paths against eager imports.

Each side is a fresh interpreter, timed from spawn to exit, rounds alternating
which side goes first; figures are medians.

* bare: ``python -c "import iris_cloud"`` (the model, ports and plugin manager);
  what every side pays at least.
* ours: ``python -m iris_cloud.cli --version`` with every provider installed; the
  cloud providers name their classes by import path, so no SDK is imported.
* eager: the same, then every scheme's class imported, which is what loading
  the plugins cost when the provider modules imported their SDKs at start.
* one provider: ``open_store("s3://...")``: the plugins, then boto3 only.

Columns: median ms and the ratio to bare. Needs the workspace (every provider)
installed: ``uv run --no-sync python benchmarks/cli_startup.py [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

SIDES = {
    "bare": "import iris_cloud",
    "ours": "import sys; sys.argv = ['iris-cloud', '--version']\n"
    "from iris_cloud.cli import main\n"
    "try:\n    main()\nexcept SystemExit:\n    pass",
    "eager": "from iris_cloud.cli import main\nfrom iris_cloud import plugins\n"
    "plugins.broker_schemes(); plugins.store_schemes()",
    "one provider": "import iris_cloud\n"
    "iris_cloud.open_store('s3://bucket/prefix', region='eu-west-1')",
}


def _time(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed runs per side")
    args = parser.parse_args()
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    for code in SIDES.values():  # warm the file cache once
        _time(code)
    for r in range(args.rounds):
        order = list(SIDES) if r % 2 == 0 else list(reversed(SIDES))
        for side in order:
            times[side].append(_time(SIDES[side]))
    bare = statistics.median(times["bare"])
    print(f"{'side':<14}{'median ms':>10}{'/ bare':>9}")
    for side, values in times.items():
        median = statistics.median(values)
        print(f"{side:<14}{median:>10.0f}{median / bare:>9.2f}")
    print(
        f"eager / ours: {statistics.median(times['eager']) / statistics.median(times['ours']):.2f}"
    )


if __name__ == "__main__":
    main()
