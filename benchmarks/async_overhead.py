"""The async ports (``iris_cloud.aio``) against the same SDKs' bare async clients.

Part 1, overhead: on each test server (Azurite, the Service Bus emulator, a
moto server in its own process) the async port and the SDK's own async
client do the same work, awaited one call after another; rounds alternate
which side goes first and the medians are compared (target: the port costs
<= 5%, a ratio <= 1.05): wall-clock, and this process's CPU time (the
client's own work; on a shared machine the steadier measure, though the
Service Bus emulator runs in this process and counts in it too).

* Blob / S3: ``--objects`` puts of 4 KiB (create-if-absent on both sides)
  then as many gets.
* Service Bus / SQS / Pub/Sub: ``--messages`` messages sent in batches,
  received and completed (deleted, acknowledged) one by one. Pub/Sub runs on
  its emulator; GCS has no async client to compare with (``AsyncGcsStore`` is
  the sync store in threads).

Part 2, concurrency: ``--concurrent`` (default 1,000) small puts at once,
the async store with ``asyncio.gather`` against the sync store with a thread
pool of ``--threads`` workers. S3: both sides with ``max_pool_connections``
= ``--threads``; Blob: the SDKs' own pools (aiohttp's 100 connections,
requests' 10 kept). Reported as sync seconds / async seconds (above 1: the
async port is faster).

    uv run --no-sync python benchmarks/async_overhead.py [--rounds 5] [--objects 50]
        [--messages 100] [--concurrent 1000] [--threads 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from iris_cloud.ports import Message

SMALL = b"x" * 4096
Row = tuple[str, float, float, float, float]
"""(operation, ours wall s, bare wall s, ours CPU s, bare CPU s)"""


async def compare(
    rounds: int, ours: Callable[[int], Awaitable[None]], bare: Callable[[int], Awaitable[None]]
) -> tuple[float, float, float, float]:
    """Median wall-clock and CPU seconds of ``ours`` and ``bare`` over ``rounds``, alternating
    who goes first: ``(ours wall, bare wall, ours cpu, bare cpu)``."""
    wall: dict[str, list[float]] = {"ours": [], "bare": []}
    cpu: dict[str, list[float]] = {"ours": [], "bare": []}
    await ours(-1)  # warm-up: connections, links, code paths
    await bare(-1)
    for r in range(rounds):
        order = [("ours", ours), ("bare", bare)]
        if r % 2:
            order.reverse()
        for label, fn in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            await fn(r)
            wall[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - start_cpu)
    med = statistics.median
    return med(wall["ours"]), med(wall["bare"]), med(cpu["ours"]), med(cpu["bare"])


async def port_cycle(broker: Any, messages: list[Message], per_receive: int) -> None:
    """The port's side of a broker cycle: send ``messages``, receive and complete them all."""
    await broker.send(messages)
    done = 0
    while done < len(messages):
        for m in await broker.receive(max_messages=per_receive, wait=2):
            await broker.complete(m)
            done += 1


# -- Azure -------------------------------------------------------------------------


async def blob_overhead(server: Any, rounds: int, objects: int) -> list[Row]:
    from azure.storage.blob import ContentSettings
    from azure.storage.blob.aio import ContainerClient
    from iris_cloud_azure.aio import AsyncAzureBlobStore

    container = f"bench-{uuid.uuid4().hex[:8]}"
    server.create_container(container)
    conn = server.connection_string
    store = AsyncAzureBlobStore.from_url(server.store_url(container), connection_string=conn)
    sdk = ContainerClient.from_connection_string(conn, container)
    rows: list[Row] = []
    async with store, sdk:

        async def put_ours(r: int) -> None:
            for i in range(objects):
                await store.put(f"ours/{r}/{i}", SMALL, content_type="image/jpeg")

        async def put_bare(r: int) -> None:
            settings = ContentSettings(content_type="image/jpeg")
            for i in range(objects):
                await sdk.upload_blob(
                    f"bare/{r}/{i}", SMALL, overwrite=False, content_settings=settings
                )

        rows.append((f"Blob: put {objects} x 4 KiB", *await compare(rounds, put_ours, put_bare)))

        async def get_ours(r: int) -> None:
            for i in range(objects):
                await store.get(f"ours/{max(r, 0)}/{i}")

        async def get_bare(r: int) -> None:
            for i in range(objects):
                await (await sdk.download_blob(f"bare/{max(r, 0)}/{i}")).readall()

        rows.append((f"Blob: get {objects} x 4 KiB", *await compare(rounds, get_ours, get_bare)))
    return rows


