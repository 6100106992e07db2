"""The fault-injection TCP proxy itself, against an echo server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from iris_cloud.testing import FaultProxy

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def echo() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(ConnectionResetError):  # the proxy's reset
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5)


def test_pass_stall_blackhole_reset(echo: int) -> None:
    with FaultProxy("127.0.0.1", echo) as proxy:
        sock = connect(proxy)
        sock.sendall(b"one")
        assert sock.recv(10) == b"one"
        proxy.set_mode("stall")
        sock.sendall(b"two")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        proxy.set_mode("pass")  # what waited is delivered
        sock.settimeout(5)
        assert sock.recv(10) == b"two"
        proxy.set_mode("blackhole")
        sock.sendall(b"lost")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(10)  # no reply, and no FIN or RST either
        fresh = connect(proxy)  # accepted, but as silent
        fresh.sendall(b"x")
        with pytest.raises(TimeoutError):
            fresh.recv(10)
        proxy.set_mode("pass")
        sock.sendall(b"still")  # its state is gone: black-holed for good
        with pytest.raises(TimeoutError):
            sock.recv(10)
        proxy.set_mode("reset")
        sock.settimeout(5)
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
        proxy.set_mode("pass")
        again = connect(proxy)
        again.sendall(b"back")
        again.settimeout(5)
        assert again.recv(10) == b"back"
        assert proxy.connections == 3
        for s in (sock, fresh, again):
            s.close()
