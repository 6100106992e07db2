"""Overhead of the AWS ports (awssqs://, s3://) against bare boto3, side by side.

Every side talks to the same moto server, run in its own process so that it
does not share this process's GIL. Rounds alternate which side goes first;
each figure is the median over the rounds.

* SQS, 1,000 messages in waves of 100: send in batches of 10, receive 10 at a
  time, delete each. Ours: ``SqsBroker.send(list)``, ``receive(10)``, ``complete``. Bare:
  ``send_message_batch`` with the same attributes on the wire (message id and
  content type, as a hand-written client that keeps its ids would send),
  ``receive_message(MaxNumberOfMessages=10)``, ``delete_message``.
* SQS batched, 1,000 messages of 1 KiB, the same waves, but each received
  batch is settled at once. Ours: ``complete_many(received)``. Bare:
  ``delete_message_batch`` with the received batch's receipt handles.
* S3, 100 puts + 100 gets of 64 KiB objects. Ours: ``S3Store.put(overwrite=False)``
  and ``get``. Bare: ``put_object(IfNoneMatch="*")`` and ``get_object().read()``.
* Naive: the bare calls, but with a new boto3 session and client for every
  call, as code that writes ``boto3.client("sqs").send_message(...)`` inline
  does. Shown beside the others to show what reusing one client saves. It is
  so slow that it runs a tenth of the workload, scaled up, in the first
  ``--naive-rounds`` rounds only.

Columns: median wall-clock ms per side and ours / bare, the naive side and
naive / bare, then this process's CPU ms (the client's own work, not the
server's) for bare and ours and their ratio. The target (issue 7) is an
overhead <= 5% (ratio <= 1.05); for the batched SQS workload (issue 16)
<= 1.10 wall-clock and <= 1.5 CPU. On a shared machine wall-clock ratios move by
a few percent between runs; the CPU ratio is the steadier measure.

    uv run --no-sync python benchmarks/aws_overhead.py [--rounds 5] [--messages 1000]
        [--message-kb 1] [--objects 100] [--object-kb 64] [--naive-rounds 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from iris_cloud.ports import Message
from iris_cloud_aws import S3Store, SqsBroker
from iris_cloud_aws.testing import MotoServer, ServerUnavailable, moto_server

Timing = tuple[float, float]
BATCH = 10
WAVE = 100
"""Messages in flight at once: the 1,000 go in waves of 100, each sent and then
received and deleted, as a consumer that keeps up with its sender sees them.
Both sides run the same waves."""


def timed(fn: Callable[[], None]) -> Timing:
    """Wall-clock seconds and this process's CPU seconds (all threads) spent in ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


class Bare:
    """Hand-written boto3 against one server, with one client per service (or per call)."""

    def __init__(self, server: MotoServer, *, new_client_per_call: bool = False) -> None:
        self.server = server
        self.naive = new_client_per_call
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """The service's client: a new one for every call when naive."""
        if self.naive:
            return self.new_client(service)
        if service not in self._clients:
            self._clients[service] = self.new_client(service)
        return self._clients[service]

    def new_client(self, service: str) -> Any:
        """A new boto3 session and client, as ``boto3.client(...)`` inline makes."""
        session = boto3.session.Session(region_name=self.server.region, **self.server.credentials)
        return session.client(service, endpoint_url=self.server.endpoint_url)

    def sqs_round_trip(self, queue_url: str, bodies: list[bytes], *, batched: bool = False) -> None:
        for wave in range(0, len(bodies), WAVE):
            self._sqs_wave(queue_url, bodies[wave : wave + WAVE], batched)

    def _sqs_wave(self, queue_url: str, bodies: list[bytes], batched: bool) -> None:
        for start in range(0, len(bodies), BATCH):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": body.decode(),
                    "MessageAttributes": {
                        "iris_message_id": {"DataType": "String", "StringValue": uuid.uuid4().hex},
                        "iris_content_type": {
                            "DataType": "String",
                            "StringValue": "application/json",
                        },
                    },
                }
                for i, body in enumerate(bodies[start : start + BATCH])
            ]
            resp = self.client("sqs").send_message_batch(QueueUrl=queue_url, Entries=entries)
            assert not resp.get("Failed"), resp["Failed"]
        received = 0
        while received < len(bodies):
            resp = self.client("sqs").receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=BATCH,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
            got = resp.get("Messages", [])
            if batched and got:
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
                ]
                done = self.client("sqs").delete_message_batch(QueueUrl=queue_url, Entries=entries)
                assert not done.get("Failed"), done["Failed"]
            elif not batched:
                for msg in got:
                    self.client("sqs").delete_message(
                        QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"]
                    )
            received += len(got)

    def s3_round_trip(self, bucket: str, data: bytes, count: int) -> None:
        prefix = uuid.uuid4().hex
        for i in range(count):
            self.client("s3").put_object(
                Bucket=bucket, Key=f"{prefix}/{i}", Body=data, IfNoneMatch="*"
            )
        for i in range(count):
            body = self.client("s3").get_object(Bucket=bucket, Key=f"{prefix}/{i}")["Body"]
            assert len(body.read()) == len(data)