async def servicebus_overhead(bus: Any, rounds: int, messages: int) -> list[Row]:
    from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode
    from azure.servicebus.aio import ServiceBusClient
    from iris_cloud_azure.aio import AsyncServiceBusBroker
    from iris_cloud_azure.testing import MANAGE_KEY

    ours_q, bare_q = f"ours-{uuid.uuid4().hex[:6]}", f"bare-{uuid.uuid4().hex[:6]}"
    for q in (ours_q, bare_q):
        bus.create_queue(q)
    broker = AsyncServiceBusBroker.from_url(
        bus.url(ours_q), connection_string=bus.connection_string(MANAGE_KEY, ours_q)
    )
    client = ServiceBusClient.from_connection_string(bus.connection_string(MANAGE_KEY))
    body = b'{"EventType": "OrderReceived", "padding": "' + b"p" * 900 + b'"}'
    props = {"kind": "event"}
    async with (
        broker,
        client,
        client.get_queue_sender(bare_q) as sender,
        client.get_queue_receiver(
            bare_q, receive_mode=ServiceBusReceiveMode.PEEK_LOCK, prefetch_count=0
        ) as receiver,
    ):

        async def cycle_ours(r: int) -> None:
            batch = [Message(body=body, properties=props) for _ in range(messages)]
            await port_cycle(broker, batch, 50)

        async def cycle_bare(r: int) -> None:
            batch = await sender.create_message_batch()
            for _ in range(messages):
                batch.add_message(
                    ServiceBusMessage(
                        body, message_id=uuid.uuid4().hex, application_properties=props
                    )
                )
            await sender.send_messages(batch)
            done = 0
            while done < messages:
                for m in await receiver.receive_messages(max_message_count=50, max_wait_time=2):
                    await receiver.complete_message(m)
                    done += 1

        timing = await compare(rounds, cycle_ours, cycle_bare)
    return [(f"Service Bus: send+receive+complete {messages}", *timing)]


# -- AWS ---------------------------------------------------------------------------


def _bare_client(moto: Any, service: str, **config: Any) -> Any:
    """An aiobotocore client configured as the port configures its own (timeouts,
    retries, pool, SigV4), so the comparison measures the port, not other settings."""
    from aiobotocore.session import AioSession
    from iris_cloud_aws.aio._session import AioAwsSession

    opts = moto.options()
    settings = AioAwsSession.from_options(opts)
    session = AioSession()
    session.set_credentials(opts["aws_access_key_id"], opts["aws_secret_access_key"])
    return session.create_client(
        service,
        region_name=opts["region"],
        endpoint_url=opts["endpoint_url"],
        config=settings.config(signature_version="s3v4", **config),
    )


async def s3_overhead(moto: Any, rounds: int, objects: int) -> list[Row]:
    from iris_cloud_aws.aio import AsyncS3Store

    bucket = moto.create_bucket(f"bench-{uuid.uuid4().hex[:8]}")
    store = AsyncS3Store.from_url(moto.store_url(bucket), **moto.options())
    rows: list[Row] = []
    async with store, _bare_client(moto, "s3", s3={"addressing_style": "auto"}) as s3:

        async def put_ours(r: int) -> None:
            for i in range(objects):
                await store.put(f"ours/{r}/{i}", SMALL, content_type="image/jpeg")

        async def put_bare(r: int) -> None:
            for i in range(objects):
                await s3.put_object(
                    Bucket=bucket,
                    Key=f"bare/{r}/{i}",
                    Body=SMALL,
                    ContentType="image/jpeg",
                    IfNoneMatch="*",
                )

        rows.append((f"S3: put {objects} x 4 KiB", *await compare(rounds, put_ours, put_bare)))

        async def get_ours(r: int) -> None:
            for i in range(objects):
                await store.get(f"ours/{max(r, 0)}/{i}")

        async def get_bare(r: int) -> None:
            for i in range(objects):
                resp = await s3.get_object(Bucket=bucket, Key=f"bare/{max(r, 0)}/{i}")
                async with resp["Body"] as body:
                    await body.read()

        rows.append((f"S3: get {objects} x 4 KiB", *await compare(rounds, get_ours, get_bare)))
    return rows


