"""Test helpers for the AWS provider: a moto server on loopback and what runs on it.

Used by this package's tests and by the cross-package workflow tests::

    with moto_server() as server:
        server.create_queue("orders", dead_letter=True)
        broker = open_broker(server.broker_url("orders"), **server.options())

The server is moto's own HTTP server (``ThreadedMotoServer``) on 127.0.0.1
with a free port; clients are real boto3 clients talking to it over a socket.
Credentials are passed as options, never through ``os.environ``: they belong
to an IAM user with every right, created when the server starts, so that the
same credentials keep working while IAM is enforced.

moto keeps its IAM switch process-wide, and a threaded server runs in this
process: :meth:`MotoServer.enforce_iam` checks every call of every moto
server in the process against IAM policies until the block ends.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import boto3
from iris_cloud.testing.contract import HOSTILE
from iris_cloud.testing.processes import stop_process

__all__ = [
    "ACCOUNT",
    "REGION",
    "MotoServer",
    "S3StoreEnv",
    "ServerUnavailable",
    "SqsBrokerEnv",
    "least_privilege_credentials",
    "moto_server",
    "workflow_profiles",
]

REGION = "us-east-1"
ACCOUNT = "123456789012"
"""moto's default account."""
_BOOTSTRAP = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
"""Any key works while IAM is not enforced; used only to create the admin user."""

# What IRIS-style credentials allow, per endpoint kind (docs/aws.md lists the same).
SEND_ONLY = ["sqs:SendMessage"]
RECEIVE_ONLY = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
]
WRITE_ONLY = ["s3:PutObject"]
READ_ONLY = ["s3:GetObject", "s3:ListBucket"]


class ServerUnavailable(RuntimeError):
    """The test server could not be started (the message says why)."""


