"""The systemd notify protocol for a consumer run as a ``Type=notify`` service.

:class:`SystemdNotifier` is a :class:`~iris_cloud.observers.ConsumerObserver`
that sends, over the datagram socket systemd names in ``$NOTIFY_SOCKET``
(a path, or ``@name`` in the abstract namespace):

* ``READY=1`` once the consumer is ready (:meth:`HealthState.ready
  <iris_cloud.health.HealthState.ready>`: every broker opened and receiving);
* ``WATCHDOG=1`` every half of ``$WATCHDOG_USEC`` while the consumer is live
  (its receive loops and lock renewer alive), so systemd restarts a process
  whose loops died or hung (``WatchdogSec=`` in the unit);
* ``STOPPING=1`` when the consumer begins to stop.

Without ``$NOTIFY_SOCKET`` it does nothing. The unit in
``contrib/systemd/iris-cloud-listen.service`` uses it.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from iris_cloud.health import HealthState
from iris_cloud.logs import get_logger
from iris_cloud.observers import ConsumerObserver, ObservedConsumer

__all__ = ["SystemdNotifier", "notify", "watchdog_interval"]

log = get_logger("iris_cloud.systemd")

CHECK_INTERVAL = 0.5
"""Seconds between readiness checks until ``READY=1`` was sent."""


def _address(name: str) -> str:
    # systemd writes an abstract-namespace socket as "@name"; the kernel's
    # spelling is a leading NUL byte.
    return "\0" + name[1:] if name.startswith("@") else name


def notify(state: str, socket_name: str | None = None) -> bool:
    """Send ``state`` (``"READY=1"``, ...) to ``socket_name`` or ``$NOTIFY_SOCKET``.

    Returns whether it was sent: ``False`` without a socket to send to, or
    when sending failed (logged; a service manager that went away must not
    stop the consumer).
    """
    name = socket_name if socket_name is not None else os.environ.get("NOTIFY_SOCKET")
    if not name:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(_address(name))
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("systemd notify failed (%s)", type(exc).__name__)
        return False
    return True


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, or ``None``.

    ``None`` too when ``$WATCHDOG_PID`` names another process (the watchdog
    is for the service's main process only).
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2 / 1_000_000 if value > 0 else None


class SystemdNotifier(ConsumerObserver):
    """``READY=1`` / ``WATCHDOG=1`` / ``STOPPING=1`` for the run of a consumer."""

    def __init__(
        self,
        state: HealthState,
        *,
        socket_name: str | None = None,
        watchdog: float | None = None,
    ) -> None:
        self.state = state
        self.socket_name = socket_name or os.environ.get("NOTIFY_SOCKET") or None
        self.watchdog = watchdog if watchdog is not None else watchdog_interval()
        self._ready_sent = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def consumer_started(self, consumer: ObservedConsumer) -> None:
        """Begin checking readiness and pinging the watchdog."""
        if self.socket_name is None:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="iris-cloud-systemd", daemon=True
        )
        self._thread.start()

    def consumer_stopping(self, consumer: ObservedConsumer) -> None:
        """Send ``STOPPING=1`` and stop pinging."""
        if self.socket_name is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        notify("STOPPING=1", self.socket_name)

    def _run(self, stop: threading.Event) -> None:
        every = CHECK_INTERVAL if self.watchdog is None else min(CHECK_INTERVAL, self.watchdog)
        next_ping = 0.0
        while not stop.is_set():
            if not self._ready_sent and self.state.ready().ok:
                self._ready_sent = notify("READY=1", self.socket_name)
            now = time.monotonic()
            # A consumer whose loops died is not pinged: systemd restarts it.
            if self.watchdog is not None and now >= next_ping and self.state.live().ok:
                notify("WATCHDOG=1", self.socket_name)
                next_ping = now + self.watchdog
            stop.wait(every)
