"""Test servers for the Azure provider, for its own tests and the cross-package ones.

- :func:`azurite` starts Azurite's Blob service (from npm) on a free loopback
  port and hands out the well-known development account, container SAS
  URLs with chosen permissions, and ``azblob://`` endpoints.
- :func:`servicebus` starts the Service Bus emulator of ``iris-cloud-emulators``
  with the IRIS queues and SAS key names mapped to rights.
- :func:`workflow_profiles` builds the integrator and platform profiles of
  the IRIS exchange on those two servers, with IRIS-shaped credentials.

A server that cannot start raises :class:`ServerUnavailable` with the reason;
test suites turn that into a skip, or a failure when
``IRIS_CLOUD_REQUIRE_EMULATORS=1``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from iris_cloud.testing.contract import HOSTILE
from iris_cloud.testing.processes import stop_process

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "AZURITE_VERSION",
    "LISTEN_KEY",
    "MANAGE_KEY",
    "SEND_KEY",
    "SEND_LISTEN_KEY",
    "AzuriteServer",
    "BlobStoreEnv",
    "ServerUnavailable",
    "ServiceBusBrokerEnv",
    "ServiceBusServer",
    "azurite",
    "azurite_command",
    "free_port",
    "servicebus",
    "unique_name",
    "workflow_profiles",
]

AZURITE_VERSION = "3.35.0"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (not a secret: it is in Azurite's README).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
INTEGRATOR_ROLES = ("orders", "gradings")
"""Roles the integrator sends to; it receives from events and results."""


class ServerUnavailable(RuntimeError):
    """A test server could not be started; the message says why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _repo_roots() -> Iterator[Path]:
    seen: set[Path] = set()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for directory in (start, *start.parents):
            if directory not in seen:
                seen.add(directory)
                yield directory


def azurite_command() -> list[str]:
    """How to run ``azurite-blob``: ``$IRIS_CLOUD_AZURITE``, a local npm install, or npx.

    The local install is ``node_modules/.bin/azurite-blob`` from the repository's
    ``package.json`` (``npm install`` at the root); npx fetches the pinned
    version otherwise.
    """
    explicit = os.environ.get("IRIS_CLOUD_AZURITE")
    if explicit:
        return [explicit]
    for directory in _repo_roots():
        candidate = directory / "node_modules" / ".bin" / "azurite-blob"
        if candidate.is_file():
            return [str(candidate)]
    npx = shutil.which("npx")
    if npx is None:
        raise ServerUnavailable(
            "azurite-blob not found: run `npm install` at the repository root (needs Node.js 20)"
        )
    return [npx, "--yes", "--package", f"azurite@{AZURITE_VERSION}", "azurite-blob"]


def _wait_for_port(
    proc: subprocess.Popen[bytes], host: str, port: int, timeout: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServerUnavailable(f"server exited with status {proc.returncode}: {tail.strip()}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise ServerUnavailable(f"server did not listen on {host}:{port} within {timeout:.0f}s")


@dataclass
class AzuriteServer:
    """A running Azurite Blob service and the development account on it."""

    host: str
    port: int
    account_name: str = AZURITE_ACCOUNT
    account_key: str = field(default=AZURITE_KEY, repr=False)

    @property
    def account_url(self) -> str:
        """``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f"http://{self.host}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        """A connection string with the account key (full rights, can sign URLs)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.account_url};"
        )

    def create_container(self, name: str) -> None:
        """Create container ``name`` unless it exists."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        with (
            BlobServiceClient.from_connection_string(self.connection_string) as service,
            contextlib.suppress(ResourceExistsError),
        ):
            service.create_container(name)

    def container_sas(
        self, container: str, permission: str, expires: timedelta = timedelta(hours=2)
    ) -> str:
        """A container SAS token with ``permission`` letters (``"cw"``, ``"rl"``, ...)."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(
            account_name=self.account_name,
            container_name=container,
            account_key=self.account_key,
            permission=ContainerSasPermissions.from_string(permission),
            expiry=datetime.now(UTC) + expires,
        )

    def container_sas_url(self, container: str, permission: str) -> str:
        """A container SAS URL, as IRIS hands one out for the image container."""
        return f"{self.account_url}/{container}?{self.container_sas(container, permission)}"

    def store_url(self, container: str, prefix: str = "") -> str:
        """``azblob://devstoreaccount1/CONTAINER[/PREFIX]``."""
        return f"azblob://{self.account_name}/{container}" + (f"/{prefix}" if prefix else "")

    def endpoint(self, container: str, access: str = "key", prefix: str = "") -> dict[str, Any]:
        """A profile endpoint for ``container``; ``access`` is ``"key"`` or SAS letters."""
        self.create_container(container)
        if access == "key":
            return {
                "url": self.store_url(container, prefix),
                "connection_string": self.connection_string,
            }
        return {
            "url": self.store_url(container, prefix),
            "sas_url": self.container_sas_url(container, access),
        }