def _random(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class MotoServer:
    """A running moto server and helpers to set up queues, buckets and IAM users."""

    endpoint_url: str
    region: str = REGION
    credentials: dict[str, str] = field(default_factory=lambda: dict(_BOOTSTRAP))
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def options(self, **extra: Any) -> dict[str, Any]:
        """Endpoint options for this server: endpoint_url, region, admin credentials."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            **self.credentials,
            **extra,
        }

    def client(self, service: str, **credentials: str) -> Any:
        """A plain boto3 client on this server (the admin's unless credentials are given)."""
        creds = credentials or self.credentials
        key = (service, creds["aws_access_key_id"])
        if key not in self._clients:
            # Clients are thread-safe and costly to make: one per service and key.
            self._clients[key] = boto3.session.Session(region_name=self.region, **creds).client(
                service, endpoint_url=self.endpoint_url
            )
        return self._clients[key]

    # -- resources -----------------------------------------------------------------
    def create_queue(
        self,
        name: str,
        *,
        dead_letter: bool = False,
        max_receive_count: int = 5,
        visibility_timeout: int | None = None,
        max_message_bytes: int | None = None,
    ) -> str:
        """Create queue ``name`` (FIFO if it ends in ``.fifo``); returns its URL.

        With ``dead_letter`` a queue ``<name>-dlq`` is created and set as the
        redrive target after ``max_receive_count`` receives.
        """
        sqs = self.client("sqs")
        attrs: dict[str, str] = {}
        fifo = name.endswith(".fifo")
        if fifo:
            attrs["FifoQueue"] = "true"
        if visibility_timeout is not None:
            attrs["VisibilityTimeout"] = str(visibility_timeout)
        if max_message_bytes is not None:
            attrs["MaximumMessageSize"] = str(max_message_bytes)
        if dead_letter:
            dlq_name = name.removesuffix(".fifo") + "-dlq" + (".fifo" if fifo else "")
            dlq_attrs = {"FifoQueue": "true"} if fifo else {}
            dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes=dlq_attrs)["QueueUrl"]
            arn = self.queue_arn(dlq_url)
            attrs["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive_count)}
            )
        return str(sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"])

    def queue_arn(self, queue_url: str) -> str:
        """The ARN of the queue at ``queue_url``."""
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )
        return str(attrs["Attributes"]["QueueArn"])

    def create_bucket(self, name: str, *, notification_queue: str | None = None) -> str:
        """Create bucket ``name``; returns it.

        With ``notification_queue`` (a queue name) S3 sends that queue its
        ``s3:ObjectCreated:*`` events.
        """
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name)
        if notification_queue:
            url = self.client("sqs").get_queue_url(QueueName=notification_queue)["QueueUrl"]
            s3.put_bucket_notification_configuration(
                Bucket=name,
                NotificationConfiguration={
                    "QueueConfigurations": [
                        {"QueueArn": self.queue_arn(url), "Events": ["s3:ObjectCreated:*"]}
                    ]
                },
            )
        return name

    def broker_url(self, queue: str) -> str:
        """The ``awssqs://NAME`` URL of a queue (resolved with GetQueueUrl)."""
        return f"awssqs://{queue}"

    def queue_url_form(self, queue: str) -> str:
        """The ``awssqs://HOST/ACCOUNT/NAME`` URL form (no GetQueueUrl needed)."""
        host = self.endpoint_url.split("://", 1)[1]
        return f"awssqs://{host}/{ACCOUNT}/{queue}"

    def store_url(self, bucket: str, prefix: str = "") -> str:
        """The ``s3://`` URL of a bucket (and prefix)."""
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    # -- moto control ------------------------------------------------------------------
    def _post(self, path: str, data: bytes = b"") -> None:
        # endpoint_url is the http:// loopback URL this module built.
        request = urllib.request.Request(  # noqa: S310
            self.endpoint_url + path,
            data=data,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            resp.read()

    def set_iam(self, enforced: bool) -> None:
        """Switch IAM checking on or off (moto's ``/moto-api/reset-auth``)."""
        self._post("/moto-api/reset-auth", b"0" if enforced else b"inf")

    @contextmanager
    def enforce_iam(self) -> Iterator[None]:
        """Check every call against IAM policies inside the block."""
        self.set_iam(True)
        try:
            yield
        finally:
            self.set_iam(False)

    def reset(self) -> None:
        """Forget every queue, bucket and IAM entity (the admin user is made again)."""
        self._post("/moto-api/reset")
        self._clients.clear()
        self.credentials = dict(_BOOTSTRAP)
        self.credentials = least_privilege_credentials(self, ["*"])


def least_privilege_credentials(
    server: MotoServer, actions: list[str], resources: list[str] | None = None
) -> dict[str, str]:
    """Create an IAM user allowed only ``actions`` (e.g. ``["s3:PutObject"]``).

    Returns its access key as endpoint options (``aws_access_key_id``,
    ``aws_secret_access_key``); it is denied everything else once IAM is
    enforced (:meth:`MotoServer.enforce_iam`).
    """
    iam = server.client("iam")
    user = _random("iris")
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources or ["*"]}],
    }
    iam.put_user_policy(UserName=user, PolicyName="iris", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {
        "aws_access_key_id": str(key["AccessKeyId"]),
        "aws_secret_access_key": str(key["SecretAccessKey"]),
    }


def _threaded_server() -> Any:
    from moto.server import ThreadedMotoServer

    class Reporting(ThreadedMotoServer):
        # ThreadedMotoServer.start() waits forever when the server thread
        # dies before it is ready; report the error instead.
        error: BaseException | None = None

        def _server_entry(self) -> None:
            try:
                super()._server_entry()
            except BaseException as exc:
                self.error = exc
                self._server_ready_event.set()

    return Reporting(ip_address="127.0.0.1", port=0, verbose=False)


@contextmanager
def _in_thread() -> Iterator[str]:
    try:
        server = _threaded_server()
    except ImportError as exc:
        raise ServerUnavailable(f"moto[server] is not installed: {exc}") from exc
    # moto's request log is werkzeug's: one line per call drowns test output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server.start()
    if server.error is not None:
        raise ServerUnavailable(f"moto server did not start: {server.error}")
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def _in_process() -> Iterator[str]:
    # The port is picked by binding port 0 and released just before moto
    # binds it; on loopback the race is negligible and reported if lost.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The server logs every request: to a file, since an unread pipe would
    # fill up and stall it. Its tail explains a failed start.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")[-500:]
                raise ServerUnavailable(f"moto server exited ({proc.returncode}): {err}")
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise ServerUnavailable("moto server did not answer within 30 s") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        stop_process(proc, timeout=10)
        log.close()


@contextmanager
def moto_server(*, separate_process: bool = False) -> Iterator[MotoServer]:
    """Start a moto server on 127.0.0.1 with a free port; stop it afterwards.

    By default a ``ThreadedMotoServer`` in this process. ``separate_process``
    runs ``python -m moto.server`` instead: memory measurements then see only
    the client, and the server's IAM switch is its own. Raises
    :class:`ServerUnavailable` when moto is missing or cannot start (test
    fixtures turn that into ``iris_cloud.testing.require_server``).
    """
    with _in_process() if separate_process else _in_thread() as endpoint:
        moto = MotoServer(endpoint_url=endpoint)
        moto.credentials = least_privilege_credentials(moto, ["*"])
        yield moto


# -- contract-suite environments ---------------------------------------------------------


class _IamEnv:
    """Opening restricted credentials switches IAM enforcement on; :meth:`close`
    (the fixture's teardown) switches it off again. Given ``loop`` (an
    :class:`iris_cloud.testing.blocking.LoopThread`) the environment opens the
    async classes (``iris_cloud_aws.aio``) for the blocking facades, and
    connects each broker on that loop, as a caller that needs the queue's
    capabilities before its first call does (``await broker.connect()``)."""

    def __init__(self, server: MotoServer, *, loop: Any = None) -> None:
        self.server = server
        self.loop = loop
        self.asynchronous = loop is not None
        self._enforcing = False

    def _connected(self, port: Any) -> Any:
        if self.loop is not None:
            self.loop.run(port.connect())
        return port

    def _broker_class(self) -> Any:
        if self.asynchronous:
            from iris_cloud_aws.aio.broker import AsyncSqsBroker

            return AsyncSqsBroker
        from iris_cloud_aws.broker import SqsBroker

        return SqsBroker

    def _store_class(self) -> Any:
        if self.asynchronous:
            from iris_cloud_aws.aio.store import AsyncS3Store

            return AsyncS3Store
        from iris_cloud_aws.store import S3Store

        return S3Store

    def _enforce(self) -> None:
        if not self._enforcing:
            self.server.set_iam(True)
            self._enforcing = True

    def close(self) -> None:
        """Switch IAM enforcement off again if this environment switched it on."""
        if self._enforcing:
            self.server.set_iam(False)
            self._enforcing = False


class SqsBrokerEnv(_IamEnv):
    """:class:`~iris_cloud.testing.BrokerContractEnv` on a moto server.

    Queues are opened by their full URL (``awssqs://HOST/ACCOUNT/NAME``) so
    that send-only credentials, which may not call GetQueueUrl, work too.
    """

    def new_queue(self, *, lock_seconds: float = 2.0, max_delivery_count: int = 3) -> str:
        """A fresh queue with a redrive DLQ after ``max_delivery_count`` receives."""
        name = _random("contract")
        self.server.create_queue(
            name,
            dead_letter=True,
            max_receive_count=max_delivery_count,
            visibility_timeout=max(1, math.ceil(lock_seconds)),
        )
        return self.server.queue_url_form(name)

    def open(self, url: str, *, claim_check: Any = None) -> Any:
        """Open ``url`` with the admin's credentials."""
        options = self.server.options()
        return self._connected(
            self._broker_class().from_url(url, claim_check=claim_check, **options)
        )

    def claim_check_store(self) -> Any:
        """A fresh bucket for the claim check, under a key prefix as deployments often have."""
        bucket = self.server.create_bucket(_random("claim-check"))
        url = self.server.store_url(bucket, "claims")
        return self._store_class().from_url(url, **self.server.options())

    def send_undecodable(self, url: str) -> list[str]:
        """Send, with plain boto3, messages whose attributes lie about their body or type."""
        from iris_cloud_aws.broker import queue_location

        parts = urlsplit(url)
        queue_url, _, _ = queue_location(parts.netloc, parts.path, self.server.endpoint_url)
        string = {"DataType": "String", "StringValue": HOSTILE}
        cases: dict[str, tuple[str, dict[str, Any]]] = {
            "base64 encoding on a body that is not": (
                HOSTILE,
                {"iris_body_encoding": {"DataType": "String", "StringValue": "base64"}},
            ),
            "unknown body encoding": ("x", {"iris_body_encoding": string}),
            "String.float that is not a number": (
                "x",
                {"f": {"DataType": "String.float", "StringValue": HOSTILE}},
            ),
            "overflow that is not JSON": ("x", {"iris_overflow": string}),
            "overflow with a non-scalar property": (
                "x",
                {"iris_overflow": {"DataType": "String", "StringValue": f'{{"k": ["{HOSTILE}"]}}'}},
            ),
        }
        sqs = self.server.client("sqs")
        for body, attributes in cases.values():
            sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageAttributes=attributes)
        return list(cases)

    def _restricted(self, url: str, actions: list[str]) -> Any:
        creds = least_privilege_credentials(self.server, actions)
        self._enforce()
        options = {**self.server.options(), **creds}
        return self._connected(self._broker_class().from_url(url, **options))

    def open_send_only(self, url: str) -> Any:
        """Open ``url`` as an IAM user allowed only sqs:SendMessage."""
        return self._restricted(url, SEND_ONLY)

    def open_receive_only(self, url: str) -> Any:
        """Open ``url`` as an IAM user allowed to receive and settle only."""
        return self._restricted(url, RECEIVE_ONLY)