def ours_sqs(broker: SqsBroker, bodies: list[bytes], *, batched: bool = False) -> None:
    for wave in range(0, len(bodies), WAVE):
        _ours_wave(broker, bodies[wave : wave + WAVE], batched)


def _ours_wave(broker: SqsBroker, bodies: list[bytes], batched: bool) -> None:
    for start in range(0, len(bodies), BATCH):
        broker.send([Message(body=b) for b in bodies[start : start + BATCH]])
    received = 0
    while received < len(bodies):
        got = broker.receive(max_messages=BATCH, wait=1)
        if batched and got:
            assert broker.complete_many(got) == [None] * len(got)
        elif not batched:
            for msg in got:
                broker.complete(msg)
        received += len(got)


def _padded(body: bytes, size: int) -> bytes:
    """``body`` as a JSON object padded with a filler field to ``size`` bytes."""
    filler = max(0, size - len(body) - len(', "Filler": ""'))
    return body[:-1] + b', "Filler": "' + b"x" * filler + b'"}'


def ours_s3(store: S3Store, data: bytes, count: int) -> None:
    prefix = uuid.uuid4().hex
    for i in range(count):
        store.put(f"{prefix}/{i}", data)
    for i in range(count):
        assert len(store.get(f"{prefix}/{i}")) == len(data)


