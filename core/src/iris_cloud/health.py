"""Liveness and readiness of a consumer, and the HTTP endpoint that serves them.

:class:`HealthState` is a :class:`~iris_cloud.observers.ConsumerObserver`
that keeps what a probe asks:

* **live** while the run goes on and its receive loops and lock renewer are
  all alive (a thread that died means the process should be restarted);
* **ready** once every broker's receive loop started and each one's last
  receive call succeeded, the last success no older than ``ready_within``
  seconds; not while stopping.

:class:`HealthServer` serves them with the standard library's HTTP server in
a daemon thread: ``GET /healthz`` and ``GET /readyz`` answer 200 or 503 with
a short JSON body (``{"status": "ok"}`` or ``{"status": "unavailable",
"reason": ...}``); the reason names brokers by the consumer's names for
them and errors by class, never a message's content. Extra routes (the
metrics' ``/metrics``) are added with :meth:`HealthServer.route`.

``Consumer(..., health_port=8080)`` (or ``[profiles.X.consumer]
health_port``, or ``iris-cloud listen --health-port``) binds it when the
consumer is built, so a port in use fails at once; it answers until the
consumer is closed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from iris_cloud.errors import ConfigurationError
from iris_cloud.logs import get_logger
from iris_cloud.observers import ConsumerObserver, ObservedConsumer

__all__ = ["HealthServer", "HealthState", "Verdict"]

log = get_logger("iris_cloud.health")

MIN_READY_WITHIN = 60.0
"""The shortest default ``ready_within``: a busy consumer receives less often."""


@dataclass(frozen=True)
class Verdict:
    """An answer to a probe: ``ok``, and why not (PHI-free: names and classes only)."""

    ok: bool
    reason: str = ""

    def body(self) -> bytes:
        """The JSON a probe gets."""
        if self.ok:
            return b'{"status": "ok"}'
        return json.dumps({"status": "unavailable", "reason": self.reason}).encode()


def default_ready_within(wait: float) -> float:
    """``ready_within`` when unset: the larger of 60 s and four receive waits."""
    return max(MIN_READY_WITHIN, 4 * wait)


class HealthState(ConsumerObserver):
    """Liveness and readiness, kept from what the consumer tells its observers."""

    def __init__(
        self, ready_within: float = MIN_READY_WITHIN, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ready_within = ready_within
        self._clock = clock
        self._lock = threading.Lock()
        self._consumer: ObservedConsumer | None = None
        self._sources: tuple[str, ...] = ()
        self._opened: set[str] = set()
        self._last_ok: dict[str, float] = {}
        self._failing: dict[str, str] = {}
        self._running = False
        self._stopping = False

    def consumer_started(self, consumer: ObservedConsumer) -> None:
        """A run began: nothing is opened or received yet."""
        with self._lock:
            self._consumer = consumer
            self._sources = tuple(consumer.brokers)
            self._opened.clear()
            self._last_ok.clear()
            self._failing.clear()
            self._running, self._stopping = True, False

    def consumer_stopping(self, consumer: ObservedConsumer) -> None:
        """Not ready from now on; still live while in-flight handlers finish."""
        with self._lock:
            self._stopping = True

    def consumer_stopped(self, consumer: ObservedConsumer) -> None:
        """Neither live nor ready."""
        with self._lock:
            self._running = False

    def endpoint_opened(self, source: str) -> None:
        """Count ``source`` as opened."""
        with self._lock:
            self._opened.add(source)

    def receive_ok(self, source: str, count: int) -> None:
        """Remember when ``source`` last received successfully."""
        with self._lock:
            self._last_ok[source] = self._clock()
            self._failing.pop(source, None)

    def receive_error(self, source: str, error_class: str) -> None:
        """``source`` fails to receive until its next success."""
        with self._lock:
            self._failing[source] = error_class

    def live(self) -> Verdict:
        """Whether the run goes on with every receive loop and the lock renewer alive."""
        with self._lock:
            consumer, running = self._consumer, self._running
        if consumer is None or not running:
            return Verdict(False, "the consumer is not running")
        dead = consumer.dead_threads()
        if dead:
            return Verdict(False, "stopped unexpectedly: " + ", ".join(sorted(dead)))
        return Verdict(True)

    def ready(self) -> Verdict:
        """Whether every broker was opened and received successfully within ``ready_within``."""
        alive = self.live()
        if not alive.ok:
            return alive
        now = self._clock()
        with self._lock:
            if self._stopping:
                return Verdict(False, "the consumer is stopping")
            for source in self._sources:
                if source not in self._opened:
                    return Verdict(False, f"{source}: not opened yet")
                if source in self._failing:
                    return Verdict(False, f"{source}: receiving fails ({self._failing[source]})")
                last = self._last_ok.get(source)
                if last is None:
                    return Verdict(False, f"{source}: no receive has completed yet")
                if now - last > self.ready_within:
                    return Verdict(
                        False,
                        f"{source}: no successful receive in the last {self.ready_within:g}s",
                    )
        return Verdict(True)


Route = Callable[[], tuple[int, str, bytes]]
"""A GET route: returns (status, content type, body)."""


class HealthServer:
    """``/healthz`` and ``/readyz`` (and added routes) over HTTP, in a daemon thread.

    Binds in the constructor (``port=0``: any free port, see :attr:`port`)
    and serves until :meth:`close`.
    """

    def __init__(self, state: HealthState, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self._routes: dict[str, Route] = {
            "/healthz": lambda: self._verdict(state.live()),
            "/readyz": lambda: self._verdict(state.ready()),
        }
        routes = self._routes

        class Handler(BaseHTTPRequestHandler):
            server_version = "iris-cloud"
            sys_version = ""

            def do_GET(self) -> None:
                self._answer(send_body=True)

            def do_HEAD(self) -> None:
                self._answer(send_body=False)

            def _answer(self, send_body: bool) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    status, ctype, body = 404, "application/json", b'{"status": "not found"}'
                else:
                    try:
                        status, ctype, body = route()
                    except Exception as exc:
                        log.warning("health route failed (%s)", type(exc).__name__)
                        status, ctype = 500, "application/json"
                        body = b'{"status": "error"}'
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                # Probes every few seconds are not worth a line each.
                log.debug("health request: %s", format % args)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve health checks on {host}:{port} ({type(exc).__name__}: "
                f"{exc.strerror or 'address unavailable'})"
            ) from None
        self._server.daemon_threads = True
        self.host = host
        self.port: int = self._server.server_address[1]
        """The bound port (the one chosen when ``port=0``)."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="iris-cloud-health",
            daemon=True,
        )
        self._thread.start()
        log.info("health checks on http://%s:%d/healthz and /readyz", host, self.port)

    @staticmethod
    def _verdict(verdict: Verdict) -> tuple[int, str, bytes]:
        return (200 if verdict.ok else 503), "application/json", verdict.body()

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def route(self, path: str, answer: Route) -> None:
        """Serve ``GET path`` with ``answer()`` (status, content type, body)."""
        self._routes[path] = answer

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
