"""``PubSubEmulator``: the gRPC server, in-process, on a free loopback port."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from types import TracebackType

import grpc

from ._backend import DEFAULT_ACK_DEADLINE, ApiError, Backend
from ._service import PubSubServicer

#: Above the 10 MB publish limit, so an oversized Publish reaches the handler and
#: gets INVALID_ARGUMENT as from the real service, not grpc's RESOURCE_EXHAUSTED.
_MAX_GRPC_MESSAGE_BYTES = 64 * 1024 * 1024
#: Concurrent RPCs served by default. Each open StreamingPull holds one for its
#: whole life, and clients open several per subscription (the Node client 5),
#: so a process with dozens of subscriptions needs hundreds.
DEFAULT_MAX_CONCURRENT_RPCS = 512


class PubSubEmulator:
    """A Google Pub/Sub server for tests, speaking gRPC to the real client library.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`) and point
    google-cloud-pubsub at it with ``PUBSUB_EMULATOR_HOST=emulator.host_port``::

        with PubSubEmulator(min_ack_deadline=1) as emulator:
            os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host_port
            publisher = pubsub_v1.PublisherClient()

    ``port=0`` picks a free port. ``min_ack_deadline`` (1-10 s, default 10 as on
    the real service) is the smallest ``ack_deadline_seconds`` a subscription and
    the smallest ``stream_ack_deadline_seconds`` a StreamingPull may ask for;
    tests lower it to watch deadlines expire in about a second. (ModifyAckDeadline
    takes 0-600 s regardless, as on the real service.) ``pull_wait`` is how long
    an empty Pull is held (1 s by default) before it returns nothing.
    ``max_concurrent_rpcs`` bounds the RPCs served at once; each open
    StreamingPull (``subscribe()``) holds one for as long as it is open. An RPC
    beyond the bound fails at once with ``RESOURCE_EXHAUSTED`` (the client sees
    an error; nothing waits for a free worker).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        min_ack_deadline: int = DEFAULT_ACK_DEADLINE,
        pull_wait: float = 1.0,
        max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS,
    ) -> None:
        if pull_wait < 0:
            raise ValueError("pull_wait must not be negative")
        if max_concurrent_rpcs < 1:
            raise ValueError("max_concurrent_rpcs must be at least 1")
        self.host = host
        self.port = port
        self.backend = Backend(min_ack_deadline=min_ack_deadline)
        self._servicer = PubSubServicer(self.backend, pull_wait=pull_wait)
        self._max_concurrent_rpcs = max_concurrent_rpcs
        self._server: grpc.Server | None = None
        self._sweeper: threading.Thread | None = None

    @property
    def host_port(self) -> str:
        """``HOST:PORT`` as ``PUBSUB_EMULATOR_HOST`` wants it (valid once started)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> PubSubEmulator:
        """Bind the port and serve; returns self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        server = grpc.server(
            # As many workers as RPCs admitted, so an admitted RPC never queues
            # behind streams (threads are started only as they are needed).
            futures.ThreadPoolExecutor(
                max_workers=self._max_concurrent_rpcs, thread_name_prefix="pubsub-emulator"
            ),
            handlers=self._servicer.handlers(),
            maximum_concurrent_rpcs=self._max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", _MAX_GRPC_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_GRPC_MESSAGE_BYTES),
                # grpc sets SO_REUSEPORT by default: a second server would then
                # share a taken port silently instead of failing to bind.
                ("grpc.so_reuseport", 0),
                # Accept the clients' keepalive pings (every second in the
                # fault tests, idle or not) instead of answering them with
                # GOAWAY "too_many_pings".
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 200),
                ("grpc.http2.max_ping_strikes", 0),
            ],
        )
        try:
            port = server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError as error:  # grpc >= 1.53 raises instead of returning 0
            raise OSError(f"cannot bind {self.host}:{self.port}: {error}") from error
        if port == 0:
            raise OSError(f"cannot bind {self.host}:{self.port}")
        self.port = port
        self.backend.closed = False  # after a stop(), start() serves again
        server.start()
        self._server = server
        self._sweeper = threading.Thread(
            target=self._sweep, name="pubsub-emulator-sweeper", daemon=True
        )
        self._sweeper.start()
        return self

    def stop(self, grace: float = 0.5) -> None:
        """Stop serving: open streams end, pending RPCs get ``grace`` seconds."""
        server, self._server = self._server, None
        if server is None:
            return
        self.backend.close()  # wakes held Pulls and StreamingPulls so they return
        server.stop(grace).wait()
        if self._sweeper is not None:
            self._sweeper.join()
            self._sweeper = None

    def reset(self) -> None:
        """Drop every topic, subscription and message, keeping the server running."""
        self.backend.reset()

    def num_undelivered_messages(self, subscription: str) -> int:
        """Unacknowledged messages on ``subscription`` (full path), leased or not.

        Named after the Cloud Monitoring metric ``subscription/num_undelivered_messages``;
        tests use it to check that an ack reached the server, which a Pull cannot
        tell apart from a message that is merely still leased.
        """
        try:
            return self.backend.num_undelivered_messages(subscription)
        except ApiError as error:
            raise KeyError(subscription) from error

    def wait(self) -> None:
        """Block until the server stops (the CLI's main loop)."""
        if self._server is not None:
            self._server.wait_for_termination()

    def _sweep(self) -> None:
        # Lease expiry is what turns an unacked message into a redelivery (or a
        # dead letter); doing it here rather than lazily means a dead-letter
        # subscription receives the message even while nobody pulls the source.
        backend = self.backend
        while True:
            # Sweep and wait under one hold of the (re-entrant) lock, so a lease
            # taken in between cannot notify before we wait and be missed.
            with backend.cond:
                upcoming = backend.sweep()
                if backend.closed:
                    return
                timeout = 1.0 if upcoming is None else min(1.0, upcoming - time.monotonic())
                if timeout > 0:
                    backend.cond.wait(timeout)

    def __enter__(self) -> PubSubEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
