"""Throughput and memory of the ``file://`` store against a plain file copy.

One run, side by side, same disk:

* put: ``FileStore.put(name, path)`` (a conditional create, the default)
  versus ``shutil.copyfile`` to a new file;
* put overwrite: ``put(..., overwrite=True)`` over the existing object versus
  ``shutil.copyfile`` onto the existing copy. Both are ext4's "replace" patterns
  (rename over / truncate), for which ``auto_da_alloc`` starts write-back of the
  new data at once — so they are compared with each other;
* get: ``FileStore.download_to`` versus ``shutil.copyfile`` of the stored file;
* stream: reading ``open_read`` in 1 MiB chunks versus reading the file
  directly in 1 MiB chunks;
* peak RSS growth of the process over all store operations (``ru_maxrss``,
  measured after the source file was written).

Targets (issue 5): put/get >= 0.8x of the plain copy; RSS growth < 100 MB.

    uv run --no-sync python benchmarks/local_store.py [SIZE_MB] [--repeat 2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from iris_cloud.providers.local import FileStore

CHUNK = 1024 * 1024


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the peak resident set of this process so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn: Callable[[], object]) -> float:
    # Flush what earlier steps left dirty, so that no step pays for another's
    # write-back (the kernel throttles writers while much is dirty).
    os.sync()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _write_source(path: Path, size: int) -> None:
    block = os.urandom(CHUNK)
    with path.open("wb") as fh:
        left = size
        while left > 0:
            fh.write(block[: min(CHUNK, left)])
            left -= CHUNK


def _read_all(fh_open: Callable[[], IO[bytes]]) -> None:
    with fh_open() as fh:
        while fh.read(CHUNK):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size_mb", nargs="?", type=int, default=1024)
    parser.add_argument(
        "--repeat", type=int, default=4, help="rounds (order alternates); the best counts"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the files go")
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    results: dict[str, list[float]] = {
        k: []
        for k in (
            "copy",
            "put",
            "copy over",
            "put over",
            "copy back",
            "download_to",
            "read file",
            "open_read",
        )
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        source = root / "source.bin"
        _write_source(source, size)
        rss_before = _rss_mb()
        store = FileStore(root / "store")
        stored = root / "store" / "big.bin"
        copy, back, back_plain = root / "copy.bin", root / "back.bin", root / "back-plain.bin"
        pairs: list[tuple[str, Callable[[], object], str, Callable[[], object]]] = [
            ("put", lambda: store.put("big.bin", source), "copy", lambda: copy_to(copy)),
            (
                "put over",
                lambda: store.put("big.bin", source, overwrite=True),
                "copy over",
                lambda: copy_to(copy),
            ),
            (
                "download_to",
                lambda: store.download_to("big.bin", back),
                "copy back",
                lambda: shutil.copyfile(stored, back_plain),
            ),
            (
                "open_read",
                lambda: _read_all(lambda: store.open_read("big.bin")),
                "read file",
                lambda: _read_all(lambda: stored.open("rb")),
            ),
        ]

        def copy_to(target: Path) -> None:
            shutil.copyfile(source, target)

        for round_ in range(args.repeat):
            for ours, ours_fn, plain, plain_fn in pairs:
                # Whichever runs second pays for the first one's write-back (the
                # disk is still busy after sync), so the order alternates.
                steps = [(ours, ours_fn), (plain, plain_fn)]
                for key, fn in steps if round_ % 2 == 0 else reversed(steps):
                    results[key].append(_timed(fn))
            store.delete("big.bin")
            for leftover in (copy, back, back_plain):
                leftover.unlink()
        growth = _rss_mb() - rss_before

    def mbps(key: str) -> float:
        return float(args.size_mb) / min(results[key])

    print(
        f"file:// store, {args.size_mb} MB object, best of {args.repeat} rounds (order alternating)"
    )
    print(f"{'operation':<15}{'store MB/s':>12}{'plain MB/s':>12}{'ratio':>8}  plain is")
    rows = [
        ("put", "put", "copy", "shutil.copyfile to a new file"),
        ("put overwrite", "put over", "copy over", "shutil.copyfile onto the existing file"),
        ("get", "download_to", "copy back", "shutil.copyfile of the stored file"),
        ("stream", "open_read", "read file", "open() + read(1 MiB)"),
    ]
    for label, ours, plain, what in rows:
        ratio = mbps(ours) / mbps(plain)
        print(f"{label:<15}{mbps(ours):>12,.0f}{mbps(plain):>12,.0f}{ratio:>8.2f}  {what}")
    print(
        f"peak RSS growth during the store operations: {growth:.1f} MB "
        f"(peak {rss_before + growth:.0f} MB, {rss_before:.0f} MB before; target < 100 MB growth)"
    )
    worst = min(mbps("put") / mbps("copy"), mbps("download_to") / mbps("copy back"))
    verdict = "meets" if worst >= 0.8 and growth < 100 else "MISSES"
    print(f"put/get at >= {worst:.2f}x of a plain copy: {verdict} the 0.8x / 100 MB targets")


if __name__ == "__main__":
    main()
