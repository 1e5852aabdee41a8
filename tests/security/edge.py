"""Low-level client pieces for the limit tests: raw HTTP/1.1 over a socket, security headers.

httpx cannot send a body one byte at a time on a schedule or a header block
larger than a server accepts without reacting to it first, so those requests
are written to the socket by hand and the answer's status line and headers
are parsed here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

#: What every HTTP answer of a chassis service carries (SecurityHeadersMiddleware).
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "cross-origin-opener-policy": "same-origin",
}


def assert_security_headers(headers: Mapping[str, str], *, what: str = "") -> None:
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, value in SECURITY_HEADERS.items():
        assert lowered.get(name) == value, f"{what}: {name} is {lowered.get(name)!r}"
    assert "default-src 'none'" in lowered.get("content-security-policy", ""), what
    assert "permissions-policy" in lowered, what


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    #: Seconds from connecting to the end of the answer's head.
    elapsed: float


async def raw_request(
    base_url: str,
    head: str,
    *,
    body_chunks: Sequence[bytes] = (),
    chunk_interval: float = 0.0,
    read_timeout: float = 20.0,
) -> RawResponse:
    """Send `head` (request line and headers, without the blank line), then the body chunks.

    Chunks are written `chunk_interval` apart, and writing stops as soon as the
    server answers. The head is read as soon as it arrives (a server that closes
    with unread input resets the connection, which may lose the body), the body
    when it can be.
    """
    parts = urlsplit(base_url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head.encode("latin-1") + b"\r\n\r\n")
        await writer.drain()

        async def drip() -> None:
            for chunk in body_chunks:
                await asyncio.sleep(chunk_interval)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.create_task(drip())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=read_timeout)
            elapsed = loop.time() - started
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        response = parse_head(head, elapsed)
        length = int(response.headers.get("content-length", "0"))
        try:
            body = await asyncio.wait_for(reader.readexactly(length), timeout=read_timeout)
        except (ConnectionError, asyncio.IncompleteReadError):
            body = b""
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)
    return RawResponse(response.status, response.headers, body, elapsed)


def parse_head(raw: bytes, elapsed: float) -> RawResponse:
    head = raw.removesuffix(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), f"no HTTP answer: {raw[:200]!r}"
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status=status, headers=headers, body=b"", elapsed=elapsed)


def request_head(method: str, base_url: str, path: str, **headers: str) -> str:
    host = urlsplit(base_url).netloc
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines)
