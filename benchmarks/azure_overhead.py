"""Azure provider overhead: iris-cloud's ports against the bare Azure SDKs, in one run.

Both sides talk to the same servers (Azurite for Blob Storage, the Service Bus
emulator of ``iris-cloud-emulators``) with the same data; rounds alternate
which side goes first and the medians are compared as a ratio (target: the
ports cost <= 5% over the SDK). Then one streaming upload of ``--upload-mb``
(default 2048 MB, from a generated stream, no disk) through ``put`` reports
the peak growth of this process's RSS (target: < 100 MB), next to the SDK's
own chunked ``upload_blob`` for comparison.

    uv run --no-sync python benchmarks/azure_overhead.py [--upload-mb 2048] [--rounds 7]

Figures go into docs/azure.md.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import psutil
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode
from azure.storage.blob import ContainerClient, ContentSettings
from iris_cloud.ports import Message
from iris_cloud_azure.broker import ServiceBusBroker
from iris_cloud_azure.store import AzureBlobStore
from iris_cloud_azure.testing import MANAGE_KEY, ServerUnavailable, azurite, servicebus

MB = 1024 * 1024


class PatternStream(io.RawIOBase):
    """``size`` bytes from one reused 1 MB buffer: the source itself needs no memory."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self._block = bytes(range(256)) * 4096

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.pos, len(self._block))
        buffer[:n] = self._block[:n]
        self.pos += n
        return n


class PeakRss:
    """Samples this process's RSS every 10 ms; ``growth`` is peak minus the start."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / MB


def compare(
    rounds: int, ours: Callable[[int], None], bare: Callable[[int], None]
) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``bare`` over ``rounds``, alternating who goes first."""
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    ours(-1)  # warm-up: links, connections, code paths
    bare(-1)
    for r in range(rounds):
        order = [("ours", ours), ("bare", bare)]
        if r % 2:
            order.reverse()
        for label, fn in order:
            start = time.perf_counter()
            fn(r)
            times[label].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["bare"])