async def sqs_overhead(moto: Any, rounds: int, messages: int) -> list[Row]:
    from iris_cloud_aws.aio import AsyncSqsBroker

    ours_q, bare_q = f"ours-{uuid.uuid4().hex[:6]}", f"bare-{uuid.uuid4().hex[:6]}"
    moto.create_queue(ours_q)
    bare_url = moto.create_queue(bare_q)
    broker = AsyncSqsBroker.from_url(moto.queue_url_form(ours_q), **moto.options())
    body = '{"EventType": "OrderReceived", "padding": "' + "p" * 900 + '"}'
    async with broker, _bare_client(moto, "sqs") as sqs:

        async def cycle_ours(r: int) -> None:
            await port_cycle(broker, [Message(body=body.encode()) for _ in range(messages)], 10)

        async def cycle_bare(r: int) -> None:
            for start in range(0, messages, 10):
                entries = [
                    {
                        "Id": str(i),
                        "MessageBody": body,
                        "MessageAttributes": {
                            "iris_message_id": {
                                "DataType": "String",
                                "StringValue": uuid.uuid4().hex,
                            }
                        },
                    }
                    for i in range(min(10, messages - start))
                ]
                await sqs.send_message_batch(QueueUrl=bare_url, Entries=entries)
            done = 0
            while done < messages:
                resp = await sqs.receive_message(
                    QueueUrl=bare_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=2,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                )
                for m in resp.get("Messages", []):
                    await sqs.delete_message(QueueUrl=bare_url, ReceiptHandle=m["ReceiptHandle"])
                    done += 1

        timing = await compare(rounds, cycle_ours, cycle_bare)
    return [(f"SQS: send+receive+complete {messages}", *timing)]


# -- GCP ---------------------------------------------------------------------------


async def pubsub_overhead(host: str, rounds: int, messages: int) -> list[Row]:
    from google.pubsub_v1 import PubsubMessage
    from iris_cloud_gcp._clients import GoogleAuth
    from iris_cloud_gcp.aio import AsyncPubSubBroker
    from iris_cloud_gcp.aio._clients import async_publisher_client, async_subscriber_client
    from iris_cloud_gcp.testing import PubSubAdmin

    admin = PubSubAdmin(host)
    ours_topic, ours_sub = admin.queue(f"ours-{uuid.uuid4().hex[:6]}")
    bare_topic, bare_sub = admin.queue(f"bare-{uuid.uuid4().hex[:6]}")
    admin.close()
    broker = AsyncPubSubBroker.from_url(
        f"gcppubsub://{ours_sub}?topic={ours_topic.rsplit('/', 1)[1]}", emulator_host=host
    )
    # The bare side on the same kind of channel the port opens to the emulator.
    anonymous = GoogleAuth(credentials=None, project=None, source="anonymous")
    publisher = async_publisher_client(anonymous, host, 30.0)
    subscriber = async_subscriber_client(anonymous, host, 30.0)
    body = b'{"EventType": "OrderReceived", "padding": "' + b"p" * 900 + b'"}'
    async with broker:

        async def cycle_ours(r: int) -> None:
            await port_cycle(broker, [Message(body=body) for _ in range(messages)], 50)

        async def cycle_bare(r: int) -> None:
            batch = [
                PubsubMessage(data=body, attributes={"iris-message-id": uuid.uuid4().hex})
                for _ in range(messages)
            ]
            await publisher.publish(topic=bare_topic, messages=batch)
            done = 0
            while done < messages:
                resp = await subscriber.pull(subscription=bare_sub, max_messages=50, timeout=5)
                for received in resp.received_messages:
                    await subscriber.acknowledge(subscription=bare_sub, ack_ids=[received.ack_id])
                    done += 1

        timing = await compare(rounds, cycle_ours, cycle_bare)
    await publisher.transport.close()
    await subscriber.transport.close()
    return [(f"Pub/Sub: send+receive+complete {messages}", *timing)]


# -- many concurrent small puts ---------------------------------------------------------


async def concurrent_puts(
    label: str, async_store: Any, sync_store: Any, count: int, threads: int
) -> tuple[str, float, float]:
    """Seconds for ``count`` 4 KiB puts: all at once on the async store, ``threads`` at a
    time through a thread pool on the sync store."""
    tag = uuid.uuid4().hex[:6]
    async with async_store:
        await async_store.put(f"warm-{tag}", SMALL)  # connect first, as the pool's warm-up does
        start = time.perf_counter()
        await asyncio.gather(*(async_store.put(f"async-{tag}/{i}", SMALL) for i in range(count)))
        async_seconds = time.perf_counter() - start
    with sync_store, ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda i: sync_store.put(f"warm-{tag}-{i}", SMALL), range(threads)))
        start = time.perf_counter()
        list(pool.map(lambda i: sync_store.put(f"sync-{tag}/{i}", SMALL), range(count)))
        sync_seconds = time.perf_counter() - start
    return label, async_seconds, sync_seconds


