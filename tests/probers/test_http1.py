"""The plain-HTTP exchange (probers/_http1.py) against hand-written servers: the answers a
real server may give and the ones a hostile one may, each through a real http probe check."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest

from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.probers._http1 import MAX_HEAD
from probe.probers.http import HTTPProber, HTTPSpec


async def answer_with(raw_server: Any, reply: bytes, *, then_close: bool = True) -> str:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        if then_close:
            writer.close()

    server = await raw_server(handle)
    return f"http://{server.address}/"


async def check(resources: Any, url: str, **keys: Any) -> Any:
    spec = HTTPSpec(name="w", url=url, timeout="3s", **keys)
    return (await run_check(HTTPProber(spec, resources))).result


@pytest.mark.parametrize(
    ("reply", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            "hello",
        ),
        (b"HTTP/1.0 200 OK\r\n\r\nhello until the end", "hello until the end"),  # no length
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
            + str(len(gzip.compress(b"zipped"))).encode()
            + b"\r\n\r\n"
            + gzip.compress(b"zipped"),
            "zipped",
        ),
    ],
)
async def test_answers(raw_server: Any, resources: Any, reply: bytes, body: str) -> None:
    url = await answer_with(raw_server, reply)
    result = await check(resources, url, contain=body, with_output=True)
    assert result.status is Status.UP, result.message
    assert body in result.message


async def test_http_version_and_status_reach_the_details(raw_server: Any, resources: Any) -> None:
    url = await answer_with(raw_server, b"HTTP/1.0 503 Busy\r\nContent-Length: 0\r\n\r\n")
    result = await check(resources, url)
    assert result.status is Status.DOWN and result.message == "status 503 not in 200-399"
    assert result.details["http_version"] == "HTTP/1.0" and result.http_status == 503


async def test_head_reads_no_body(raw_server: Any, resources: Any) -> None:
    # A HEAD answer announces a length it does not send: waiting for it would time out.
    url = await answer_with(
        raw_server, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", then_close=False
    )
    result = await check(resources, url, method="HEAD")
    assert result.status is Status.UP, result.message


async def test_an_endless_head_is_cut(raw_server: Any, resources: Any) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        try:
            for i in range(100_000):  # far past the cap, as fast as the client reads
                writer.write(b"X-Filler-%d: %s\r\n" % (i, b"y" * 100))
                await writer.drain()
        except ConnectionError:
            pass

    server = await raw_server(handle)
    result = await check(resources, f"http://{server.address}/")
    assert result.status is Status.DOWN
    assert (
        result.message
        == f"invalid HTTP response: the response head is longer than {MAX_HEAD // 1024} KiB"
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"", "server closed the connection without answering"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "server closed the connection without answering"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "server closed the connection before the body was complete",
        ),
        (b"HTTP/1.1 2OO OK\r\n\r\n", "invalid HTTP response"),
    ],
)
async def test_broken_answers(raw_server: Any, resources: Any, reply: bytes, message: str) -> None:
    url = await answer_with(raw_server, reply)
    result = await check(resources, url)
    assert result.status is Status.DOWN
    assert result.message.startswith(message), result.message


@pytest.mark.parametrize(("url", "port"), [("http://127.0.0.1/", 80), ("https://127.0.0.1/", 443)])
async def test_a_url_without_a_port_goes_to_its_schemes(
    resources: Any, url: str, port: int
) -> None:
    # Nothing listens on loopback's 80 and 443 here: the refusal names the port tried.
    result = await check(resources, url)
    assert result.status is Status.DOWN and result.message == "connection refused"
    assert result.details["peer"] == f"127.0.0.1:{port}"