def blob_benchmarks(server: Any, rounds: int, objects: int) -> list[tuple[str, float, float]]:
    container = f"bench-{uuid.uuid4().hex[:8]}"
    server.create_container(container)
    conn = server.connection_string
    store = AzureBlobStore.from_url(server.store_url(container), connection_string=conn)
    # The SDK configured like the store (4 MB blocks, 4 in flight, 1 MB ranges), so
    # the comparison measures the port's own cost, not different tuning.
    sdk = ContainerClient.from_connection_string(
        conn,
        container,
        max_single_put_size=4 * MB,
        max_block_size=4 * MB,
        max_single_get_size=1 * MB,
        max_chunk_get_size=1 * MB,
    )
    small = b"x" * 4096
    large = 32 * MB
    rows = []

    def put_ours(r: int) -> None:
        for i in range(objects):
            store.put(f"ours/{r}/{i}", small, content_type="image/jpeg", metadata={"k": "v"})

    def put_bare(r: int) -> None:
        settings = ContentSettings(content_type="image/jpeg")
        for i in range(objects):
            sdk.upload_blob(
                f"bare/{r}/{i}",
                small,
                overwrite=False,
                content_settings=settings,
                metadata={"k": "v"},
            )

    rows.append((f"put {objects} x 4 KB", *compare(rounds, put_ours, put_bare)))

    def get_ours(r: int) -> None:
        for i in range(objects):
            store.get(f"ours/{max(r, 0)}/{i}")

    def get_bare(r: int) -> None:
        for i in range(objects):
            sdk.download_blob(f"bare/{max(r, 0)}/{i}").readall()

    rows.append((f"get {objects} x 4 KB", *compare(rounds, get_ours, get_bare)))

    def list_ours(r: int) -> None:
        assert len(list(store.list("ours/0/"))) == objects

    def list_bare(r: int) -> None:
        assert (
            len(list(sdk.list_blobs(name_starts_with="bare/0/", include=["metadata"]))) == objects
        )

    rows.append((f"list {objects}", *compare(rounds, list_ours, list_bare)))

    def big_ours(r: int) -> None:
        store.put(f"big/ours/{r}", PatternStream(large), overwrite=True)
        with store.open_read(f"big/ours/{r}") as fh:
            while fh.read(MB):
                pass

    def big_bare(r: int) -> None:
        sdk.upload_blob(
            f"big/bare/{r}", PatternStream(large), length=large, overwrite=True, max_concurrency=4
        )
        for _chunk in sdk.download_blob(f"big/bare/{r}").chunks():
            pass

    rows.append(("put+get 32 MB stream", *compare(max(3, rounds // 2), big_ours, big_bare)))
    store.close()
    sdk.close()
    return rows


def servicebus_benchmarks(bus: Any, rounds: int, messages: int) -> list[tuple[str, float, float]]:
    ours_q, bare_q = f"ours-{uuid.uuid4().hex[:6]}", f"bare-{uuid.uuid4().hex[:6]}"
    for q in (ours_q, bare_q):
        bus.create_queue(q)
    broker = ServiceBusBroker.from_url(
        bus.url(ours_q), connection_string=bus.connection_string(MANAGE_KEY, ours_q)
    )
    client = ServiceBusClient.from_connection_string(bus.connection_string(MANAGE_KEY))
    sender = client.get_queue_sender(bare_q)
    receiver = client.get_queue_receiver(
        bare_q, receive_mode=ServiceBusReceiveMode.PEEK_LOCK, prefetch_count=0
    )
    body = b'{"EventType": "OrderReceived", "padding": "' + b"p" * 900 + b'"}'
    props = {"kind": "event", "version": "2.3.1"}
    rows = []

    def cycle_ours(r: int) -> None:
        broker.send(
            [Message(body=body, subject="Event", properties=props) for _ in range(messages)]
        )
        done = 0
        while done < messages:
            got = broker.receive(max_messages=50, wait=2)
            for m in got:
                broker.complete(m)
            done += len(got)

    def cycle_bare(r: int) -> None:
        batch = sender.create_message_batch()
        for _ in range(messages):
            batch.add_message(
                ServiceBusMessage(
                    body,
                    message_id=uuid.uuid4().hex,
                    subject="Event",
                    content_type="application/json",
                    application_properties=props,
                )
            )
        sender.send_messages(batch)
        done = 0
        while done < messages:
            got = receiver.receive_messages(max_message_count=50, max_wait_time=2)
            for m in got:
                receiver.complete_message(m)
            done += len(got)

    rows.append(
        (f"send+receive+complete {messages} x 1 KB", *compare(rounds, cycle_ours, cycle_bare))
    )

    def single_ours(r: int) -> None:
        for _ in range(20):
            broker.send(Message(body=body, properties=props))
            (m,) = broker.receive(max_messages=1, wait=2)
            broker.complete(m)

    def single_bare(r: int) -> None:
        for _ in range(20):
            sender.send_messages(
                ServiceBusMessage(body, message_id=uuid.uuid4().hex, application_properties=props)
            )
            (m,) = receiver.receive_messages(max_message_count=1, max_wait_time=2)
            receiver.complete_message(m)

    rows.append(("20 x one-message round trip", *compare(rounds, single_ours, single_bare)))
    broker.close()
    sender.close()
    receiver.close()
    client.close()
    return rows


def streaming_upload(
    server: Any, size_mb: int, repeats: int
) -> list[tuple[str, float, float, float]]:
    """(label, median seconds, MB/s, largest RSS growth MB) for ours and the SDK's upload.

    The two alternate (ours, SDK, SDK, ours, ...) so that neither always meets a
    fresh or a busy server; both read the same generated stream.
    """
    container = f"stream-{uuid.uuid4().hex[:8]}"
    server.create_container(container)
    size = size_mb * MB
    store = AzureBlobStore.from_url(
        server.store_url(container), connection_string=server.connection_string
    )
    sdk = ContainerClient.from_connection_string(
        server.connection_string, container, max_single_put_size=4 * MB, max_block_size=4 * MB
    )

    def ours() -> None:
        info = store.put("ours.dcm", PatternStream(size), overwrite=True)
        assert info.size == size == store.info("ours.dcm").size

    def bare() -> None:
        sdk.upload_blob(
            "sdk.dcm", PatternStream(size), length=size, max_concurrency=4, overwrite=True
        )

    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "bare": []}
    for r in range(repeats):
        order = [("ours", ours), ("bare", bare)]
        if r % 2:
            order.reverse()
        for label, fn in order:
            with PeakRss() as rss:
                start = time.perf_counter()
                fn()
                seconds = time.perf_counter() - start
            runs[label].append((seconds, rss.growth_mb))
    store.close()
    sdk.close()
    results = []
    for label, name in (("ours", "iris-cloud put"), ("bare", "SDK upload_blob (4 MB, 4 threads)")):
        seconds = statistics.median(t for t, _ in runs[label])
        growth = max(g for _, g in runs[label])
        results.append((name, seconds, size_mb / seconds, growth))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upload-mb", type=int, default=2048, help="streaming upload size")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--upload-repeats", type=int, default=2, help="uploads per side")
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument(
        "--skip-servicebus", action="store_true", help="Blob Storage and the upload only"
    )
    args = parser.parse_args()

    rows: list[tuple[str, float, float]] = []
    with ExitStack() as stack:
        try:
            blob = stack.enter_context(azurite())
            big = stack.enter_context(azurite(in_memory=False))
            bus = None if args.skip_servicebus else stack.enter_context(servicebus())
        except ServerUnavailable as exc:
            print(f"cannot start the test servers: {exc}", file=sys.stderr)
            return 1
        rows += blob_benchmarks(blob, args.rounds, args.objects)
        if bus is not None:
            rows += servicebus_benchmarks(bus, args.rounds, args.messages)
        streams = streaming_upload(big, args.upload_mb, args.upload_repeats)

    print(f"\nAzure overhead: iris-cloud ports vs bare SDK (median of {args.rounds} rounds)")
    print(f"{'operation':<40} {'ours s':>9} {'SDK s':>9} {'ratio':>7}")
    for name, ours, bare in rows:
        print(f"{name:<40} {ours:>9.3f} {bare:>9.3f} {ours / bare:>7.3f}")
    total_ours = sum(r[1] for r in rows)
    total_bare = sum(r[2] for r in rows)
    ratio = total_ours / total_bare
    print(f"{'all of the above':<40} {total_ours:>9.3f} {total_bare:>9.3f} {ratio:>7.3f}")
    print(
        f"\nStreaming upload of {args.upload_mb} MB (RSS growth of this process; target < 100 MB)"
    )
    print(f"(median of {args.upload_repeats} uploads per side, alternating; largest RSS growth)")
    print(f"{'uploader':<42} {'seconds':>8} {'MB/s':>7} {'RSS +MB':>8}")
    for label, seconds, rate, growth in streams:
        print(f"{label:<42} {seconds:>8.1f} {rate:>7.1f} {growth:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
