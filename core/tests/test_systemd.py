"""The systemd notify protocol against a real NOTIFY_SOCKET datagram socket the test binds."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.providers.memory import MemoryBroker
from iris_cloud.systemd import notify, watchdog_interval
from test_health import Dies, get, until
from wfhelpers import CLIENT_GUID

pytestmark = pytest.mark.timeout(60)


class Listener:
    """The service manager's end: a bound AF_UNIX datagram socket collecting states."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.states: list[str] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self.lock:
                self.states.append(data.decode())

    def seen(self) -> list[str]:
        with self.lock:
            return list(self.states)

    def wait_for(self, state: str, count: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.seen().count(state) < count:
            assert time.monotonic() < deadline, f"{state} x{count} not received: {self.seen()}"
            time.sleep(0.02)

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    # A short directory: AF_UNIX paths are limited to ~107 bytes.
    with tempfile.TemporaryDirectory(prefix="sd-") as tmp:
        path = str(Path(tmp) / "notify")
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        got = Listener(path)
        yield got
        got.close()


def test_ready_watchdog_stopping_over_the_socket(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    broker = MemoryBroker(f"sd-{uuid.uuid4().hex[:8]}")
    with Consumer(IrisApp(), {"events": broker}, systemd_notify=True, wait=0.05) as consumer:
        assert consumer.health is None  # notify needs no HTTP port
        consumer.start()
        listener.wait_for("READY=1")
        listener.wait_for("WATCHDOG=1", count=3)
        consumer.stop()
        consumer.join(10)
    listener.wait_for("STOPPING=1")
    states = listener.seen()
    assert states.count("READY=1") == 1
    assert states[-1] == "STOPPING=1"
    assert states.index("READY=1") < states.index("STOPPING=1")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_no_watchdog_ping_once_a_receive_loop_died(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    broker = Dies(f"sd-{uuid.uuid4().hex[:8]}")
    with Consumer(IrisApp(), {"events": broker}, systemd_notify=True, wait=0.05) as consumer:
        consumer.start()
        listener.wait_for("WATCHDOG=1", count=2)
        broker.die = True
        # Waited for, not slept on: on a loaded machine the loop may take long to die.
        until(lambda: bool(consumer.dead_threads()))
        # A ping decided before the death may still be sent: give the notifier an
        # iteration, then read up to a marker of ours (a socket keeps datagrams in order).
        time.sleep(0.5)
        notify("MARK", os.environ["NOTIFY_SOCKET"])
        listener.wait_for("MARK")
        before = listener.seen().count("WATCHDOG=1")
        time.sleep(0.5)  # ten ping intervals
        assert listener.seen().count("WATCHDOG=1") == before
        consumer.stop()
        consumer.join(10)


def test_an_abstract_namespace_socket() -> None:
    name = f"@iris-cloud-test-{uuid.uuid4().hex}"
    got = Listener("\0" + name[1:])
    try:
        assert notify("READY=1", name)
        got.wait_for("READY=1")
    finally:
        got.close()


def test_no_socket_sends_nothing_and_a_gone_manager_is_not_fatal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    assert notify("READY=1", str(tmp_path / "nobody")) is False


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    pid = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}) == 1.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def iris_cloud_script() -> str:
    """The installed ``iris-cloud`` console script of this environment."""
    beside = Path(sys.executable).parent / "iris-cloud"
    found = str(beside) if beside.exists() else shutil.which("iris-cloud")
    assert found, "the iris-cloud script is not installed"
    return found


def listen_config(tmp_path: Path) -> Path:
    queues = tmp_path / "queues"
    config = tmp_path / "iris-cloud.toml"
    config.write_text(
        "\n".join(
            [
                'default_profile = "svc"',
                "[profiles.svc]",
                f'client_guid = "{CLIENT_GUID}"',
                f'events = "local://{queues}?queue=events"',
                "[profiles.svc.consumer]",
                "wait = 0.1",
            ]
        )
        + "\n"
    )
    return config


def test_listen_with_a_health_port_under_systemd(listener: Listener, tmp_path: Path) -> None:
    config = listen_config(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": os.environ["NOTIFY_SOCKET"], "WATCHDOG_USEC": "400000"}
    env.pop("WATCHDOG_PID", None)
    command = [iris_cloud_script(), "listen", "events", "--config", str(config)]
    proc = subprocess.Popen(
        [*command, "--health-port", "0", "--metrics"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"health checks on (http://127\.0\.0\.1:\d+)/healthz", line)
        assert found, line
        url = found.group(1)
        until(lambda: get(url + "/readyz")[0] == 200)
        listener.wait_for("READY=1")
        listener.wait_for("WATCHDOG=1", count=2)
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            assert b'iris_cloud_lock_renewals_total{role="events"} 0.0' in response.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    listener.wait_for("STOPPING=1")
    assert listener.seen()[-1] == "STOPPING=1"


UNIT = Path(__file__).parents[2] / "contrib" / "systemd" / "iris-cloud-listen.service"


def unit_settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_uses_notify_the_watchdog_and_a_locked_down_user() -> None:
    settings = unit_settings(UNIT.read_text())
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert int(settings["WatchdogSec"][0]) > 0
    assert settings["User"] == ["iris-cloud"] and settings["UMask"] == ["0077"]
    assert settings["ProtectSystem"] == ["strict"]
    [exec_start] = settings["ExecStart"]
    save_dir = exec_start.split("--save ", 1)[1].split()[0]
    assert settings["ReadWritePaths"] == [save_dir]
    assert " listen results " in exec_start and "--health-port" in exec_start


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify wants ExecStart to exist: the unit with this environment's script.
    unit = tmp_path / UNIT.name
    text = UNIT.read_text()
    assert "/opt/iris-cloud/bin/iris-cloud " in text
    unit.write_text(text.replace("/opt/iris-cloud/bin/iris-cloud ", iris_cloud_script() + " "))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # Unknown or misspelt keys are only warnings: any line about the unit fails the test.
    about = [line for line in done.stderr.splitlines() if UNIT.name in line]
    assert done.returncode == 0 and not about, done.stderr


def test_listen_metrics_need_the_health_port(tmp_path: Path) -> None:
    config = listen_config(tmp_path)
    command = [iris_cloud_script(), "listen", "events", "--config", str(config), "--metrics"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--health-port" in done.stderr
