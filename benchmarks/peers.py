"""iris-cloud against what a user would pick instead, and against the floor, in one run.

Four workloads (issue 16), each side by side with the others on the same
machine and (for SQS and S3) the same moto server, run in its own process:

* **SQS**: 1,000 x 1 KiB messages in waves of 100: send in batches of 10,
  receive 10 at a time, settle. Floor: bare boto3 with
  ``SendMessageBatch`` / ``ReceiveMessage`` / ``DeleteMessageBatch``. Ours:
  ``SqsBroker.send(list)``, ``receive(10)``, ``complete_many`` (one
  ``DeleteMessageBatch`` per receive). Peer: kombu's SQS transport
  (``Producer.publish``, a ``Consumer`` with prefetch 10 acking each message).
* **file://**: 200 x 64 KiB puts of bytes to new names. Floor: ``open(...,
  "wb").write``. Ours: ``FileStore.put`` (a conditional create, the
  default). Peer: obstore's ``LocalStore`` (``put(..., mode="create")``).
  A fourth side (Linux) makes our put's system calls bare: an unnamed file
  (``O_TMPFILE``), its write, ``fstat`` and the ``linkat`` that publishes it
  only if the name is free: what atomic conditional creation costs the
  kernel, beside a plain write that promises neither.
* **consumer on mem://**: 10,000 IRIS event messages, a handler that does
  nothing, concurrency 1, counted from the first receive to the last
  settlement. Ours: :class:`~iris_cloud.consumer.Consumer` on ``mem://``,
  from ``start()`` to the ``complete_many`` that settles the last message
  (the stop that follows is paid once a run, as kombu's loop pays its exit).
  Peer (the reference): a kombu ``memory://`` consumer doing the same IRIS
  parse (:func:`~iris_cloud.model.parse_message`) and acking each message.
  A third side only parses the same bodies in a loop: the report also gives
  what each consumer spends beyond that parse, which both sides share.
* **S3 upload**: one 256 MiB object from a file. Floor: ``boto3``'s
  ``upload_file``. Ours: ``S3Store.put(path)``. Peers: obstore's
  ``S3Store`` (``put`` of the path) and s3fs ``put_file``. Peak RSS growth
  of this process during each upload is sampled every 10 ms.

Each round runs every side of a workload once (the file:// puts take about
10 ms and share the disk with whatever else runs, so they get
``--file-rounds``, default 31, after one unmeasured round that pays the
first-use costs of every side; before each side the disk is synced and
garbage collected, so that no side pays for what the one before left, and
the files stay until the run ends: ext4 skips recently freed inodes when it
allocates, so deleting them would make each later round's creates dearer;
the consumer's rounds take about 0.15 s a side, and single rounds range
from 0.6x to 1.8x on a shared machine for both sides alike, so they get
``--consumer-rounds``, default 21; an S3 round's sides range from 0.5x to
1.5x the floor's time on the shared moto server, so it gets ``--s3-rounds``,
default 9);
the order of the sides alternates between rounds (forward, then reversed),
so that no side always pays for the write-back or the server's garbage of
the one before. Figures are medians over the rounds; ``ratio`` is the
ratio of the medians, ``round ratio`` the median of the per-round ratios
to the floor (or reference), which a machine that drifts during the run
(a disk whose creates slow down as files pile up) does not skew, since the
sides of one round run back to back; ``spread`` is the range of the
per-round ratio, and with 8 rounds or more its interquartile range first,
then ``all`` the range.
Columns ``client CPU`` and
``server CPU`` are this process's and the moto server's CPU time (psutil),
and ``server share`` the server's part of their sum: how much of the time
is the test server's, not ours.

The peers are bench-only dependencies of the ``bench`` tox env, so run it
there: ``uv run tox -e bench`` runs every benchmark; this one alone, once the
env exists (``uv run tox -e bench --notest``):

    .tox/bench/bin/python benchmarks/peers.py [--rounds 3] [--only sqs,file,consumer,s3]

``--calls`` runs the consumer workload once a side, counting the function
calls each makes per message (in every thread) instead of timing it.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

BATCH = 10
WAVE = 100
MIB = 1024 * 1024


def event_body(n: int, size: int = 0) -> bytes:
    """An IRIS ``ImageReceipt`` event (the model's sample), padded to ``size`` bytes if given."""
    from importlib import resources

    sample = resources.files("iris_cloud.model.samples").joinpath("event-image-receipt.json")
    event = json.loads(sample.read_text(encoding="utf-8"))
    event.update(TransactionId=str(uuid.uuid4()).upper(), OrderLocalId=f"ORD-{n:06d}")
    body = json.dumps(event)
    if size > len(body):
        event["ErrorMessage"] = "x" * (size - len(body) - 4)
        body = json.dumps(event)
    return body.encode()


@dataclass
class Sample:
    """One side's measurements in one round."""

    wall: float
    cpu: float
    server_cpu: float | None = None
    rss_growth: float | None = None  # MB
    calls: int | None = None
    """Function calls made in every thread over the block (:class:`CallCounter`)."""


@dataclass
class Workload:
    """The sides of one workload, the first being the floor (or reference)."""

    title: str
    floor: str
    sides: dict[str, Callable[[], Sample]]
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    target: str = ""
    shared: str | None = None
    """A side doing only the work every side does: the report also compares
    what each side spends beyond it."""


class Meter:
    """Wall-clock, this process's CPU and the moto server's CPU over a block."""

    def __init__(self, server: psutil.Process | None) -> None:
        self.server = server

    def _server_cpu(self) -> float:
        if self.server is None:
            return 0.0
        times = self.server.cpu_times()
        return float(times.user + times.system)

    @contextmanager
    def measure(self, out: list[Sample], *, rss: bool = False) -> Iterator[None]:
        """Append a :class:`Sample` of the block to ``out``."""
        me = psutil.Process()
        peak = [me.memory_info().rss]
        start_rss = peak[0]
        done = threading.Event()

        def sample_rss() -> None:
            while not done.wait(0.01):
                peak[0] = max(peak[0], me.memory_info().rss)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        if rss:
            sampler.start()
        server0, cpu0, wall0 = self._server_cpu(), time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            server = self._server_cpu() - server0 if self.server is not None else None
            done.set()
            if rss:
                sampler.join()
                peak[0] = max(peak[0], me.memory_info().rss)
            out.append(Sample(wall, cpu, server, (peak[0] - start_rss) / 1e6 if rss else None))


class CallCounter(Meter):
    """Counts the Python and built-in function calls made in every thread over a block.

    What cProfile counts, without its bookkeeping: a profile hook in this
    thread and in each thread started within the block (the consumer's
    receive loop and timers). Hooks make the block many times slower, so its
    times mean nothing; ``--calls`` prints only the counts.
    """

    @contextmanager
    def measure(self, out: list[Sample], *, rss: bool = False) -> Iterator[None]:
        counter = itertools.count()

        def hook(frame: Any, event: str, arg: Any) -> None:
            if event == "call" or event == "c_call":
                next(counter)  # one C call: no count is lost between threads

        threading.setprofile(hook)
        sys.setprofile(hook)
        try:
            yield
        finally:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]  # None removes it
            out.append(Sample(0.0, 0.0, calls=next(counter)))


