"""``iris-cloud-pubsub-emulator``: serve the Pub/Sub test server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from ._backend import DEFAULT_ACK_DEADLINE
from .server import DEFAULT_MAX_CONCURRENT_RPCS, PubSubEmulator


def main(argv: list[str] | None = None) -> int:
    """Parse the options, serve, print ``PUBSUB_EMULATOR_HOST=...`` and wait for a signal."""
    parser = argparse.ArgumentParser(
        prog="iris-cloud-pubsub-emulator",
        description="A Google Pub/Sub test server (gRPC) for google-cloud-pubsub clients.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8085, help="port to bind, 0 for a free one (default 8085)"
    )
    parser.add_argument(
        "--min-ack-deadline",
        type=int,
        default=DEFAULT_ACK_DEADLINE,
        metavar="SECONDS",
        help="smallest ack deadline accepted, 1-10 (default 10, as the real service)",
    )
    parser.add_argument(
        "--pull-wait",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how long an empty Pull is held before returning nothing (default 1.0)",
    )
    parser.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=DEFAULT_MAX_CONCURRENT_RPCS,
        metavar="N",
        help="RPCs served at once, each open streaming pull holding one; more fail "
        f"with RESOURCE_EXHAUSTED (default {DEFAULT_MAX_CONCURRENT_RPCS})",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        emulator = PubSubEmulator(
            args.host,
            args.port,
            min_ack_deadline=args.min_ack_deadline,
            pull_wait=args.pull_wait,
            max_concurrent_rpcs=args.max_concurrent_rpcs,
        ).start()
    except (OSError, ValueError) as error:
        print(f"iris-cloud-pubsub-emulator: {error}", file=sys.stderr)
        return 1
    # The one line a script needs: eval it or copy it into the environment.
    print(f"PUBSUB_EMULATOR_HOST={emulator.host_port}", flush=True)
    try:
        # wait() with a timeout so the main thread keeps running Python signal handlers.
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
