"""Cost of ``save_result(on_conflict="number")`` as versions of one name pile up.

Saves ``COUNT`` results that render to the same file name, each with a
different document of the same size (the worst case: no version can be told
apart by its size), to a directory and to an in-memory store, and prints the
mean milliseconds per save over the first and the last ``WINDOW`` saves. A
per-save cost that grows with the number of versions (the issue-12 figure:
3.4 ms to 29 ms after 400) shows as a last/first ratio well above 1.

    uv run --no-sync python benchmarks/save_result_numbering.py [COUNT] [--size KIB]
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from iris_cloud.model import OrderResult, sample_files
from iris_cloud.providers.memory import MemoryStore
from iris_cloud.workflows.results import save_result

WINDOW = 20


def _results(count: int, size: int) -> list[OrderResult]:
    raw = next(f for f in sample_files() if f.name == "result-final.json").read_bytes()
    data = json.loads(raw)
    out = []
    for i in range(count):
        # Same length, different bytes: the version number sits at the end.
        doc = b"%PDF-1.4\n" + b"x" * size + f"{i:08d}\n%%EOF\n".encode()
        data["ResultsDocument"]["Content"] = base64.b64encode(doc).decode()
        out.append(OrderResult.model_validate(data))
    return out


def _run(label: str, results: list[OrderResult], save: Callable[[OrderResult], object]) -> None:
    times = []
    for r in results:
        start = time.perf_counter()
        save(r)
        times.append(time.perf_counter() - start)
    first = sum(times[:WINDOW]) / WINDOW * 1000
    last = sum(times[-WINDOW:]) / WINDOW * 1000
    print(
        f"{label:10} first {WINDOW}: {first:6.2f} ms/save   last {WINDOW}: {last:6.2f} ms/save"
        f"   ratio {last / first:5.2f}   total {sum(times):6.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("count", nargs="?", type=int, default=400)
    parser.add_argument("--size", type=int, default=64, help="document size in KiB")
    args = parser.parse_args()
    results = _results(args.count, args.size * 1024)
    print(f"{args.count} versions of one name, {args.size} KiB documents")
    with tempfile.TemporaryDirectory() as tmp:
        _run("directory", results, lambda r: save_result(r, Path(tmp), "{orderLocalId}.pdf"))
    store = MemoryStore.from_url("mem://bench-save-result")
    _run("mem store", results, lambda r: save_result(r, store, "{orderLocalId}.pdf"))


if __name__ == "__main__":
    main()
