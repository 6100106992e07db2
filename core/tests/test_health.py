"""The health endpoint over a real socket: /healthz, /readyz, their reasons, the port's life."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.errors import ConfigurationError, Unavailable
from iris_cloud.health import HealthServer, HealthState
from iris_cloud.model import Event
from iris_cloud.ports import Message
from iris_cloud.providers.memory import MemoryBroker
from wfhelpers import make_profile, sample

pytestmark = pytest.mark.timeout(60)


def get(url: str, method: str = "GET") -> tuple[int, dict[str, Any] | None, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
            status, ctype = response.status, response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        body, status, ctype = exc.read(), exc.code, exc.headers["Content-Type"]
    return status, (json.loads(body) if body else None), ctype


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def status_of(consumer: Consumer, path: str) -> int:
    assert consumer.health is not None
    return get(consumer.health.url + path)[0]


def event_body() -> bytes:
    data = sample("event-order-graded.json")
    data["TransactionId"] = str(uuid.uuid4())
    return json.dumps(data).encode()


def queue() -> MemoryBroker:
    return MemoryBroker(f"health-{uuid.uuid4().hex[:8]}")


def test_live_and_ready_through_a_run_then_the_port_is_released() -> None:
    app = IrisApp()
    app.on(Event)(lambda e: None)
    consumer = Consumer(app, {"events": queue()}, health_port=0, wait=0.1)
    assert consumer.health is not None
    url = consumer.health.url
    assert consumer.health.host == "127.0.0.1"
    # Bound at construction, not running yet.
    assert get(url + "/healthz") == (
        503,
        {"status": "unavailable", "reason": "the consumer is not running"},
        "application/json",
    )
    assert get(url + "/readyz")[0] == 503
    consumer.start()
    until(lambda: status_of(consumer, "/readyz") == 200)
    assert get(url + "/healthz") == (200, {"status": "ok"}, "application/json")
    assert get(url + "/readyz", method="HEAD")[:2] == (200, None)
    assert get(url + "/nothing")[0] == 404
    consumer.stop()
    consumer.join(10)
    assert get(url + "/healthz")[0] == 503
    consumer.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", consumer.health.port), timeout=2).close()


class _Flaky(MemoryBroker):
    """Receiving fails (with patient data in the error text) while ``down`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.down = threading.Event()

    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        if self.down.is_set():
            raise Unavailable("connection reset while reading Jane Doe's order")
        return super()._receive(max_messages, wait)


def test_not_ready_while_receiving_fails_but_live() -> None:
    broker = _Flaky(f"health-{uuid.uuid4().hex[:8]}")
    with Consumer(IrisApp(), {"events": broker}, health_port=0, wait=0.05) as consumer:
        assert consumer.health is not None
        consumer.start()
        until(lambda: status_of(consumer, "/readyz") == 200)
        broker.down.set()
        until(lambda: status_of(consumer, "/readyz") == 503)
        body = get(consumer.health.url + "/readyz")[1]
        assert body == {"status": "unavailable", "reason": "events: receiving fails (Unavailable)"}
        assert "Jane" not in json.dumps(body)
        assert status_of(consumer, "/healthz") == 200
        broker.down.clear()
        until(lambda: status_of(consumer, "/readyz") == 200, timeout=15)
        consumer.stop()
        consumer.join(10)


def test_not_ready_when_no_receive_succeeded_within_the_bound() -> None:
    broker = queue()
    broker.send(event_body())
    release = threading.Event()
    app = IrisApp()
    app.on(Event)(lambda e: release.wait(20))
    with Consumer(
        app, {"events": broker}, health_port=0, wait=0.05, concurrency=1, ready_within=0.3
    ) as consumer:
        assert consumer.health is not None
        consumer.start()
        # The one handler slot is taken: no receive call, so after 0.3 s not ready.
        stale = {
            "status": "unavailable",
            "reason": "events: no successful receive in the last 0.3s",
        }
        until(lambda: get(consumer.health.url + "/readyz")[1] == stale)
        release.set()
        until(lambda: status_of(consumer, "/readyz") == 200)
        consumer.stop()
        consumer.join(10)


class Dies(MemoryBroker):
    """The receive loop's thread ends (as an interpreter-level exit would end it)."""

    die = False

    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        if self.die:
            raise SystemExit(1)
        return super()._receive(max_messages, wait)


# The dying thread's SystemExit is reported by threading's excepthook: expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_not_live_once_a_receive_loop_died() -> None:
    broker = Dies(f"health-{uuid.uuid4().hex[:8]}")
    other = queue()
    with Consumer(
        IrisApp(), {"events": broker, "results": other}, health_port=0, wait=0.05
    ) as consumer:
        assert consumer.health is not None
        consumer.start()
        until(lambda: status_of(consumer, "/healthz") == 200)
        broker.die = True
        until(lambda: status_of(consumer, "/healthz") == 503)
        assert get(consumer.health.url + "/healthz")[1] == {
            "status": "unavailable",
            "reason": "stopped unexpectedly: iris-cloud-receive-events",
        }
        assert status_of(consumer, "/readyz") == 503
        consumer.stop()
        consumer.join(10)


def test_a_port_in_use_fails_at_construction_and_leaks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    original = MemoryBroker.close

    def close(self: MemoryBroker) -> None:
        closed.append(self.name)
        original(self)

    monkeypatch.setattr(MemoryBroker, "close", close)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}"):
            Consumer(IrisApp(), queue(), health_port=port)
        profile: Profile = make_profile("mem", tmp_path)
        with pytest.raises(ConfigurationError):
            Consumer.from_profile(IrisApp(), profile, roles=("events",), health_port=port)
    assert len(closed) == 1


def test_a_profile_sets_the_health_port(tmp_path: Path) -> None:
    profile = make_profile("mem", tmp_path)
    settings = profile.consumer.model_copy(update={"health_port": 0, "wait": 0.1})
    with Consumer.from_profile(IrisApp(), profile, roles=("events",), settings=settings) as c:
        assert c.health is not None and c.health.port > 0
        c.start()
        until(lambda: status_of(c, "/readyz") == 200)
        c.stop()
        c.join(10)


def test_ready_waits_for_every_endpoint() -> None:
    state = HealthState(ready_within=10, clock=lambda: 100.0)

    class Fake:
        brokers = {"events": object(), "results": object()}
        stopping = False

        def dead_threads(self) -> list[str]:
            return []

    state.consumer_started(Fake())
    state.endpoint_opened("events")
    state.receive_ok("events", 0)
    assert state.ready().reason == "results: not opened yet"
    state.endpoint_opened("results")
    assert state.ready().reason == "results: no receive has completed yet"
    state.receive_ok("results", 3)
    assert state.ready().ok and state.live().ok
    state.consumer_stopping(Fake())
    assert state.ready().reason == "the consumer is stopping" and state.live().ok
    state.consumer_stopped(Fake())
    assert not state.live().ok


def test_an_added_route_and_a_failing_one() -> None:
    server = HealthServer(HealthState(), port=0)
    try:
        server.route("/x", lambda: (200, "text/plain", b"hello"))
        server.route("/boom", lambda: 1 / 0)  # type: ignore[arg-type,return-value]
        with urllib.request.urlopen(server.url + "/x", timeout=5) as r:
            assert r.read() == b"hello"
        assert get(server.url + "/boom") == (500, {"status": "error"}, "application/json")
    finally:
        server.close()
