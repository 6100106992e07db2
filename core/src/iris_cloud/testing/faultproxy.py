"""A TCP proxy that injects network faults between a client and its test server.

Point an SDK at :attr:`FaultProxy.address` instead of the server and switch
the link with :meth:`FaultProxy.set_mode`:

* ``pass`` — bytes flow both ways;
* ``stall`` — nothing is read any more, so data waits in the kernel's buffers
  (a congested or frozen peer); switching back to ``pass`` delivers it;
* ``blackhole`` — everything is read and dropped, both ways, and new
  connections are accepted and treated alike: a NAT or firewall that dropped
  its state, with no FIN and no RST. Only timeouts and keepalives notice.
  A connection that was black-holed stays so after the mode changes back (the
  state is gone for good): only new connections pass again;
* ``reset`` — every connection is closed with a RST now, and new ones as
  they arrive.

    with FaultProxy("127.0.0.1", server_port) as proxy:
        client = make_client(proxy.address)
        proxy.set_mode("blackhole")
        ...
        proxy.set_mode("pass")

Standard library only, one thread per connection, for tests.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

if TYPE_CHECKING:
    from iris_cloud.consumer import Consumer

__all__ = ["FaultProxy", "Mode", "cut_and_heal"]

Mode = Literal["pass", "stall", "blackhole", "reset"]
_MODES = ("pass", "stall", "blackhole", "reset")
_TICK = 0.02


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a RST rather than a FIN (linger on, timeout zero)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``, with faults on demand."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._mode: Mode = "pass"
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_TICK * 5)
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        """Connections accepted so far (a reconnect shows as one more)."""
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, for SDKs that take host:port."""
        return f"127.0.0.1:{self.port}"

    @property
    def mode(self) -> Mode:
        """The current mode."""
        return self._mode

    def set_mode(self, mode: Mode) -> None:
        """Switch every connection, current and future, to ``mode``."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}")
        with self._lock:
            self._mode = mode
            pairs = list(self._pairs) if mode == "reset" else []
            if mode == "reset":
                self._pairs.clear()
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self._mode == "reset":
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(
                target=self._pump, args=(client, upstream), name="fault-proxy-pump", daemon=True
            ).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peer = {client: upstream, upstream: client}
        doomed = False
        try:
            while not self._closed.is_set():
                if self._mode == "stall":
                    self._closed.wait(_TICK)
                    continue
                doomed = doomed or self._mode == "blackhole"
                readable, _, _ = select.select([client, upstream], [], [], _TICK)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if not doomed:
                        peer[sock].sendall(data)
        except (OSError, ValueError):
            return  # reset, or closed under us
        finally:
            with self._lock:
                if (client, upstream) in self._pairs:
                    self._pairs.remove((client, upstream))
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(5)
        with self._lock:
            pairs, self._pairs = list(self._pairs), []
        for client, upstream in pairs:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def cut_and_heal(
    consumer: Consumer,
    proxy: FaultProxy,
    send: Callable[[], None],
    *,
    expect_dead_letters: int,
    notice_within: float,
    heal_within: float = 60.0,
) -> None:
    """Black-hole a started consumer's link, ``send`` meanwhile, and wait until
    the consumer has noticed (a receive error) and, with the link passing again,
    has dead-lettered ``expect_dead_letters`` messages (poison bodies make every
    delivery countable). Asserts on either wait running out."""
    proxy.set_mode("blackhole")
    send()
    deadline = time.monotonic() + notice_within
    # Without detection the receives would come back empty, as on an idle
    # queue, for as long as the dead connection lasted, and say nothing.
    while consumer.snapshot().receive_errors < 1:
        assert time.monotonic() < deadline, "the dead connection went unnoticed"
        time.sleep(0.1)
    proxy.set_mode("pass")
    deadline = time.monotonic() + heal_within
    while consumer.snapshot().dead_lettered < expect_dead_letters:
        assert time.monotonic() < deadline, consumer.snapshot()
        time.sleep(0.1)