def run_sample(meter: Meter, fn: Callable[[], None], *, rss: bool = False) -> Sample:
    """Measure one call of ``fn``."""
    out: list[Sample] = []
    with meter.measure(out, rss=rss):
        fn()
    return out[0]


# -- SQS -----------------------------------------------------------------------------------


def sqs_workload(server: Any, meter: Meter, messages: int) -> Workload:
    from iris_cloud.ports import Message
    from iris_cloud_aws import SqsBroker
    from kombu import Connection, Exchange, Queue

    bodies = [event_body(i, 1024) for i in range(messages)]
    sqs = server.client("sqs")

    def bare() -> Sample:
        url = server.create_queue(f"peer-bare-{uuid.uuid4().hex[:10]}")

        def run() -> None:
            for wave in range(0, len(bodies), WAVE):
                chunk = bodies[wave : wave + WAVE]
                for start in range(0, len(chunk), BATCH):
                    entries = [
                        {"Id": str(i), "MessageBody": b.decode()}
                        for i, b in enumerate(chunk[start : start + BATCH])
                    ]
                    resp = sqs.send_message_batch(QueueUrl=url, Entries=entries)
                    assert not resp.get("Failed"), resp["Failed"]
                received = 0
                while received < len(chunk):
                    got = sqs.receive_message(
                        QueueUrl=url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=1
                    ).get("Messages", [])
                    if got:
                        sqs.delete_message_batch(
                            QueueUrl=url,
                            Entries=[
                                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                for i, m in enumerate(got)
                            ],
                        )
                    received += len(got)

        return run_sample(meter, run)

    def ours() -> Sample:
        url = server.create_queue(f"peer-ours-{uuid.uuid4().hex[:10]}")
        broker = SqsBroker.from_url(url.replace("http://", "awssqs://"), **server.options())

        def run() -> None:
            for wave in range(0, len(bodies), WAVE):
                chunk = bodies[wave : wave + WAVE]
                for start in range(0, len(chunk), BATCH):
                    broker.send([Message(body=b) for b in chunk[start : start + BATCH]])
                received = 0
                while received < len(chunk):
                    got = broker.receive(max_messages=BATCH, wait=1)
                    broker.complete_many(got)
                    received += len(got)

        try:
            return run_sample(meter, run)
        finally:
            broker.close()

    def kombu() -> Sample:
        name = f"peer-kombu-{uuid.uuid4().hex[:10]}"
        host, port = server.endpoint_url.removeprefix("http://").rsplit(":", 1)
        creds = server.credentials
        conn = Connection(
            transport="sqs",
            hostname=host,
            port=int(port),
            # Keywords, not a URL: a secret key may hold '/' or '+'.
            userid=creds["aws_access_key_id"],
            password=creds["aws_secret_access_key"],
            transport_options={
                "region": server.region,
                "is_secure": False,
                "wait_time_seconds": 1,
                "polling_interval": 0,
                "visibility_timeout": 60,
            },
        )
        exchange = Exchange(name, type="direct")
        queue = Queue(name, exchange, routing_key=name)

        def run() -> None:
            producer = conn.Producer()
            received = [0]

            def on_message(message: Any) -> None:
                message.ack()
                received[0] += 1

            with conn.Consumer(queue, on_message=on_message, prefetch_count=BATCH):
                for wave in range(0, len(bodies), WAVE):
                    chunk = bodies[wave : wave + WAVE]
                    target = received[0] + len(chunk)
                    for body in chunk:
                        producer.publish(
                            body,
                            exchange=exchange,
                            routing_key=name,
                            declare=[queue],
                            content_type="application/json",
                            content_encoding="binary",
                        )
                    while received[0] < target:
                        conn.drain_events(timeout=5)

        try:
            return run_sample(meter, run)
        finally:
            conn.release()

    return Workload(
        title=f"SQS: {messages:,} x 1 KiB send in batches + receive + settle",
        floor="boto3 + DeleteMessageBatch",
        sides={"boto3 + DeleteMessageBatch": bare, "iris-cloud": ours, "kombu[sqs]": kombu},
        target="≤ 1.10x time, ≤ 1.5x client CPU",
    )


