"""Test servers and contract-suite environments for the Google Cloud provider.

Used by this package's tests, by the cross-package workflow tests and by the
benchmark. Everything listens on 127.0.0.1 on a free port and is torn down
on exit:

* :func:`gcs_emulator` — ``gcp-storage-emulator`` in a subprocess (in-memory).
* :func:`pubsub_emulator` — the Pub/Sub server of ``iris-cloud-emulators``.
* :class:`GcsStoreEnv` / :class:`PubSubBrokerEnv` — contract-suite environments.
* :func:`workflow_profiles` — integrator and platform profiles on both servers.

A server that cannot start raises :class:`EmulatorUnavailable` with the
reason; tests turn that into a skip (or a failure in CI) with
``iris_cloud.testing.require_server``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from iris_cloud.testing.contract import HOSTILE
from iris_cloud.testing.processes import stop_process

if TYPE_CHECKING:
    from google.cloud import pubsub_v1, storage
    from iris_cloud.ports import ObjectStore

    from iris_cloud_gcp.store import GcsStore

__all__ = [
    "EmulatorUnavailable",
    "GcpServers",
    "GcsEmulator",
    "GcsStoreEnv",
    "PubSubAdmin",
    "PubSubBrokerEnv",
    "free_port",
    "gcp_servers",
    "gcs_emulator",
    "pubsub_emulator",
    "pubsub_emulator_process",
    "workflow_profiles",
]

DEFAULT_PROJECT = "iris-test"
"""Project the emulators' topics and subscriptions live in."""


class EmulatorUnavailable(RuntimeError):
    """A test server could not be started; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- Cloud Storage ---------------------------------------------------------------


@dataclass
class GcsEmulator:
    """A running gcp-storage-emulator."""

    endpoint: str
    """``http://127.0.0.1:PORT``: the ``endpoint`` option of ``gs://`` URLs."""

    def client(self) -> storage.Client:
        """An anonymous google-cloud-storage client talking to the emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=DEFAULT_PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name unless given); returns its name."""
        name = name or _unique("iris")
        client = self.client()
        try:
            client.create_bucket(name)
        finally:
            client.close()
        return name

    def url(self, bucket: str, prefix: str = "") -> str:
        """The ``gs://`` URL of ``bucket``/``prefix``; pass ``endpoint`` as an option."""
        return f"gs://{bucket}/{prefix}".rstrip("/")


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-800:]
            raise EmulatorUnavailable(f"gcp-storage-emulator exited ({proc.returncode}): {tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - our http:// URL
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise EmulatorUnavailable(f"gcp-storage-emulator did not answer on {url} within {timeout}s")


@contextlib.contextmanager
def gcs_emulator(timeout: float = 30.0) -> Iterator[GcsEmulator]:
    """Run ``gcp-storage-emulator start --in-memory`` on a free loopback port.

    A subprocess rather than the emulator's in-process server: it serves one
    request at a time on the GIL, and in our process it would compete with
    the code under test (and skew the benchmark).
    """
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        raise EmulatorUnavailable("gcp-storage-emulator is not installed (pip install it)")
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "gcp_storage_emulator",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--in-memory",
        "--quiet",
    ]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            endpoint = f"http://127.0.0.1:{port}"
            _wait_http(endpoint + "/", proc, log, timeout)
            yield GcsEmulator(endpoint)
        finally:
            stop_process(proc)


class GcsStoreEnv:
    """:class:`~iris_cloud.testing.StoreContractEnv` on gcp-storage-emulator.

    Each store is a fresh bucket. The emulator has no IAM, so write-only and
    read-only credentials cannot be expressed (those tests skip).
    """

    def __init__(self, emulator: GcsEmulator) -> None:
        self.emulator = emulator

    def new_store(self) -> GcsStore:
        """A store on a new, empty bucket."""
        from iris_cloud_gcp.store import GcsStore

        bucket = self.emulator.create_bucket()
        return GcsStore.from_url(f"gs://{bucket}", endpoint=self.emulator.endpoint)

    def open_write_only(self, store: ObjectStore) -> ObjectStore | None:
        """``None``: gcp-storage-emulator does not check IAM permissions."""
        return None

    def open_read_only(self, store: ObjectStore) -> ObjectStore | None:
        """``None``: gcp-storage-emulator does not check IAM permissions."""
        return None


# -- Pub/Sub ---------------------------------------------------------------------


@contextlib.contextmanager
def pubsub_emulator(min_ack_deadline: int = 1) -> Iterator[str]:
    """Run the Pub/Sub emulator of ``iris-cloud-emulators``; yields its ``host:port``.

    ``min_ack_deadline`` is lowered from Pub/Sub's 10 s so that lock-expiry
    tests take seconds.
    """
    try:
        from iris_cloud_emulators.pubsub import PubSubEmulator
    except ImportError as exc:
        raise EmulatorUnavailable(
            f"the Pub/Sub emulator (iris-cloud-emulators) cannot be imported: {exc}"
        ) from exc
    try:
        server = PubSubEmulator(host="127.0.0.1", port=0, min_ack_deadline=min_ack_deadline)
        server.__enter__()
    except Exception as exc:
        raise EmulatorUnavailable(f"the Pub/Sub emulator did not start: {exc}") from exc
    try:
        yield str(server.host_port)
    finally:
        server.__exit__(None, None, None)