@contextlib.contextmanager
def azurite(
    host: str = "127.0.0.1", startup_timeout: float = 60.0, *, in_memory: bool = True
) -> Iterator[AzuriteServer]:
    """Run ``azurite-blob`` on a free port for the duration of the block.

    Data is kept in memory, or with ``in_memory=False`` in a temporary
    directory (for uploads of gigabytes), removed at exit.
    """
    command = azurite_command()
    workdir = Path(tempfile.mkdtemp(prefix="iris-azurite-"))
    log = workdir / "azurite.log"
    try:
        for _attempt in range(3):
            port = free_port(host)
            storage = (
                ["--inMemoryPersistence"] if in_memory else ["--location", str(workdir / "data")]
            )
            args = [
                *command,
                "--blobHost", host,
                "--blobPort", str(port),
                *storage,
                "--silent",
                "--disableTelemetry",
                "--skipApiVersionCheck",
            ]  # fmt: skip
            with log.open("wb") as out:
                try:
                    proc = subprocess.Popen(
                        args,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                except OSError as exc:
                    raise ServerUnavailable(f"cannot run {command[0]}: {exc}") from exc
            try:
                _wait_for_port(proc, host, port, startup_timeout, log)
            except ServerUnavailable as exc:
                stop_process(proc, group=True)
                # Another process may have taken the port between probe and bind.
                if "EADDRINUSE" in str(exc):
                    continue
                raise
            try:
                yield AzuriteServer(host=host, port=port)
            finally:
                stop_process(proc, group=True)
            return
        raise ServerUnavailable("azurite-blob: no free port after 3 attempts")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def unique_name(prefix: str) -> str:
    """A fresh lower-case name valid for containers, queues and topics."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class BlobStoreEnv:
    """:class:`~iris_cloud.testing.StoreContractEnv` on Azurite: one new container per store.

    Write-only and read-only stores use container SAS URLs (``sp=cw`` / ``sp=rl``),
    the credentials IRIS hands out, which Azurite enforces. With ``asynchronous``
    the stores are :class:`~iris_cloud_azure.aio.AsyncAzureBlobStore` (an
    :class:`~iris_cloud.testing.blocking.AsyncStoreEnv` for ``BlockingStoreEnv``).
    """

    signed_put_headers: ClassVar[dict[str, str]] = {"x-ms-blob-type": "BlockBlob"}
    """A PUT through a SAS URL must say which kind of blob it creates."""

    def __init__(
        self, server: AzuriteServer, *, page_size: int | None = 5, asynchronous: bool = False
    ) -> None:
        self.server = server
        self.page_size = page_size
        self.asynchronous = asynchronous

    def _open(self, container: str, **credentials: Any) -> Any:
        options: dict[str, Any] = dict(credentials)
        if self.page_size:
            options["page_size"] = self.page_size
        return _store_class(self.asynchronous).from_url(self.server.store_url(container), **options)

    def new_store(self) -> Any:
        """A new container, opened with the account key (full rights)."""
        container = unique_name("contract")
        self.server.create_container(container)
        return self._open(container, connection_string=self.server.connection_string)

    def open_write_only(self, store: Any) -> Any:
        """``store``'s container through a write-only (``sp=cw``) container SAS URL."""
        return self._open(
            store.container, sas_url=self.server.container_sas_url(store.container, "cw")
        )

    def open_read_only(self, store: Any) -> Any:
        """``store``'s container through a read-only (``sp=rl``) container SAS URL."""
        return self._open(
            store.container, sas_url=self.server.container_sas_url(store.container, "rl")
        )


def _store_class(asynchronous: bool) -> Any:
    if asynchronous:
        from iris_cloud_azure.aio.store import AsyncAzureBlobStore

        return AsyncAzureBlobStore
    from iris_cloud_azure.store import AzureBlobStore

    return AzureBlobStore


def _broker_class(asynchronous: bool) -> Any:
    if asynchronous:
        from iris_cloud_azure.aio.broker import AsyncServiceBusBroker

        return AsyncServiceBusBroker
    from iris_cloud_azure.broker import ServiceBusBroker

    return ServiceBusBroker


# -- Service Bus ----------------------------------------------------------------------

MANAGE_KEY = "RootManageSharedAccessKey"
"""Key name with every right (an own subscription's root policy)."""
SEND_KEY = "iris-send"
"""Key name with the Send right only (what IRIS hands out for ``orders``)."""
LISTEN_KEY = "iris-listen"
"""Key name with the Listen right only (what IRIS hands out for ``events`` / ``results``)."""
SEND_LISTEN_KEY = "iris-send-listen"
"""Key name with Send and Listen but not Manage: the most an IRIS-style policy grants."""


@dataclass
class ServiceBusServer:
    """A running Service Bus emulator with a Manage, a Send-only and a Listen-only key."""

    emulator: Any = field(repr=False)

    @property
    def host(self) -> str:
        """Loopback host the emulator listens on."""
        return str(self.emulator.host)

    @property
    def port(self) -> int:
        """The emulator's TCP port."""
        return int(self.emulator.port)

    @property
    def lock_duration(self) -> float:
        """Peek-lock duration of every entity, in seconds."""
        return float(self.emulator.lock_duration)

    @property
    def max_delivery_count(self) -> int:
        """Deliveries before the emulator dead-letters a message."""
        return int(self.emulator.max_delivery_count)

    def url(self, entity: str) -> str:
        """``azuresb://127.0.0.1:PORT/QUEUE`` (the connection string supplies the endpoint)."""
        return f"azuresb://{self.host}:{self.port}/{entity}"

    def subscription_url(self, topic: str, subscription: str) -> str:
        """``azuresb://127.0.0.1:PORT/TOPIC/subscriptions/SUB``."""
        return f"{self.url(topic)}/subscriptions/{subscription}"

    def connection_string(self, key_name: str = MANAGE_KEY, entity: str | None = None) -> str:
        """A connection string with ``key_name``'s key, scoped to ``entity`` when given."""
        return str(self.emulator.connection_string(key_name, entity=entity))

    def create_queue(self, name: str) -> None:
        """Create queue ``name`` (idempotent)."""
        self.emulator.create_queue(name)

    def create_subscription(self, topic: str, subscription: str) -> None:
        """Create ``subscription`` on ``topic`` (idempotent)."""
        self.emulator.create_subscription(topic, subscription)

    def endpoint(self, queue: str, key_name: str = MANAGE_KEY) -> dict[str, Any]:
        """A profile endpoint for ``queue`` with an entity-scoped connection string."""
        self.create_queue(queue)
        return {
            "url": self.url(queue),
            "connection_string": self.connection_string(key_name, queue),
        }


@contextlib.contextmanager
def servicebus(
    host: str = "127.0.0.1",
    *,
    queues: Sequence[str] = (),
    topics: Mapping[str, Sequence[str]] | None = None,
    lock_duration: float = 30.0,
    max_delivery_count: int = 10,
    max_message_size: int | None = None,
) -> Iterator[ServiceBusServer]:
    """Run the Service Bus emulator of ``iris-cloud-emulators`` on a free port.

    Four keys with fresh random secrets: :data:`MANAGE_KEY` (all rights),
    :data:`SEND_KEY` (Send), :data:`LISTEN_KEY` (Listen) and
    :data:`SEND_LISTEN_KEY` (Send and Listen).
    """
    try:
        from iris_cloud_emulators.servicebus import ServiceBusEmulator
    except ImportError as exc:
        raise ServerUnavailable(
            f"the Service Bus emulator needs iris-cloud-emulators installed ({exc})"
        ) from exc
    keys = [
        f"{MANAGE_KEY}:{secrets.token_urlsafe(24)}:Manage",
        f"{SEND_KEY}:{secrets.token_urlsafe(24)}:Send",
        f"{LISTEN_KEY}:{secrets.token_urlsafe(24)}:Listen",
        f"{SEND_LISTEN_KEY}:{secrets.token_urlsafe(24)}:Send,Listen",
    ]
    options: dict[str, Any] = {
        "queues": list(queues),
        "topics": {t: list(s) for t, s in (topics or {}).items()},
        "keys": keys,
        "lock_duration": lock_duration,
        "max_delivery_count": max_delivery_count,
        # Entities are created explicitly, as on Azure: a typo must not create a queue.
        "auto_create": False,
    }
    if max_message_size is not None:
        options["max_message_size"] = max_message_size
    try:
        emulator = ServiceBusEmulator(host, 0, **options).start()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ServerUnavailable(f"the Service Bus emulator did not start: {exc}") from exc
    try:
        yield ServiceBusServer(emulator)
    finally:
        emulator.stop()


class ServiceBusBrokerEnv:
    """:class:`~iris_cloud.testing.BrokerContractEnv` on the Service Bus emulator.

    The emulator's lock duration and delivery limit are per server, so one
    server is started per ``(lock_seconds, max_delivery_count)`` asked for and
    kept until :meth:`close`. Send-only / receive-only brokers use the
    Send / Listen keys, as IRIS hands them out; the claim-check store is a
    container on Azurite when one is given, else in memory.

    ``full_key`` is the key of :meth:`open` (Manage by default). With
    ``iris_shaped`` it is :data:`SEND_LISTEN_KEY` and the claim-check
    container is reached through a container SAS URL: entity-scoped SAS
    policies without Manage, the only kind of credential IRIS hands out.
    :meth:`async_view` opens the async classes on the same emulators.
    """

    asynchronous = False
    """Open :class:`~iris_cloud_azure.aio.AsyncServiceBusBroker` brokers and async
    claim-check stores (for :class:`iris_cloud.testing.blocking.BlockingBrokerEnv`)."""

    def __init__(
        self, azurite_server: AzuriteServer | None = None, *, iris_shaped: bool = False
    ) -> None:
        self.azurite = azurite_server
        self.iris_shaped = iris_shaped
        self.full_key = SEND_LISTEN_KEY if iris_shaped else MANAGE_KEY
        self._servers: dict[tuple[float, int], ServiceBusServer] = {}
        self._stack = contextlib.ExitStack()

    def iris_shaped_view(self) -> ServiceBusBrokerEnv:
        """This environment with IRIS-shaped credentials, sharing its emulators.

        Closing the original closes them; the view needs no closing.
        """
        view = copy.copy(self)
        view.iris_shaped = True
        view.full_key = SEND_LISTEN_KEY
        return view

    def async_view(self) -> ServiceBusBrokerEnv:
        """This environment opening the async classes, sharing its emulators."""
        view = copy.copy(self)
        view.asynchronous = True
        return view

    def server(self, lock_seconds: float, max_delivery_count: int) -> ServiceBusServer:
        """The emulator for these settings, started on first use."""
        key = (float(lock_seconds), int(max_delivery_count))
        if key not in self._servers:
            self._servers[key] = self._stack.enter_context(
                servicebus(lock_duration=key[0], max_delivery_count=key[1])
            )
        return self._servers[key]

    def _server_for(self, url: str) -> ServiceBusServer:
        port = urlsplit(url).port
        for server in self._servers.values():
            if server.port == port:
                return server
        raise KeyError(f"no emulator of this environment serves {url}")

    def new_queue(self, *, lock_seconds: float = 2.0, max_delivery_count: int = 3) -> str:
        """A new queue on the emulator with these settings."""
        server = self.server(lock_seconds, max_delivery_count)
        name = unique_name("contract")
        server.create_queue(name)
        return server.url(name)

    def _open(self, url: str, key_name: str, claim_check: Any = None) -> Any:
        server = self._server_for(url)
        entity = urlsplit(url).path.strip("/").split("/")[0]
        return _broker_class(self.asynchronous).from_url(
            url,
            connection_string=server.connection_string(key_name, entity),
            claim_check=claim_check,
        )

    def open(self, url: str, *, claim_check: Any = None) -> Any:
        """Open ``url`` with :attr:`full_key`, scoped to the entity."""
        return self._open(url, self.full_key, claim_check)

    def open_send_only(self, url: str) -> Any:
        """Open ``url`` with the Send-only key."""
        return self._open(url, SEND_KEY)

    def open_receive_only(self, url: str) -> Any:
        """Open ``url`` with the Listen-only key."""
        return self._open(url, LISTEN_KEY)

    def send_undecodable(self, url: str) -> list[str]:
        """Send, with the azure-servicebus SDK, messages of kinds AMQP allows and we do not."""
        from azure.servicebus import ServiceBusClient, ServiceBusMessage
        from azure.servicebus.amqp import AmqpAnnotatedMessage

        entity = urlsplit(url).path.strip("/").split("/")[0]
        cases: dict[str, Any] = {
            "application property that is a list": ServiceBusMessage(
                b"x", application_properties={"k": [HOSTILE]}
            ),
            "application property that is a UUID": ServiceBusMessage(
                b"x", application_properties={"k": uuid.uuid4()}
            ),
            "AMQP value body (a map)": AmqpAnnotatedMessage(value_body={"k": HOSTILE}),
        }
        conn = self._server_for(url).connection_string(self.full_key, entity)
        with (
            ServiceBusClient.from_connection_string(conn) as client,
            client.get_queue_sender(entity) as sender,
        ):
            for message in cases.values():
                sender.send_messages(message)
        return list(cases)

    def claim_check_store(self) -> Any:
        """A fresh Azurite container (or ``mem://`` container without Azurite)."""
        if self.azurite is None:
            from iris_cloud import aio, open_store

            opener = aio.open_store if self.asynchronous else open_store
            return opener(f"mem://{unique_name('claim-check')}")
        blobs = BlobStoreEnv(self.azurite, page_size=None, asynchronous=self.asynchronous)
        store = blobs.new_store()
        if not self.iris_shaped:
            return store
        sas_url = self.azurite.container_sas_url(store.container, "racwdl")
        return blobs._open(store.container, sas_url=sas_url)

    def close(self) -> None:
        """Stop every emulator this environment started."""
        self._stack.close()
        self._servers.clear()


# -- workflow profiles ------------------------------------------------------------------


def workflow_profiles(
    blob: AzuriteServer,
    bus: ServiceBusServer,
    *,
    iris_credentials: bool = True,
    suffix: str | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The integrator's and the platform's profiles of one IRIS exchange.

    Returns ``(integrator, platform)``, each a mapping of role to endpoint
    (``{"url": ..., **options}``) for ``orders``, ``events``, ``results``,
    ``gradings``, ``images``, ``results_store`` and ``claim_check``. Queues
    and containers are created, with ``suffix`` (default: random) appended to
    their names so that several exchanges can share the servers.

    With ``iris_credentials`` (the IRIS-hosted setup) the integrator holds
    exactly what IRIS hands out: a Send-only key for ``orders`` and
    ``gradings``, a Listen-only key for ``events`` and ``results``, a
    write-only (``sp=cw``) SAS URL for ``images`` and a read/write SAS URL for
    the claim-check container; the platform holds the mirror (Listen on
    orders/gradings, Send on events/results, the account key for storage).
    Without it both sides hold full rights, as in an own subscription.
    """
    tag = suffix or uuid.uuid4().hex[:8]
    queue = {role: f"{role}-{tag}" for role in ("orders", "events", "results", "gradings")}
    container = {
        "images": f"images-{tag}",
        "claim_check": f"claim-check-{tag}",
        "results_store": f"results-{tag}",
        "platform_results_store": f"platform-results-{tag}",
    }

    def send_key(send: bool) -> str:
        if not iris_credentials:
            return MANAGE_KEY
        return SEND_KEY if send else LISTEN_KEY

    integrator: dict[str, dict[str, Any]] = {}
    platform: dict[str, dict[str, Any]] = {}
    for role, name in queue.items():
        integrator_sends = role in INTEGRATOR_ROLES
        integrator[role] = bus.endpoint(name, send_key(integrator_sends))
        platform[role] = bus.endpoint(name, send_key(not integrator_sends))
    if iris_credentials:
        integrator["images"] = blob.endpoint(container["images"], "cw")
        integrator["claim_check"] = blob.endpoint(container["claim_check"], "rcwl")
    else:
        integrator["images"] = blob.endpoint(container["images"])
        integrator["claim_check"] = blob.endpoint(container["claim_check"])
    integrator["results_store"] = blob.endpoint(container["results_store"])
    platform["images"] = blob.endpoint(container["images"])
    platform["claim_check"] = blob.endpoint(container["claim_check"])
    platform["results_store"] = blob.endpoint(container["platform_results_store"])
    return integrator, platform