# -- file:// ------------------------------------------------------------------------------


def file_workload(meter: Meter, objects: int, size_kb: int, base: Path) -> Workload:
    import obstore
    from iris_cloud.providers.local import FileStore
    from obstore.store import LocalStore

    data = os.urandom(size_kb * 1024)
    names = [f"obj-{i:05d}.bin" for i in range(objects)]

    def side(body: Callable[[Path], None]) -> Callable[[], Sample]:
        def run_side() -> Sample:
            # Kept until the run ends (``base`` goes then): ext4 skips the inodes
            # freed in the last 1-5 minutes when it allocates one, so removing
            # each side's files made every later create dearer (the floor went
            # from 8 to 41 ms over eight runs back to back).
            root = Path(tempfile.mkdtemp(dir=base))
            # What earlier steps left dirty would be written back during this
            # one, and their garbage collected in it: a side of ~10 ms pays for either.
            os.sync()
            gc.collect()
            return run_sample(meter, lambda: body(root))

        return run_side

    def plain(root: Path) -> None:
        for name in names:
            with open(root / name, "wb") as fh:
                fh.write(data)

    def ours(root: Path) -> None:
        store = FileStore(root)
        for name in names:
            store.put(name, data)
        store.close()

    def obs(root: Path) -> None:
        store = LocalStore(str(root))
        for name in names:
            obstore.put(store, name, data, mode="create")

    def atomic(root: Path) -> None:
        # The system calls of ours, made bare: the cost of an atomic conditional
        # create itself, which a plain write does not promise.
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in names:
                fd = os.open(".", os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
                try:
                    os.write(fd, data)
                    os.fstat(fd)
                    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
                finally:
                    os.close(fd)
        finally:
            os.close(dir_fd)

    sides = {
        "open() + write()": side(plain),
        "iris-cloud": side(ours),
        "obstore LocalStore": side(obs),
    }
    if hasattr(os, "O_TMPFILE"):
        sides["O_TMPFILE + linkat, bare"] = side(atomic)
    return Workload(
        title=f"file://: {objects} x {size_kb} KiB put",
        floor="open() + write()",
        sides=sides,
        target="≤ 1.3x, and not slower than obstore",
    )


# -- consumer on mem:// ----------------------------------------------------------------------


def consumer_workload(meter: Meter, messages: int) -> Workload:
    from iris_cloud.consumer import Consumer, Context, IrisApp
    from iris_cloud.model import parse_message
    from iris_cloud.ports import Message
    from iris_cloud.providers.memory import MemoryBroker
    from kombu import Connection, Exchange, Queue

    bodies = [event_body(i) for i in range(messages)]
    kind = type(parse_message(bodies[0]))

    class Settling(MemoryBroker):
        """Tells when the last message was completed: the end of the measured span."""

        def __init__(self, name: str, **options: Any) -> None:
            super().__init__(name, **options)
            self.completed = 0
            self.all_done = threading.Event()

        def complete_many(self, batch: Any) -> Any:
            outcomes = super().complete_many(batch)
            self.completed += outcomes.count(None)
            if self.completed >= messages:
                self.all_done.set()
            return outcomes

        def complete(self, message: Message) -> None:
            super().complete(message)
            self.completed += 1
            if self.completed >= messages:
                self.all_done.set()

    def ours() -> Sample:
        broker = Settling(f"peer-{uuid.uuid4().hex[:10]}", lock_seconds=300)
        for start in range(0, len(bodies), 100):
            broker.send([Message(body=b) for b in bodies[start : start + 100]])
        app = IrisApp()

        @app.on(kind)
        def nothing(event: Any, ctx: Context) -> None:
            return None

        consumer = Consumer(app, broker, concurrency=1, wait=0.05)

        def run() -> None:
            # From the start (the first receive follows at once) to the last
            # settlement, as kombu's loop is: the stop and the wind-up that
            # follow are paid once a run, not once a message.
            consumer.start()
            if not broker.all_done.wait(300):
                raise RuntimeError("the consumer did not complete every message in 300 s")

        try:
            return run_sample(meter, run)
        finally:
            consumer.close()
            stats = consumer.join()
            broker.close()
            if stats.completed != messages:
                raise RuntimeError(f"{stats.completed} of {messages} messages completed")

    def kombu() -> Sample:
        name = f"peer-{uuid.uuid4().hex[:10]}"
        with Connection("memory://") as conn:
            exchange = Exchange(name, type="direct")
            queue = Queue(name, exchange, routing_key=name)
            producer = conn.Producer()
            for body in bodies:
                producer.publish(
                    body,
                    exchange=exchange,
                    routing_key=name,
                    declare=[queue],
                    content_type="application/json",
                    content_encoding="binary",
                )
            handled = [0]

            def on_message(message: Any) -> None:
                parse_message(message.body)
                message.ack()
                handled[0] += 1

            def run() -> None:
                with conn.Consumer(queue, on_message=on_message, prefetch_count=1):
                    while handled[0] < messages:
                        conn.drain_events(timeout=5)

            return run_sample(meter, run)

    def parse_alone() -> Sample:
        def run() -> None:
            for body in bodies:
                parse_message(body)

        return run_sample(meter, run)

    return Workload(
        title=f"consumer on mem://: {messages:,} no-op messages, concurrency 1",
        floor="kombu memory://",
        sides={"kombu memory://": kombu, "iris-cloud": ours, "IRIS parse alone": parse_alone},
        target="≤ 1.0x",
        shared="IRIS parse alone",
    )


# -- S3 upload --------------------------------------------------------------------------------


def s3_workload(server: Any, meter: Meter, size_mb: int, base: Path) -> Workload:
    import obstore
    import s3fs
    from iris_cloud_aws import S3Store
    from obstore.store import S3Store as ObStore

    bucket = server.create_bucket(f"peers-{uuid.uuid4().hex[:8]}")
    fd, name = tempfile.mkstemp(dir=base, suffix=".bin")
    source = Path(name)
    block = os.urandom(MIB)
    with os.fdopen(fd, "wb") as fh:
        for _ in range(size_mb):
            fh.write(block)
    s3 = server.client("s3")
    creds = server.credentials
    ours_store = S3Store.from_url(server.store_url(bucket), **server.options())
    ob = ObStore(
        bucket,
        endpoint=server.endpoint_url,
        region=server.region,
        access_key_id=creds["aws_access_key_id"],
        secret_access_key=creds["aws_secret_access_key"],
        client_options={"allow_http": True},
    )
    fs = s3fs.S3FileSystem(
        key=creds["aws_access_key_id"],
        secret=creds["aws_secret_access_key"],
        endpoint_url=server.endpoint_url,
        client_kwargs={"region_name": server.region},
    )

    def side(upload: Callable[[str], None]) -> Callable[[], Sample]:
        def run_side() -> Sample:
            key = uuid.uuid4().hex
            try:
                return run_sample(meter, lambda: upload(key), rss=True)
            finally:
                s3.delete_object(Bucket=bucket, Key=key)

        return run_side

    return Workload(
        title=f"S3: {size_mb} MiB upload from a file",
        floor="boto3.upload_file",
        sides={
            "boto3.upload_file": side(lambda key: s3.upload_file(str(source), bucket, key)),
            "iris-cloud": side(lambda key: ours_store.put(key, source)),
            "obstore": side(lambda key: obstore.put(ob, key, source)),
            "s3fs": side(lambda key: fs.put_file(str(source), f"{bucket}/{key}")),
        },
        target="≤ 1.10x, RSS growth < 100 MB",
    )


# -- running and reporting ------------------------------------------------------------------


def run_rounds(workload: Workload, rounds: int, *, warm: bool = False) -> None:
    """Run ``rounds`` rounds; with ``warm``, one unmeasured round first (first-use costs)."""
    names = list(workload.sides)
    if warm:
        for name in names:
            workload.sides[name]()
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            sample = workload.sides[name]()
            workload.samples.setdefault(name, []).append(sample)
            label = f"{workload.title[:28]:<28} round {r + 1} {name:<28}"
            print(f"  {label} {sample.wall * 1000:9.1f} ms", file=sys.stderr, flush=True)


def report(workload: Workload) -> list[str]:
    floor = workload.samples[workload.floor]
    lines = [
        f"{workload.title} (target {workload.target}; ratios against {workload.floor})",
        "| side | median ms | ratio | round ratio | spread | client CPU ms | CPU ratio "
        "| server CPU ms | server share | RSS growth MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    floor_wall = statistics.median(s.wall for s in floor)
    floor_cpu = statistics.median(s.cpu for s in floor)
    for name, samples in workload.samples.items():
        wall = statistics.median(s.wall for s in samples)
        cpu = statistics.median(s.cpu for s in samples)
        per_round = [s.wall / f.wall for s, f in zip(samples, floor, strict=True)]
        spread = f"{min(per_round):.2f}-{max(per_round):.2f}"
        if len(per_round) >= 8:
            # Over many rounds the range is the worst hiccup of a shared disk:
            # the middle half of the rounds is shown too.
            low, _, high = statistics.quantiles(per_round, n=4)
            spread = f"{low:.2f}-{high:.2f} (all {spread})"
        server = [s.server_cpu for s in samples if s.server_cpu is not None]
        server_ms = statistics.median(server) * 1000 if server else None
        shares = [s.server_cpu / (s.server_cpu + s.cpu) for s in samples if s.server_cpu]
        share = f"{statistics.median(shares):.0%}" if shares else "-"
        rss = [s.rss_growth for s in samples if s.rss_growth is not None]
        lines.append(
            f"| {name} | {wall * 1000:,.0f} | {wall / floor_wall:.2f} "
            f"| {statistics.median(per_round):.2f} | {spread} "
            f"| {cpu * 1000:,.0f} | {cpu / floor_cpu:.2f} "
            f"| {'-' if server_ms is None else f'{server_ms:,.0f}'} | {share} "
            f"| {'-' if not rss else f'{max(rss):,.0f}'} |"
        )
    if workload.shared is not None:
        lines.append(beyond_shared(workload, workload.shared))
    return lines


def beyond_shared(workload: Workload, shared: str) -> str:
    """Each side's median time per round beyond the ``shared`` side's, against the floor's."""
    rounds = len(workload.samples[shared])
    base = statistics.median(s.wall for s in workload.samples[shared])
    floor = statistics.median(s.wall for s in workload.samples[workload.floor]) - base
    parts = []
    for name, samples in workload.samples.items():
        if name in (shared, workload.floor):
            continue
        beyond = statistics.median(s.wall for s in samples) - base
        parts.append(f"{name} {beyond * 1000:,.0f} ms ({beyond / floor:.2f}x)")
    return (
        f"beyond {shared} ({base * 1000:,.0f} ms, median of {rounds} rounds): "
        f"{workload.floor} {floor * 1000:,.0f} ms, " + ", ".join(parts)
    )


@contextmanager
def moto() -> Iterator[tuple[Any, psutil.Process]]:
    """A moto server in its own process, and that process (for its CPU time)."""
    from iris_cloud_aws.testing import moto_server

    with moto_server(separate_process=True) as server:
        children = psutil.Process().children(recursive=True)
        found = [p for p in children if "moto.server" in " ".join(p.cmdline())]
        if not found:
            raise RuntimeError("the moto server process was not found")
        yield server, found[0]


def print_calls(messages: int) -> None:
    """One run of each side of the consumer workload, counting calls instead of time."""
    workload = consumer_workload(CallCounter(None), messages)
    print(f"{workload.title}: function calls per message, every thread")
    for name, side in workload.sides.items():
        calls = side().calls
        assert calls is not None
        print(f"  {name:<18} {calls / messages:6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--file-rounds",
        type=int,
        default=31,
        help="rounds of the file:// puts (~10 ms each; the disk is shared, so more rounds)",
    )
    parser.add_argument("--only", default="sqs,file,consumer,s3", help="workloads, comma-separated")
    parser.add_argument("--messages", type=int, default=1000, help="SQS messages")
    parser.add_argument("--consumer-messages", type=int, default=10_000)
    parser.add_argument(
        "--consumer-rounds",
        type=int,
        default=21,
        help="rounds of the consumer workload (~0.15 s a side; single rounds vary widely)",
    )
    parser.add_argument(
        "--s3-rounds",
        type=int,
        default=9,
        help="rounds of the S3 upload (~10 s a round; single rounds vary widely)",
    )
    parser.add_argument("--objects", type=int, default=200, help="file:// puts")
    parser.add_argument("--object-kb", type=int, default=64)
    parser.add_argument("--s3-mb", type=int, default=256)
    parser.add_argument("--dir", type=Path, default=None, help="where files go (a local disk)")
    parser.add_argument(
        "--calls",
        action="store_true",
        help="instead of timing: the function calls per message each consumer side makes",
    )
    args = parser.parse_args()
    if args.calls:
        print_calls(args.consumer_messages)
        return
    only = set(args.only.split(","))
    started = time.perf_counter()
    out: list[str] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        if "file" in only:
            workload = file_workload(Meter(None), args.objects, args.object_kb, base)
            run_rounds(workload, max(args.rounds, args.file_rounds), warm=True)
            out += [*report(workload), ""]
        if "consumer" in only:
            workload = consumer_workload(Meter(None), args.consumer_messages)
            run_rounds(workload, max(args.rounds, args.consumer_rounds))
            out += [*report(workload), ""]
        if only & {"sqs", "s3"}:
            with moto() as (server, process):
                meter = Meter(process)
                # One unmeasured pass warms connections, endpoint resolution and moto.
                warm = server.client("sqs")
                warm.list_queues()
                server.client("s3").list_buckets()
                if "sqs" in only:
                    workload = sqs_workload(server, meter, args.messages)
                    workload.sides["boto3 + DeleteMessageBatch"]()
                    run_rounds(workload, args.rounds)
                    out += [*report(workload), ""]
                if "s3" in only:
                    workload = s3_workload(server, meter, args.s3_mb, base)
                    run_rounds(workload, max(args.rounds, args.s3_rounds))
                    out += [*report(workload), ""]
    print(
        f"iris-cloud and its peers, {args.rounds} rounds ({args.file_rounds} for file://, "
        f"{args.consumer_rounds} for the consumer, {args.s3_rounds} for S3), "
        f"sides alternating, medians; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; {time.perf_counter() - started:.0f} s"
    )
    print("\n".join(out))


if __name__ == "__main__":
    main()