class S3StoreEnv(_IamEnv):
    """:class:`~iris_cloud.testing.StoreContractEnv` on a moto server.

    ``page_size`` sets ``S3Store.list_page_size`` so that short listings page.
    """

    def __init__(
        self,
        server: MotoServer,
        *,
        page_size: int = 1000,
        loop: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(server, loop=loop)
        self.page_size = page_size
        self.store_options = options

    def new_store(self) -> Any:
        """A fresh, empty bucket with the admin's credentials."""
        bucket = self.server.create_bucket(_random("contract"))
        return self._open(bucket, {})

    def _open(self, bucket: str, creds: dict[str, str]) -> Any:
        options = {**self.server.options(), **self.store_options, **creds}
        store = self._store_class().from_url(self.server.store_url(bucket), **options)
        store.list_page_size = self.page_size
        return self._connected(store)

    def open_write_only(self, store: Any) -> Any:
        """``store``'s bucket as an IAM user allowed only s3:PutObject."""
        creds = least_privilege_credentials(self.server, WRITE_ONLY)
        self._enforce()
        return self._open(store.container, creds)

    def open_read_only(self, store: Any) -> Any:
        """``store``'s bucket as an IAM user allowed s3:GetObject and s3:ListBucket."""
        creds = least_privilege_credentials(self.server, READ_ONLY)
        self._enforce()
        return self._open(store.container, creds)


# -- workflow profiles --------------------------------------------------------------------

QUEUE_ROLES = ("orders", "events", "results", "gradings")
STORE_ROLES = ("images", "results_store", "claim_check")


def workflow_profiles(
    server: MotoServer, *, suffix: str | None = None, **options: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Queues and buckets for one IRIS exchange; returns (integrator, platform) profiles.

    Each profile maps a role (orders, events, results, gradings, images,
    results_store, claim_check) to an endpoint dict ``{"url": ..., **options}``.
    SQS has no topic/subscription split, so both sides name the same queues:
    the integrator sends orders and gradings and receives events and results,
    the platform the reverse. Every queue has a 5 s visibility timeout and a
    dead-letter queue (redrive after 5 receives). ``suffix`` keeps several
    exchanges on one server apart (random by default); ``options`` are added
    to every endpoint (e.g. ``lock_seconds``).
    """
    tag = suffix or uuid.uuid4().hex[:8]
    base = server.options(**options)
    roles: dict[str, Any] = {}
    for role in QUEUE_ROLES:
        name = f"{role}-{tag}"
        # A 5 s visibility timeout: a message whose handler failed comes back
        # quickly; the consumer renews the lock of long handlers.
        server.create_queue(name, dead_letter=True, visibility_timeout=5)
        roles[role] = {"url": server.broker_url(name), **base}
    store_base = {k: v for k, v in base.items() if k != "lock_seconds"}
    for role in STORE_ROLES:
        bucket = server.create_bucket(f"{role.replace('_', '-')}-{tag}")
        roles[role] = {"url": server.store_url(bucket), **store_base}
    integrator = {role: dict(endpoint) for role, endpoint in roles.items()}
    platform = {role: dict(endpoint) for role, endpoint in roles.items()}
    return integrator, platform