def run(args: argparse.Namespace) -> None:
    try:
        ctx = moto_server(separate_process=True)
        server = ctx.__enter__()
    except ServerUnavailable as exc:
        print(f"moto server unavailable: {exc}", file=sys.stderr)
        sys.exit(1)
    try:
        bodies = [
            (
                f'{{"ResultObjectType": "ImageReceipt", "OrderLocalId": "ORD-{i:05d}", '
                f'"TransactionId": "{uuid.uuid4()}"}}'
            ).encode()
            for i in range(args.messages)
        ]
        kib_bodies = [_padded(b, args.message_kb * 1024) for b in bodies]
        data = os.urandom(args.object_kb * 1024)
        bucket = server.create_bucket(f"bench-{uuid.uuid4().hex[:8]}")
        bare, naive = Bare(server), Bare(server, new_client_per_call=True)
        naive_bodies = bodies[: max(BATCH, args.messages // 10)]
        naive_objects = max(1, args.objects // 10)
        sqs_scale = len(bodies) / len(naive_bodies)
        s3_scale = args.objects / naive_objects
        store = S3Store.from_url(server.store_url(bucket), **server.options())

        def queue() -> str:
            return server.create_queue(f"bench-{uuid.uuid4().hex[:12]}")

        # One unmeasured pass warms connections, endpoint resolution and moto.
        bare.sqs_round_trip(queue(), bodies[:BATCH])
        bare.s3_round_trip(bucket, data, 1)
        ours_s3(store, data, 1)

        results: dict[str, dict[str, list[Timing]]] = {"sqs": {}, "sqs_batched": {}, "s3": {}}
        for r in range(args.rounds):
            order = ["bare", "ours"] if r % 2 == 0 else ["ours", "bare"]
            if r < args.naive_rounds:
                order.append("naive")
            for side in order:
                url = queue()
                if side == "naive":
                    # A new client per call costs so much that the naive side
                    # runs on a slice of the workload; it is scaled up below.
                    sqs_t = timed(lambda u=url: naive.sqs_round_trip(u, naive_bodies))
                    s3_t = timed(lambda: naive.s3_round_trip(bucket, data, naive_objects))
                    sqs_t = (sqs_t[0] * sqs_scale, sqs_t[1] * sqs_scale)
                    s3_t = (s3_t[0] * s3_scale, s3_t[1] * s3_scale)
                    batched_t = None
                elif side == "ours":
                    options = server.options()
                    broker = SqsBroker.from_url(url.replace("http://", "awssqs://"), **options)
                    sqs_t = timed(lambda b=broker: ours_sqs(b, bodies))
                    batched = SqsBroker.from_url(queue().replace("http://", "awssqs://"), **options)
                    batched_t = timed(lambda b=batched: ours_sqs(b, kib_bodies, batched=True))
                    s3_t = timed(lambda: ours_s3(store, data, args.objects))
                else:
                    sqs_t = timed(lambda u=url: bare.sqs_round_trip(u, bodies))
                    batched_url = queue()
                    batched_t = timed(
                        lambda u=batched_url: bare.sqs_round_trip(u, kib_bodies, batched=True)
                    )
                    s3_t = timed(lambda: bare.s3_round_trip(bucket, data, args.objects))
                results["sqs"].setdefault(side, []).append(sqs_t)
                if batched_t is not None:
                    results["sqs_batched"].setdefault(side, []).append(batched_t)
                results["s3"].setdefault(side, []).append(s3_t)
                print(
                    f"  round {r + 1} {side:<5} sqs {sqs_t[0] * 1000:8.0f} ms  "
                    f"batched {(batched_t or (0.0, 0.0))[0] * 1000:8.0f} ms  "
                    f"s3 {s3_t[0] * 1000:8.0f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        ctx.__exit__(None, None, None)

    def med(values: list[Timing], i: int) -> float:
        return statistics.median(v[i] for v in values) * 1000

    labels = {
        "sqs": f"SQS {args.messages} send/receive/delete",
        "sqs_batched": f"SQS {args.messages} x {args.message_kb} KiB, batch delete",
        "s3": f"S3 {args.objects} put + {args.objects} get ({args.object_kb} KiB)",
    }
    print(
        f"{'workload':<36} {'bare ms':>9} {'ours ms':>9} {'ratio':>6} {'naive ms':>9}"
        f" {'n/bare':>6} {'bare cpu':>9} {'ours cpu':>9} {'ratio':>6}"
    )
    for key, label in labels.items():
        sides = results[key]
        bw, ow = med(sides["bare"], 0), med(sides["ours"], 0)
        bc, oc = med(sides["bare"], 1), med(sides["ours"], 1)
        # The batched workload has no naive side: nobody batches with a client per call.
        naive_cols = (
            f"{med(sides['naive'], 0):>9.0f} {med(sides['naive'], 0) / bw:>6.2f}"
            if sides.get("naive")
            else f"{'-':>9} {'-':>6}"
        )
        print(
            f"{label:<36} {bw:>9.0f} {ow:>9.0f} {ow / bw:>6.3f} {naive_cols}"
            f" {bc:>9.0f} {oc:>9.0f} {oc / bc:>6.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument(
        "--message-kb", type=int, default=1, help="body size of the batched SQS workload"
    )
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--object-kb", type=int, default=64)
    parser.add_argument(
        "--naive-rounds", type=int, default=1, help="rounds that also run the (slow) naive side"
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
