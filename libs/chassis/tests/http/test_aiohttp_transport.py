"""`transport = "aiohttp"`: the same client behaviour over aiohttp's pool, against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from chassis.http import UpstreamBadGateway, UpstreamTimeout, UpstreamUnavailable
from chassis.testing.processes import free_port


@pytest.fixture
async def real_upstream() -> AsyncIterator[str]:
    """An aiohttp server on loopback: a JSON answer, a 503-then-200 path, a streamed body."""
    calls = {"flaky": 0}

    async def thing(request: web.Request) -> web.Response:
        return web.json_response(
            {"id": request.match_info["thing_id"], "echo": request.headers.get("X-Echo")},
            headers={"ETag": '"v1"'},
        )

    async def flaky(_request: web.Request) -> web.Response:
        calls["flaky"] += 1
        return web.Response(status=503 if calls["flaky"] == 1 else 200, text="done")

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for part in (b"01234", b"56789"):
            await response.write(part)
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "path": request.raw_path,
                "accept": request.headers.getall("Accept"),
                "body": (await request.read()).decode(),
            }
        )

    app = web.Application()
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/things/{thing_id}", thing)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/big", big)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_aiohttp_transport_answers_with_status_headers_and_body(
    make_upstream_client, real_upstream
):
    client = make_upstream_client(base_url=real_upstream, transport="aiohttp")

    response = await client.get("/things/7", headers={"X-Echo": "hello"})

    assert response.status_code == 200
    assert response.headers["etag"] == '"v1"'
    assert response.json() == {"id": "7", "echo": "hello"}


async def test_aiohttp_transport_keeps_the_retry_policy(make_upstream_client, real_upstream):
    client = make_upstream_client(base_url=real_upstream, transport="aiohttp")

    response = await client.get("/flaky")

    assert response.status_code == 200
    assert response.text == "done"


async def test_aiohttp_transport_streams_the_body(make_upstream_client, real_upstream):
    client = make_upstream_client(base_url=real_upstream, transport="aiohttp")

    async with client.stream("GET", "/big") as response:
        chunks = [chunk async for chunk in response.aiter_bytes()]

    assert b"".join(chunks) == b"0123456789"
    assert response.is_closed


async def test_aiohttp_transport_maps_a_closed_port_to_503(make_upstream_client, closed_port):
    client = make_upstream_client(
        base_url=f"http://127.0.0.1:{closed_port}", transport="aiohttp", retry_attempts=2
    )

    with pytest.raises(UpstreamUnavailable):
        await client.get("/things/1")


async def test_aiohttp_transport_maps_a_dropped_answer_to_502_without_retrying_a_post(
    make_upstream_client,
):
    received: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()  # the request arrived; the answer never comes

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = make_upstream_client(base_url=f"http://127.0.0.1:{port}", transport="aiohttp")
        with pytest.raises(UpstreamBadGateway):
            await client.post("/orders", json={"sku": "A"})
    finally:
        server.close()
        await server.wait_closed()

    assert len(received) == 1  # a POST that may have been processed is never sent twice


async def test_aiohttp_transport_sends_repeated_headers_as_they_were_given(
    make_upstream_client, real_upstream
):
    client = make_upstream_client(base_url=real_upstream, transport="aiohttp")

    response = await client.get(
        "/echo/x", headers=[("Accept", "text/plain"), ("Accept", "application/json")]
    )

    assert response.json()["accept"] == ["text/plain", "application/json"]


async def test_the_same_target_twice_keeps_its_encoding_query_and_body(
    make_upstream_client, real_upstream
):
    # The second call takes the cached absolute URL: it must be the first one's.
    client = make_upstream_client(base_url=real_upstream, transport="aiohttp")

    answers = [
        (await client.post("/echo/a%2Fb?q=1&q=2", content=f"n={n}".encode())).json()
        for n in range(2)
    ]

    assert [answer["path"] for answer in answers] == ["/echo/a%2Fb?q=1&q=2"] * 2
    assert [answer["body"] for answer in answers] == ["n=0", "n=1"]


async def test_a_base_url_path_prefixes_every_target_and_params_still_merge(
    make_upstream_client, real_upstream
):
    client = make_upstream_client(base_url=f"{real_upstream}/echo", transport="aiohttp")

    first = await client.get("/items", params={"page": "2"})
    second = await client.get("/items")

    assert first.json()["path"] == "/echo/items?page=2"
    assert second.json()["path"] == "/echo/items"


async def test_aiohttp_transport_maps_a_silent_upstream_to_504(make_upstream_client):
    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # no answer; returns once the client gives up and hangs up
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = make_upstream_client(
            base_url=f"http://127.0.0.1:{port}",
            transport="aiohttp",
            read_timeout_seconds=0.2,
            retry_attempts=1,
            real_sleep=True,
        )
        with pytest.raises(UpstreamTimeout):
            await client.get("/things/1")
    finally:
        server.close()
        await server.wait_closed()