async def azure_part(
    args: argparse.Namespace, stack: ExitStack
) -> tuple[list[Row], list[tuple[str, float, float]]]:
    from iris_cloud_azure.aio import AsyncAzureBlobStore
    from iris_cloud_azure.store import AzureBlobStore
    from iris_cloud_azure.testing import azurite, servicebus

    blob = stack.enter_context(azurite())
    bus = stack.enter_context(servicebus())
    rows = await blob_overhead(blob, args.rounds, args.objects)
    rows += await servicebus_overhead(bus, args.rounds, args.messages)
    container = f"many-{uuid.uuid4().hex[:8]}"
    blob.create_container(container)
    url, conn = blob.store_url(container), blob.connection_string
    many = await concurrent_puts(
        "Blob",
        AsyncAzureBlobStore.from_url(url, connection_string=conn),
        AzureBlobStore.from_url(url, connection_string=conn),
        args.concurrent,
        args.threads,
    )
    return rows, [many]


async def aws_part(
    args: argparse.Namespace, stack: ExitStack
) -> tuple[list[Row], list[tuple[str, float, float]]]:
    from iris_cloud_aws.aio import AsyncS3Store
    from iris_cloud_aws.store import S3Store
    from iris_cloud_aws.testing import moto_server

    moto = stack.enter_context(moto_server(separate_process=True))
    rows = await s3_overhead(moto, args.rounds, args.objects)
    rows += await sqs_overhead(moto, args.rounds, args.messages)
    bucket = moto.create_bucket(f"many-{uuid.uuid4().hex[:8]}")
    options = {**moto.options(), "max_pool_connections": args.threads}
    many = await concurrent_puts(
        "S3",
        AsyncS3Store.from_url(moto.store_url(bucket), **options),
        S3Store.from_url(moto.store_url(bucket), **options),
        args.concurrent,
        args.threads,
    )
    return rows, [many]


async def gcp_part(
    args: argparse.Namespace, stack: ExitStack
) -> tuple[list[Row], list[tuple[str, float, float]]]:
    from iris_cloud_gcp.testing import pubsub_emulator_process

    host = stack.enter_context(pubsub_emulator_process())
    return await pubsub_overhead(host, args.rounds, args.messages), []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--only", choices=["azure", "aws", "gcp"], help="one provider's servers")
    args = parser.parse_args()

    parts = {"azure": azure_part, "aws": aws_part, "gcp": gcp_part}
    overhead: list[Row] = []
    many: list[tuple[str, float, float]] = []
    with ExitStack() as stack:
        for name, part in parts.items():
            if args.only and name != args.only:
                continue
            try:
                rows, puts = asyncio.run(part(args, stack))
            except Exception as exc:  # a server that does not start: say so, go on
                if type(exc).__name__ not in ("ServerUnavailable", "EmulatorUnavailable"):
                    raise
                print(f"{name}: cannot start the test servers: {exc}", file=sys.stderr)
                continue
            overhead += rows
            many += puts

    print(f"\nAsync ports vs the SDKs' bare async clients (median of {args.rounds} rounds)")
    print(
        f"{'operation':<42} {'ours s':>8} {'SDK s':>8} {'ratio':>6}"
        f" {'ours CPU':>9} {'SDK CPU':>8} {'ratio':>6}"
    )
    for name, ours, bare, ours_cpu, bare_cpu in overhead:
        print(
            f"{name:<42} {ours:>8.3f} {bare:>8.3f} {ours / bare:>6.3f}"
            f" {ours_cpu:>9.3f} {bare_cpu:>8.3f} {ours_cpu / bare_cpu:>6.3f}"
        )
    print(
        f"\n{args.concurrent} concurrent 4 KiB puts: async port (gather) vs sync port "
        f"({args.threads} threads)"
    )
    print(f"{'store':<10} {'async s':>9} {'sync s':>9} {'sync/async':>11}")
    for name, async_s, sync_s in many:
        print(f"{name:<10} {async_s:>9.3f} {sync_s:>9.3f} {sync_s / async_s:>11.2f}")
    return 0 if overhead else 1


if __name__ == "__main__":
    sys.exit(main())
