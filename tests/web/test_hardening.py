"""Holes a hostile pass found in the web layer (issue 9): refresh durations, the icon, empty
credentials, badges for names XML cannot hold. Real server over loopback, real store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from probe.store import Store
from probe.web.data import StatusSource
from probe.web.server import create_app, start_server
from tests.store.helpers import NOW, Clock
from tests.web.pagedom import PageDOM
from tests.web.test_server import PROBES, fill

Serve = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[Store]:
    s = Store.open(tmp_path / "probe.db", clock=Clock())
    await s.start()
    await fill(s)
    yield s
    await s.close()


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
async def test_refresh_accepts_durations(serve: Serve, given: str, meta: str) -> None:
    async with await serve() as client:
        response = await client.get("/", params={"refresh": given})
    assert response.status_code == 200, response.text
    assert PageDOM(response.text).refresh == meta


@pytest.mark.parametrize("given", ["4s", "4", "1h1s", "2h", "-30s", "banana", "30x", "1e3", "nan"])
async def test_refresh_out_of_bounds_or_garbage_is_400(serve: Serve, given: str) -> None:
    async with await serve() as client:
        response = await client.get("/", params={"refresh": given})
    assert response.status_code == 400
    assert "refresh" in response.json()["error"]


# --- 6. badges for names XML cannot hold -------------------------------------------------------


async def test_badge_for_a_control_character_name_is_xml_over_http(store: Store) -> None:
    import xml.etree.ElementTree as ET
    from urllib.parse import quote

    from probe.web.data import ProbeInfo

    name = "db\x00\x1b[31m\x7f"
    source = StatusSource(store, [ProbeInfo(name, "tcp", "127.0.0.1:9")], clock=lambda: NOW)
    runner, port = await start_server(create_app(source), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get(f"/badge/{quote(name, safe='')}/status.svg")
    finally:
        await runner.cleanup()
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert "unknown" in (root.get("aria-label") or "")
