"""A TCP fault proxy for tests: put it between a service and Redis, Postgres or a peer.

One `FaultProxy` listens on one local port and forwards every connection to
one target. Its asyncio loop runs in a thread of its own, so a test (sync or
async) changes the fault at any moment and the change applies at once, to
connections already open as well as new ones:

- `set_latency(seconds, direction=...)`: each chunk is held `seconds` before
  it is passed on (pipelined: a burst of chunks is delayed once, not once per
  chunk); ``"upstream"`` is client to target, ``"downstream"`` the answers.
- `set_bandwidth(bytes_per_second)`: both directions are paced to that rate.
- `reset()`: every open connection and every new one is closed with a TCP RST
  (``SO_LINGER`` 0), as a crashed peer or a middlebox would.
- `blackhole()`: a partitioned network, where only timeouts help. New
  connections are accepted and what they send is swallowed; on open ones
  nothing moves either way, and what was sent meanwhile is delivered after
  `heal()`, as TCP would retransmit it.
- `down()`: the port refuses connections and open ones are cut; `up()` listens
  again on the same port.
- `heal()`: back to a clean pass-through (latency, bandwidth and modes cleared).

    with FaultProxy("127.0.0.1", 6379) as proxy:
        redis_url = f"redis://{proxy.address}/0"   # give this to the service
        proxy.down(); ...; proxy.up()

It is a test tool: no TLS termination, no protocol awareness, bytes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

__all__ = ["Direction", "FaultProxy", "Mode", "ProxyStats"]

Direction = Literal["upstream", "downstream", "both"]
T = TypeVar("T")

CHUNK_SIZE = 65_536
#: Bandwidth pacing slices: small enough that a cap is smooth, large enough to stay cheap.
PACE_SLICES_PER_SECOND = 50
CONTROL_TIMEOUT_SECONDS = 5.0


class Mode(Enum):
    """What the proxy does with connections (latency and bandwidth apply in `PASS` only)."""

    PASS = "pass"  # noqa: S105 - a mode, not a password
    RESET = "reset"
    BLACKHOLE = "blackhole"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """Counters since the proxy started."""

    accepted: int
    """Client connections accepted (in any mode)."""
    active: int
    """Connections open now."""
    reset: int
    """Connections closed with an RST by `reset()`."""
    refused_upstream: int
    """Connections closed because the target itself refused or was unreachable."""


class _Link:
    """One proxied connection: the client side, the target side, and their pumps."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.target: asyncio.StreamWriter | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.target) if w is not None]


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN: linger on, timeout 0."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """A TCP proxy to ``target_host:target_port`` whose faults are set from any thread."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self._listen_port = listen_port
        self.connect_timeout = connect_timeout
        self._mode = Mode.PASS
        self._latency = {"upstream": 0.0, "downstream": 0.0}
        self._bandwidth: float | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        # Cleared while blackholed: held bytes wait on it.
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._accepted = 0
        self._reset = 0
        self._refused_upstream = 0

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> Self:
        """Start the loop thread and listen; the port is fixed from here on (see `port`)."""
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(
            target=run, name=f"fault-proxy:{self.target_port}", daemon=True
        )
        self._thread.start()
        ready.wait()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Cut every connection, stop listening and end the loop thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._call(self._shutdown())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CONTROL_TIMEOUT_SECONDS)
        loop.close()
        self._loop = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- where it is -------------------------------------------------------------
    @property
    def port(self) -> int:
        """The listening port (chosen at start when `listen_port` was 0)."""
        if self._listen_port == 0:
            raise RuntimeError("proxy not started")
        return self._listen_port

    @property
    def address(self) -> str:
        """``host:port`` to give a client instead of the target's."""
        return f"{self.listen_host}:{self.port}"

    @property
    def mode(self) -> Mode:
        return self._mode

    def stats(self) -> ProxyStats:
        return ProxyStats(
            accepted=self._accepted,
            active=len(self._links),
            reset=self._reset,
            refused_upstream=self._refused_upstream,
        )

    # --- faults --------------------------------------------------------------------
    def set_latency(self, seconds: float, *, direction: Direction = "both") -> None:
        """Hold every chunk `seconds` before passing it on, in `direction`."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        for name in ("upstream", "downstream"):
            if direction in (name, "both"):
                self._latency[name] = seconds

    def set_bandwidth(self, bytes_per_second: float | None) -> None:
        """Pace each direction of each connection to `bytes_per_second` (None: no cap)."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bandwidth must be > 0 bytes/s, or None")
        self._bandwidth = bytes_per_second

    def reset(self) -> None:
        """RST every open connection, and every new one until `heal()` or `up()`."""
        self._call(self._set_mode(Mode.RESET))

    def blackhole(self) -> None:
        """Answer nothing: new connections are swallowed, open ones hold their bytes."""
        self._call(self._set_mode(Mode.BLACKHOLE))

    def down(self) -> None:
        """Refuse new connections (the port closes) and cut open ones."""
        self._call(self._set_mode(Mode.DOWN))

    def up(self) -> None:
        """Listen again (after `down`) and pass traffic; latency and bandwidth are kept."""
        self._call(self._set_mode(Mode.PASS))

    def heal(self) -> None:
        """A clean pass-through again: no latency, no cap, no mode."""
        self._latency = {"upstream": 0.0, "downstream": 0.0}
        self._bandwidth = None
        self.up()

    # --- inside the loop -------------------------------------------------------------
    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("proxy not started")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=CONTROL_TIMEOUT_SECONDS)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self._listen_port, reuse_address=True
        )
        self._listen_port = int(self._server.sockets[0].getsockname()[1])

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _set_mode(self, mode: Mode) -> None:
        previous, self._mode = self._mode, mode
        if mode is Mode.BLACKHOLE:
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode is Mode.DOWN:
            # Links first: from 3.12 closing a server waits for its open connections.
            for link in list(self._links):
                self._drop(link, rst=False)
            await self._close_listener()
        elif previous is Mode.DOWN:
            await self._listen()
        if mode is Mode.RESET:
            for link in list(self._links):
                self._reset += 1
                self._drop(link, rst=True)

    async def _shutdown(self) -> None:
        for link in list(self._links):
            self._drop(link, rst=False)
        await self._close_listener()
        # Let every connection handler finish before the loop closes under it.
        handlers = list(self._handlers)
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def _drop(self, link: _Link, *, rst: bool) -> None:
        for task in link.tasks:
            task.cancel()
        for writer in link.writers():
            if rst:
                _rst(writer)
            else:
                writer.transport.abort()
        self._links.discard(link)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        self._accepted += 1
        link = _Link(writer)
        if self._mode is Mode.RESET:
            self._reset += 1
            _rst(writer)
            return
        if self._mode is Mode.DOWN:
            # Accepted just before the listener closed: cut, as down() cuts the others.
            writer.transport.abort()
            return
        self._links.add(link)
        try:
            if self._mode is Mode.BLACKHOLE:
                await self._swallow(reader)
                return
            try:
                async with asyncio.timeout(self.connect_timeout):
                    target_reader, target_writer = await asyncio.open_connection(
                        self.target_host, self.target_port
                    )
            except (OSError, TimeoutError):
                self._refused_upstream += 1
                return
            link.target = target_writer
            pumps = [
                asyncio.create_task(self._pump(reader, target_writer, "upstream")),
                asyncio.create_task(self._pump(target_reader, writer, "downstream")),
            ]
            link.tasks.update(pumps)
            # Either side ending ends the connection (a half-close is rare enough in tests).
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in link.tasks:
                task.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
            if link in self._links:
                self._drop(link, rst=False)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(CHUNK_SIZE):
                pass

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Literal["upstream", "downstream"],
    ) -> None:
        """Copy bytes one way, through a queue so that latency is added once per chunk."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                # A partition holds bytes (TCP would retransmit them later); it never drops them.
                await self._flowing.wait()
                await self._write(writer, data)

        delivery = asyncio.create_task(deliver())
        try:
            while True:
                try:
                    data = await reader.read(CHUNK_SIZE)
                except OSError:
                    data = b""
                queue.put_nowait((time.monotonic() + self._latency[direction], data))
                if not data:
                    break
            await delivery
        except OSError:
            pass  # the other side went away: the connection ends, which is the caller's cue
        finally:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await delivery

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        rate = self._bandwidth
        if rate is None:
            writer.write(data)
            await writer.drain()
            return
        step = max(1, int(rate / PACE_SLICES_PER_SECOND))
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(len(piece) / rate)
