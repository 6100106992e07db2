"""Parse speed of the IRIS object model beside bare ``json.loads``.

Parses the bundled sample OrderRequest (``order-new.json``), OrderResult
(``result-final.json``) and ImageReceipt event (``event-image-receipt.json``,
what an events queue carries most) N times each and prints messages/s for:

* ``json.loads``: the bytes to Python dicts, no validation at all;
* ``model``: ``OrderRequest`` / ``OrderResult`` / ``ImageReceipt``
  ``.model_validate_json`` (full validation into typed objects);
* ``parse_message``: type detection plus full validation (the entry point).

The ratio column is messages/s relative to ``json.loads`` (target: model
>= 0.5x). Usage: ``uv run python benchmarks/model_parse.py [-n N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from iris_cloud.model import ImageReceipt, OrderRequest, OrderResult, parse_message, sample_files


def _rates(
    parsers: list[tuple[str, Callable[[bytes], object]]], data: bytes, n: int, repeat: int
) -> dict[str, float]:
    """Best messages/s per parser over ``repeat`` rounds of ``n`` calls each.

    The parsers take turns within every round, so a load change on the
    machine hits all of them alike; keeping the best round damps the noise.
    """
    best = {name: float("inf") for name, _ in parsers}
    for _ in range(repeat):
        for name, fn in parsers:
            start = time.perf_counter()
            for _ in range(n):
                fn(data)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: n / seconds for name, seconds in best.items()}


def main() -> None:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="parses per run (default 20000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs, best kept (default 5)")
    args = parser.parse_args()

    samples = {p.name: p.read_bytes() for p in sample_files()}
    cases = [
        ("OrderRequest", samples["order-new.json"], OrderRequest.model_validate_json),
        ("OrderResult", samples["result-final.json"], OrderResult.model_validate_json),
        ("ImageReceipt", samples["event-image-receipt.json"], ImageReceipt.model_validate_json),
    ]
    print(f"n={args.n} repeat={args.repeat} (best run)")
    print(f"{'message':<13} {'bytes':>6} {'parser':<14} {'msg/s':>10} {'ratio':>6}")
    for name, data, model_parse in cases:
        rates = _rates(
            [("json.loads", json.loads), ("model", model_parse), ("parse_message", parse_message)],
            data,
            args.n,
            args.repeat,
        )
        base = rates["json.loads"]
        for parser_name, rate in rates.items():
            print(
                f"{name:<13} {len(data):>6} {parser_name:<14} {rate:>10,.0f} {rate / base:>5.2f}x"
            )


if __name__ == "__main__":
    main()
