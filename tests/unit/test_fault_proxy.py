"""The fault proxy forwards bytes, black-holes or resets a cut link, and heals it."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from goqueue.testing.fault_proxy import FaultProxy, LinkState


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback echo server (a thread per connection) standing in for a broker's port."""
    server = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept_loop() -> None:
        while not stopping.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    yield int(server.getsockname()[1])
    stopping.set()
    server.close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy("127.0.0.1", echo_port).start()
    yield proxy
    proxy.close()


def _connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=10)


def _echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def _closed(sock: socket.socket) -> bool:
    """True when the peer closed or reset the connection (aborts send a reset)."""
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def test_open_link_forwards_both_ways(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _echo(sock, b"hello" * 1000) == b"hello" * 1000


def test_blackholed_link_swallows_bytes_and_heal_closes_the_connection(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _echo(sock, b"before") == b"before"
        proxy.cut(LinkState.BLACKHOLE)
        sock.settimeout(0.3)
        sock.sendall(b"lost")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        proxy.heal()
        sock.settimeout(10)
        assert _closed(sock)
    with _connect(proxy) as sock:
        assert _echo(sock, b"after") == b"after"
    assert proxy.cuts == 1


def test_reset_link_closes_existing_and_new_connections(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        proxy.cut(LinkState.RESET)
        assert _closed(sock)
    with _connect(proxy) as sock:
        assert _closed(sock)
    proxy.heal()
    with _connect(proxy) as sock:
        assert _echo(sock, b"back") == b"back"


def test_proxy_started_before_its_target_refuses_until_the_target_listens() -> None:
    target = socket.socket()
    target.bind(("127.0.0.1", 0))
    proxy = FaultProxy("127.0.0.1", target.getsockname()[1]).start(when_target_listens=True)
    try:
        with pytest.raises(ConnectionRefusedError):
            _connect(proxy)
        target.listen()
        deadline = time.monotonic() + 5
        while True:
            try:
                _connect(proxy).close()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the proxy never started listening"
                time.sleep(0.02)
    finally:
        proxy.close()
        target.close()