@contextlib.contextmanager
def pubsub_emulator_process(min_ack_deadline: int = 1, timeout: float = 30.0) -> Iterator[str]:
    """The same Pub/Sub emulator as :func:`pubsub_emulator`, in a subprocess.

    For measurements: in-process, its gRPC threads would share our GIL with
    the client under test.
    """
    if importlib.util.find_spec("iris_cloud_emulators") is None:
        raise EmulatorUnavailable("iris-cloud-emulators is not installed")
    cmd = [
        sys.executable,
        "-m",
        "iris_cloud_emulators.pubsub",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--min-ack-deadline",
        str(min_ack_deadline),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline().strip()
            if line.startswith("PUBSUB_EMULATOR_HOST="):
                break
        if not line.startswith("PUBSUB_EMULATOR_HOST="):
            raise EmulatorUnavailable(f"the Pub/Sub emulator process did not start: {line}")
        yield line.split("=", 1)[1]
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


class PubSubAdmin:
    """Creates topics and subscriptions on the emulator, as an operator would in a project."""

    def __init__(self, host: str, project: str = DEFAULT_PROJECT) -> None:
        from google.cloud import pubsub_v1

        from iris_cloud_gcp._clients import GoogleAuth, publisher_client, subscriber_client

        auth = GoogleAuth(_anonymous(), project, "anonymous")
        self.host = host
        self.project = project
        self.publisher = publisher_client(
            auth, host, pubsub_v1.types.BatchSettings(), ordering=False
        )
        self.subscriber: pubsub_v1.SubscriberClient = subscriber_client(auth, host)

    def topic(self, name: str) -> str:
        """Create topic ``name``; returns its path."""
        path = f"projects/{self.project}/topics/{name}"
        self.publisher.create_topic(name=path)
        return path

    def subscription(
        self,
        name: str,
        topic: str,
        *,
        ack_deadline: int = 10,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
    ) -> str:
        """Create subscription ``name`` on ``topic`` (a path); returns its path."""
        path = f"projects/{self.project}/subscriptions/{name}"
        request: dict[str, Any] = {
            "name": path,
            "topic": topic,
            "ack_deadline_seconds": ack_deadline,
        }
        if dead_letter_topic is not None:
            request["dead_letter_policy"] = {
                "dead_letter_topic": dead_letter_topic,
                "max_delivery_attempts": max_delivery_attempts,
            }
        self.subscriber.create_subscription(request=request)
        return path

    def queue(
        self, name: str, *, ack_deadline: int = 10, max_delivery_attempts: int = 5
    ) -> tuple[str, str]:
        """A topic ``name`` with subscription ``name-sub``, dead-lettering after
        ``max_delivery_attempts`` to topic ``name-dead``, read through ``name-sub-dlq``.

        Returns (topic path, subscription path).
        """
        topic = self.topic(name)
        dead = self.topic(f"{name}-dead")
        self.subscription(f"{name}-sub-dlq", dead, ack_deadline=ack_deadline)
        sub = self.subscription(
            f"{name}-sub",
            topic,
            ack_deadline=ack_deadline,
            dead_letter_topic=dead,
            max_delivery_attempts=max_delivery_attempts,
        )
        return topic, sub

    def close(self) -> None:
        """Close both clients."""
        self.publisher.stop()
        self.publisher.transport.close()
        self.subscriber.close()


def _anonymous() -> Any:
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


@dataclass
class GcpServers:
    """Both test servers: Cloud Storage and Pub/Sub."""

    gcs: GcsEmulator
    pubsub_host: str
    project: str = DEFAULT_PROJECT


@contextlib.contextmanager
def gcp_servers() -> Iterator[GcpServers]:
    """Start gcp-storage-emulator and the Pub/Sub emulator together."""
    with gcs_emulator() as gcs, pubsub_emulator() as host:
        yield GcpServers(gcs, host)


class PubSubBrokerEnv:
    """:class:`~iris_cloud.testing.BrokerContractEnv` on the Pub/Sub emulator.

    Each queue is a topic with a subscription carrying a dead-letter policy,
    opened as ``gcppubsub://projects/P/subscriptions/S?topic=T``. The emulator
    has no IAM, so send-only / receive-only credentials cannot be expressed.
    Given ``loop`` (an :class:`iris_cloud.testing.blocking.LoopThread`) it
    opens :class:`~iris_cloud_gcp.aio.AsyncPubSubBroker` brokers, connected on
    that loop, and async claim-check stores, for the blocking facades.
    """

    def __init__(self, servers: GcpServers, *, loop: Any = None) -> None:
        self.servers = servers
        self.loop = loop
        self.admin = PubSubAdmin(servers.pubsub_host, servers.project)
        self._claim_bucket: str | None = None

    def new_queue(self, *, lock_seconds: float = 2.0, max_delivery_count: int = 3) -> str:
        """A fresh topic + subscription (+ dead-letter topic and its subscription)."""
        topic, sub = self.admin.queue(
            _unique("q"),
            ack_deadline=max(1, int(lock_seconds + 0.999)),
            # Pub/Sub takes 5-100 attempts; the suite reads the rounded value
            # back from the broker's capabilities.
            max_delivery_attempts=min(max(max_delivery_count, 5), 100),
        )
        return f"gcppubsub://{sub}?topic={topic.rsplit('/', 1)[1]}"

    def open(self, url: str, *, claim_check: Any = None) -> Any:
        """Open ``url`` on the emulator."""
        if self.loop is None:
            from iris_cloud_gcp.broker import PubSubBroker

            return PubSubBroker.from_url(
                url, emulator_host=self.servers.pubsub_host, claim_check=claim_check
            )
        from iris_cloud_gcp.aio.broker import AsyncPubSubBroker

        broker = AsyncPubSubBroker.from_url(
            url, emulator_host=self.servers.pubsub_host, claim_check=claim_check
        )
        self.loop.run(broker.connect())
        return broker

    def send_undecodable(self, url: str) -> list[str]:
        """Publish, with google-cloud-pubsub, messages whose ``iris-types`` is not a mapping."""
        topic = (
            f"projects/{self.admin.project}/topics/" + dict(parse_qsl(urlsplit(url).query))["topic"]
        )
        cases = {"iris-types of []": "[]", "iris-types of null": "null"}
        for types in cases.values():
            attributes = {"iris-types": types, "k": HOSTILE}
            self.admin.publisher.publish(topic, b"x", **attributes).result(timeout=30)
        return list(cases)

    def claim_check_store(self) -> Any:
        """A bucket on the storage emulator."""
        from iris_cloud_gcp.store import GcsStore

        if self._claim_bucket is None:
            self._claim_bucket = self.servers.gcs.create_bucket()
        store = GcsStore.from_url(
            f"gs://{self._claim_bucket}/claim-check", endpoint=self.servers.gcs.endpoint
        )
        if self.loop is None:
            return store
        from iris_cloud_gcp.aio.store import AsyncGcsStore

        return AsyncGcsStore(store)

    def open_send_only(self, url: str) -> None:
        """``None``: the emulator does not check IAM permissions."""
        return None

    def open_receive_only(self, url: str) -> None:
        """``None``: the emulator does not check IAM permissions."""
        return None

    def close(self) -> None:
        """Close the admin clients."""
        self.admin.close()


# -- workflow profiles -------------------------------------------------------------

BROKER_ROLES = ("orders", "events", "results", "gradings")
INTEGRATOR_SENDS = ("orders", "gradings")
"""Roles the integrator sends to; it receives the others, and the platform mirrors it."""


def workflow_profiles(
    servers: GcpServers, *, name: str | None = None, max_delivery_attempts: int = 5
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Integrator and platform profiles on the emulators: ``(integrator, platform)``.

    Creates, per broker role, a topic ``<name>-<role>``, its subscription
    ``<name>-<role>-sub`` with a dead-letter policy to ``<name>-<role>-dead``
    and that topic's subscription ``<name>-<role>-sub-dlq``; and one bucket
    with the prefixes ``images``, ``results`` and ``claim-check``. The sending
    side of a role gets the topic URL, the receiving side the subscription URL.
    """
    name = name or _unique("wf")
    admin = PubSubAdmin(servers.pubsub_host, servers.project)
    try:
        queues = {
            role: admin.queue(f"{name}-{role}", max_delivery_attempts=max_delivery_attempts)
            for role in BROKER_ROLES
        }
    finally:
        admin.close()
    bucket = servers.gcs.create_bucket()
    pubsub = {"emulator_host": servers.pubsub_host}
    gcs = {"endpoint": servers.gcs.endpoint}
    integrator: dict[str, dict[str, Any]] = {}
    platform: dict[str, dict[str, Any]] = {}
    for role, (topic, sub) in queues.items():
        sender = {"url": f"gcppubsub://{topic}", **pubsub}
        receiver = {"url": f"gcppubsub://{sub}", **pubsub}
        mine, theirs = (sender, receiver) if role in INTEGRATOR_SENDS else (receiver, sender)
        # ``mirror``: what the other side opens, so Profile.mirror() works on either.
        integrator[role] = {**mine, "mirror": dict(theirs)}
        platform[role] = {**theirs, "mirror": dict(mine)}
    for role, prefix in (
        ("images", "images"),
        ("results_store", "results"),
        ("claim_check", "claim-check"),
    ):
        endpoint = {"url": f"gs://{bucket}/{prefix}", **gcs}
        integrator[role] = dict(endpoint)
        platform[role] = dict(endpoint)
    return integrator, platform
