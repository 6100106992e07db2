"""``iris-cloud-servicebus-emulator``: serve the Service Bus emulator until SIGINT/SIGTERM.

The first line on stdout is a connection string for the first key (or the
default key), so a script can start it with ``--port 0`` and read the port.
Further lines name the connection string of every other configured key.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from ._auth import SasKey
from ._emulator import ServiceBusEmulator
from ._server import DEFAULT_MAX_MESSAGE_SIZE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iris-cloud-servicebus-emulator",
        description="An Azure Service Bus (AMQP 1.0) emulator for tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5672, help="TCP port, 0 for any (default 5672)")
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help="create queue NAME (repeatable)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="TOPIC:SUB[,SUB...]",
        help="create a topic with subscriptions (repeatable)",
    )
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        type=_key,
        metavar="NAME:SECRET:RIGHTS",
        help="shared access key with rights Send,Listen,Manage (repeatable); "
        "without any key every token is accepted",
    )
    parser.add_argument(
        "--lock-duration", type=float, default=30.0, metavar="SECONDS", help="peek-lock duration"
    )
    parser.add_argument(
        "--max-delivery-count", type=int, default=10, help="deliveries before dead-lettering"
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="BYTES",
        help="largest message or batch accepted (default 262144)",
    )
    parser.add_argument(
        "--auto-create",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="create unknown queues on first use (default: only without --queue/--topic)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log connections and errors")
    return parser


def _key(spec: str) -> SasKey:
    try:
        return SasKey.parse(spec)
    except ValueError as exc:  # argparse shows this message instead of a bare "invalid value"
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _topics(specs: Sequence[str]) -> dict[str, list[str]]:
    topics: dict[str, list[str]] = {}
    for spec in specs:
        topic, _, subscriptions = spec.partition(":")
        names = [s for s in subscriptions.split(",") if s]
        if not topic or not names:
            raise SystemExit(f"--topic must look like TOPIC:SUB[,SUB...], got {spec!r}")
        topics.setdefault(topic, []).extend(names)
    return topics


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, start the emulator and block until a stop signal."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    emulator = ServiceBusEmulator(
        args.host,
        args.port,
        queues=args.queue,
        topics=_topics(args.topic),
        keys=args.key,
        lock_duration=args.lock_duration,
        max_delivery_count=args.max_delivery_count,
        max_message_size=args.max_message_size,
        auto_create=args.auto_create,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with emulator:
        names = list(emulator.keys) or [None]
        for name in names:
            print(emulator.connection_string(name), flush=True)
        # wait() in short slices so signals are handled promptly on every platform.
        while not stop.wait(0.5):
            if not emulator.running:
                print("the emulator stopped unexpectedly", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
