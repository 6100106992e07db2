"""Overhead of the Google Cloud ports against the bare client libraries, side by side.

Both sides talk to the same servers in the same run: gcp-storage-emulator and
the iris-cloud Pub/Sub emulator, each in its own process so that neither
shares this process's GIL. Work is done in small blocks alternating between
the two sides (ABBA), so that load from elsewhere on the machine falls on
both alike; the figures are totals over all blocks.

* ``gs://`` put / get of 64 KiB objects: ``GcsStore.put(overwrite=False)`` /
  ``get`` versus ``blob.upload_from_file(if_generation_match=0)`` /
  ``blob.download_as_bytes()``.
* ``gs://`` put of a large file from disk (resumable, 8 MiB chunks).
* ``gcppubsub://`` send in batches of 100: ``PubSubBroker.send(list)`` versus
  ``PublisherClient.publish`` x100 and waiting for every future, with the
  same batch settings and the same attributes on the wire.
* ``gcppubsub://`` receive + complete: ``receive(100)`` and ``complete`` each,
  versus ``pull(max_messages=100)`` and ``acknowledge`` each (the port settles
  message by message, so the bare side makes the same calls).

Columns: wall-clock ms per side and their ratio, then this process's CPU ms
(all threads: the client's own work, not the servers') and that ratio.
Ratio = ours / bare; the target (issue 9) is <= 1.05. On a busy shared
machine wall-clock ratios move by several percent between runs; the CPU
ratio is the steadier measure of what the port adds.

    uv run --no-sync python benchmarks/gcp_overhead.py [--blocks 10] [--objects 200]
        [--messages 2000] [--large-mb 32]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import pubsub_v1
from iris_cloud.ports import Message
from iris_cloud_gcp._clients import GoogleAuth, publisher_client, subscriber_client
from iris_cloud_gcp.broker import PubSubBroker
from iris_cloud_gcp.store import GcsStore
from iris_cloud_gcp.testing import (
    EmulatorUnavailable,
    PubSubAdmin,
    gcs_emulator,
    pubsub_emulator_process,
)

BATCH = 100
CHUNK = 8 * 1024 * 1024
BODY = b'{"Version":"2.3.1","ClientGuid":"0b3c5a5e","Order":{"LocalId":"A-1"}}' * 14


def compare(name: str, blocks: int, bare: Callable[[], None], ours: Callable[[], None]) -> None:
    """Run ``blocks`` blocks per side in ABBA order; print totals and ratios."""
    totals = {bare: [0.0, 0.0], ours: [0.0, 0.0]}
    for i in range(blocks):
        for fn in (bare, ours) if i % 2 == 0 else (ours, bare):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            totals[fn][0] += time.perf_counter() - wall
            totals[fn][1] += time.process_time() - cpu
    (bw, bc), (ow, oc) = totals[bare], totals[ours]
    print(
        f"{name:<40} {bw * 1000:>9.1f} {ow * 1000:>9.1f} {ow / bw:>6.3f}"
        f" {bc * 1000:>9.1f} {oc * 1000:>9.1f} {oc / bc:>6.3f}",
        flush=True,
    )


def bench_gcs(blocks: int, objects: int, large_mb: int) -> None:
    per_block = max(1, objects // blocks)
    with gcs_emulator() as gcs:
        bucket_name = gcs.create_bucket()
        client = gcs.client()
        bucket = client.bucket(bucket_name)
        store = GcsStore.from_url(f"gs://{bucket_name}/ours", endpoint=gcs.endpoint)
        payload = os.urandom(64 * 1024)
        bare_names: list[str] = []
        our_names: list[str] = []

        def bare_put() -> None:
            for _ in range(per_block):
                name = f"bare/{uuid.uuid4().hex}.jpg"
                blob = bucket.blob(name, chunk_size=CHUNK)
                blob.metadata = {"laterality": "OD"}
                blob.upload_from_file(
                    io.BytesIO(payload),
                    size=len(payload),
                    content_type="image/jpeg",
                    if_generation_match=0,
                )
                bare_names.append(name)

        def ours_put() -> None:
            for _ in range(per_block):
                name = f"{uuid.uuid4().hex}.jpg"
                store.put(name, payload, content_type="image/jpeg", metadata={"laterality": "OD"})
                our_names.append(name)

        def reader(names: list[str], get: Callable[[str], bytes]) -> Callable[[], None]:
            position = [0]

            def read_block() -> None:
                for name in names[position[0] : position[0] + per_block]:
                    assert len(get(name)) == len(payload)
                position[0] += per_block

            return read_block

        compare(f"gs:// put {per_block * blocks} x 64 KiB", blocks, bare_put, ours_put)
        compare(
            f"gs:// get {per_block * blocks} x 64 KiB",
            blocks,
            reader(bare_names, lambda n: bucket.blob(n).download_as_bytes()),
            reader(our_names, store.get),
        )

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "exam.dcm"
            with path.open("wb") as fh:
                for _ in range(large_mb):
                    fh.write(os.urandom(1024 * 1024))
            size = path.stat().st_size

            def bare_large() -> None:
                blob = bucket.blob(f"bare/{uuid.uuid4().hex}.dcm", chunk_size=CHUNK)
                with path.open("rb") as fh:
                    blob.upload_from_file(
                        fh, size=size, content_type="application/dicom", if_generation_match=0
                    )

            def ours_large() -> None:
                store.put(f"{uuid.uuid4().hex}.dcm", path, content_type="application/dicom")

            compare(
                f"gs:// put {large_mb} MiB file x {max(2, blocks // 2)}",
                max(2, blocks // 2),
                bare_large,
                ours_large,
            )
        store.close()
        client.close()


def bench_pubsub(blocks: int, messages: int) -> None:
    batches = max(1, messages // BATCH // blocks)
    with pubsub_emulator_process(min_ack_deadline=10) as host:
        admin = PubSubAdmin(host)
        bare_topic, bare_sub = admin.queue(f"bare-{uuid.uuid4().hex[:8]}", ack_deadline=600)
        ours_topic, ours_sub = admin.queue(f"ours-{uuid.uuid4().hex[:8]}", ack_deadline=600)
        admin.close()
        auth = GoogleAuth(AnonymousCredentials(), "iris-test", "anonymous")
        # What PubSubBroker uses: same batching, same retry and timeout.
        settings = pubsub_v1.types.BatchSettings(
            max_bytes=10_000_000, max_latency=0.01, max_messages=1000
        )
        publisher = publisher_client(auth, host, settings, ordering=True)
        subscriber = subscriber_client(auth, host)
        retry = Retry(timeout=60)
        broker = PubSubBroker.from_url(
            f"gcppubsub://{ours_sub}?topic={ours_topic.rsplit('/', 1)[1]}", emulator_host=host
        )

        def bare_send() -> None:
            for _ in range(batches):
                futures = [
                    publisher.publish(
                        bare_topic,
                        BODY,
                        retry=retry,
                        timeout=60.0,
                        **{
                            "iris-message-id": uuid.uuid4().hex,
                            "iris-content-type": "application/json",
                            "iris-subject": "OrderRequest",
                            "n": str(n),
                            "iris-types": '{"n":"int"}',
                        },
                    )
                    for n in range(BATCH)
                ]
                for f in futures:
                    f.result()

        def ours_send() -> None:
            for _ in range(batches):
                broker.send(
                    [
                        Message(body=BODY, subject="OrderRequest", properties={"n": n})
                        for n in range(BATCH)
                    ]
                )

        def bare_receive() -> None:
            got = 0
            while got < batches * BATCH:
                response = subscriber.pull(
                    subscription=bare_sub, max_messages=BATCH, timeout=5.0, retry=None
                )
                for received in response.received_messages:
                    subscriber.acknowledge(
                        subscription=bare_sub, ack_ids=[received.ack_id], timeout=60.0
                    )
                got += len(response.received_messages)

        def ours_receive() -> None:
            got = 0
            while got < batches * BATCH:
                batch = broker.receive(max_messages=BATCH, wait=5.0)
                for m in batch:
                    broker.complete(m)
                got += len(batch)

        total = batches * BATCH * blocks
        compare(f"gcppubsub:// send {total} (batches of {BATCH})", blocks, bare_send, ours_send)
        compare(f"gcppubsub:// receive+complete {total}", blocks, bare_receive, ours_receive)
        broker.close()
        publisher.stop()
        subscriber.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--large-mb", type=int, default=32)
    args = parser.parse_args()
    print(
        f"{'operation':<40} {'bare ms':>9} {'ours ms':>9} {'ratio':>6}"
        f" {'bare cpu':>9} {'ours cpu':>9} {'ratio':>6}"
    )
    try:
        bench_gcs(args.blocks, args.objects, args.large_mb)
        bench_pubsub(args.blocks, args.messages)
    except EmulatorUnavailable as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
