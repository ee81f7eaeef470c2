"""Holes a hostile pass found in the web layer (issue 9): refresh durations, the icon, empty
credentials, badges for names XML cannot hold. Real server over loopback, real store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from probe.store import Store
from probe.web.data import StatusSource
from probe.web.server import create_app, start_server
from tests.store.helpers import NOW
from tests.web.pagedom import PageDOM
from tests.web.test_server import PROBES

Serve = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def serve(store) -> AsyncIterator[Serve]:
    runners = []

    async def start(**kwargs: object) -> httpx.AsyncClient:
        source = StatusSource(store, PROBES, clock=lambda: NOW)
        runner, port = await start_server(create_app(source, **kwargs), "127.0.0.1", 0)
        runners.append(runner)
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")

    yield start
    for runner in runners:
        await runner.cleanup()


# --- 1. ?refresh= takes EaseProbe's durations ---------------------------------------------------


@pytest.mark.parametrize(
    ("given", "meta"),
    [("30s", "30"), ("30", "30"), ("1m", "60"), ("1m30s", "90"), ("7.2s", "8"), ("1h", "3600")],
)
@pytest.mark.slow
async def test_refresh_accepts_durations(serve: Serve, given: str, meta: str) -> None:
    async with await serve() as client:
        response = await client.get("/", params={"refresh": given})
    assert response.status_code == 200, response.text
    assert PageDOM(response.text).refresh == meta


@pytest.mark.parametrize("given", ["4s", "4", "1h1s", "2h", "-30s", "banana", "30x", "1e3", "nan"])
@pytest.mark.slow
async def test_refresh_out_of_bounds_or_garbage_is_400(serve: Serve, given: str) -> None:
    async with await serve() as client:
        response = await client.get("/", params={"refresh": given})
    assert response.status_code == 400
    assert "refresh" in response.json()["error"]


# --- 6. badges for names XML cannot hold -------------------------------------------------------


@pytest.mark.slow
async def test_badge_for_a_control_character_name_is_xml_over_http(store: Store) -> None:
    import xml.etree.ElementTree as ET
    from urllib.parse import quote

    from probe.web.data import ConfiguredProbe

    name = "db\x00\x1b[31m\x7f"
    source = StatusSource(store, [ConfiguredProbe(name, "tcp", "127.0.0.1:9")], clock=lambda: NOW)
    runner, port = await start_server(create_app(source), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get(f"/badge/{quote(name, safe='')}/status.svg")
    finally:
        await runner.cleanup()
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert "unknown" in (root.get("aria-label") or "")


# --- 3. settings.icon: favicon and header logo -------------------------------------------------


ICON_ATTACK = '/logo.png?x="><script>alert(1)</script>'


async def test_icon_is_the_favicon_and_the_logo_escaped(serve: Serve) -> None:
    async with await serve(icon=ICON_ATTACK) as client:
        response = await client.get("/")
    assert response.status_code == 200
    dom = PageDOM(response.text)
    assert dom.urls.count(ICON_ATTACK) == 2  # <link rel=icon href> and <img src>, intact
    assert "script" not in dom.tags
    assert '<link rel="icon" href="/logo.png?x=&#34;&gt;&lt;script&gt;' in response.text
    assert "img-src 'self' data:;" in response.headers["Content-Security-Policy"]


async def test_absolute_icon_origin_is_allowed_by_the_policy(serve: Serve) -> None:
    async with await serve(icon="https://cdn.example.com:8443/i/logo.svg") as client:
        response = await client.get("/")
    policy = response.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://cdn.example.com:8443;" in policy
    assert "default-src 'none'" in policy


async def test_no_icon_no_link(serve: Serve) -> None:
    async with await serve() as client:
        response = await client.get("/")
    assert 'rel="icon"' not in response.text and 'class="logo"' not in response.text


@pytest.mark.parametrize(
    "icon", ["javascript:alert(1)", " javascript:alert(1)", "java\nscript:x", "data:,x", ""]
)
def test_page_refuses_a_dangerous_icon(store: Store, icon: str) -> None:
    from probe.web.render import StatusPage

    with pytest.raises(ValueError):
        StatusPage(StatusSource(store, PROBES), icon=icon)


# --- 4. empty credentials never let anyone in --------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"token": ""}, {"token": "  "}, {"basic": ("ops", "")}, {"basic": ("", "pw")}],
)
def test_server_refuses_empty_secrets(store: Store, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        create_app(StatusSource(store, PROBES), **kwargs)  # type: ignore[arg-type]


async def raw_status(port: int, path: str, header_lines: bytes = b"") -> int:
    """The status code of a GET sent byte for byte (httpx refuses odd header values)."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET "
            + path.encode()
            + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + header_lines
            + b"\r\n"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    return int(status_line.split()[1])


@pytest.mark.parametrize(
    "header",
    [b"Bearer ", b"Bearer", b"bearer  ", b"Bearer \t", b"Basic ", b"Basic", b"Basic Og==", b" "],
)
async def test_empty_credentials_are_401(store: Store, header: bytes) -> None:
    source = StatusSource(store, PROBES, clock=lambda: NOW)
    app = create_app(source, token="s3cret", basic=("ops", "pw"))
    runner, port = await start_server(app, "127.0.0.1", 0)
    try:
        denied = await raw_status(port, "/api/v1/sla", b"Authorization: " + header + b"\r\n")
        allowed = await raw_status(port, "/api/v1/sla", b"Authorization: Bearer s3cret\r\n")
        bare = await raw_status(port, "/api/v1/sla")
    finally:
        await runner.cleanup()
    assert (denied, allowed, bare) == (401, 200, 401)
