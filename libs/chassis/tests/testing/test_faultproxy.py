"""`FaultProxy` against a tiny echo server: each fault, set while connections are open."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from chassis.testing.faultproxy import FaultProxy, Mode

TIMEOUT = 2.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65_536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo_port) as running:
        yield running


def connect(proxy: FaultProxy, *, timeout: float = TIMEOUT) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def round_trip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65_536)
        if not chunk:
            break
        received += chunk
    return received


def timed_round_trip(sock: socket.socket, payload: bytes) -> float:
    started = time.monotonic()
    assert round_trip(sock, payload) == payload
    return time.monotonic() - started


def test_a_healthy_proxy_passes_bytes_both_ways(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert round_trip(sock, b"hello") == b"hello"
    assert proxy.stats().accepted == 1
    assert proxy.mode is Mode.PASS


def test_latency_delays_an_open_connection_in_the_chosen_direction(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        proxy.set_latency(0.3, direction="downstream")
        assert timed_round_trip(sock, b"slow") >= 0.3
        proxy.set_latency(0.3, direction="both")
        assert timed_round_trip(sock, b"slower") >= 0.6
        proxy.heal()
        # Healed: no longer held (the bound is loose; only the added delay is gone).
        assert timed_round_trip(sock, b"fast") < 0.3


def test_latency_is_added_once_to_a_burst_not_once_per_chunk(proxy: FaultProxy) -> None:
    proxy.set_latency(0.2, direction="upstream")
    with connect(proxy) as sock:
        started = time.monotonic()
        for index in range(5):
            sock.sendall(b"x%d" % index)
        received = b""
        while len(received) < 10:
            received += sock.recv(100)
        elapsed = time.monotonic() - started
    assert received == b"x0x1x2x3x4"
    assert 0.2 <= elapsed < 1.0  # five chunks, each held 0.2 s, pipelined


def test_bandwidth_cap_paces_the_transfer(proxy: FaultProxy) -> None:
    proxy.set_bandwidth(20_000)
    with connect(proxy, timeout=10) as sock:
        # 8 kB at 20 kB/s is 0.4 s (the two directions overlap; the last slice needs no pause).
        assert timed_round_trip(sock, b"b" * 8_000) >= 0.35


def test_reset_cuts_open_connections_and_new_ones_with_rst(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert round_trip(sock, b"before") == b"before"
        proxy.reset()
        with pytest.raises(ConnectionResetError):
            round_trip(sock, b"after")
    with pytest.raises(ConnectionResetError), connect(proxy) as fresh:
        round_trip(fresh, b"new")  # the RST may even beat connect() back
    assert proxy.stats().reset == 2
    proxy.heal()
    with connect(proxy) as healed:
        assert round_trip(healed, b"again") == b"again"


def test_blackhole_accepts_and_never_answers_then_heals(proxy: FaultProxy) -> None:
    with connect(proxy, timeout=0.3) as sock:
        assert round_trip(sock, b"ok") == b"ok"
        proxy.blackhole()
        sock.sendall(b"held")
        with pytest.raises(TimeoutError):
            sock.recv(100)
        with connect(proxy, timeout=0.3) as fresh:  # a new connection is accepted...
            fresh.sendall(b"lost")
            with pytest.raises(TimeoutError):  # ...and never answered
                fresh.recv(100)
        proxy.heal()
        sock.settimeout(TIMEOUT)
        # What was held is delivered once the partition heals, as TCP would.
        sock.sendall(b"!")
        received = b""
        while len(received) < len(b"held!"):
            received += sock.recv(100)
        assert received == b"held!"


def test_down_refuses_connections_and_cuts_open_ones_until_up(proxy: FaultProxy) -> None:
    port = proxy.port
    with connect(proxy) as sock:
        assert round_trip(sock, b"up") == b"up"
        proxy.down()
        try:
            answer = round_trip(sock, b"down")
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # EOF or a reset, never an answer
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.up()
    assert proxy.port == port
    with connect(proxy) as again:
        assert round_trip(again, b"back") == b"back"


def test_a_refusing_target_closes_the_client_connection(echo_port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # bound, never listening: connect is refused
        with FaultProxy("127.0.0.1", closed_port) as proxy, connect(proxy) as sock:
            assert sock.recv(10) == b""
            assert proxy.stats().refused_upstream == 1


def test_settings_are_validated_and_controls_need_a_started_proxy() -> None:
    proxy = FaultProxy("127.0.0.1", 1)
    with pytest.raises(ValueError, match="latency"):
        proxy.set_latency(-1)
    with pytest.raises(ValueError, match="bandwidth"):
        proxy.set_bandwidth(0)
    with pytest.raises(RuntimeError, match="not started"):
        proxy.down()
    with pytest.raises(RuntimeError, match="not started"):
        _ = proxy.port
    proxy.stop()  # stopping a proxy that never started is a no-op
