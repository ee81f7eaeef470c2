"""A probe's results in the JSON API carry the typed readings the store kept with them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from probe.core.result import Status
from probe.store import Store
from probe.web.data import ConfiguredProbe, StatusSource
from probe.web.server import create_app, start_server
from tests.store.helpers import NOW, Clock, Feeder, make_result

PROBES = [ConfiguredProbe("web", "http", "https://web.example.com/health")]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A server over a real store holding two results of `web`: the newer with readings."""
    store = Store.open(tmp_path / "probe.db", clock=Clock())
    await store.start()
    feeder = Feeder()
    store.submit(feeder.observe(make_result("web", NOW - 120)))
    answered = make_result("web", NOW - 60, Status.DOWN, http_status=503, cert_expiry=1.8e9)
    store.submit(feeder.observe(answered))
    await store.flush()
    app = create_app(StatusSource(store, PROBES, clock=lambda: NOW))
    runner, port = await start_server(app, "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        await runner.cleanup()
        await store.close()


async def test_probe_results_carry_http_status_and_cert_expiry(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/probes/web")
    assert response.status_code == 200
    newest, oldest = response.json()["results"]
    assert newest["status"] == "down"
    assert newest["http_status"] == 503
    # The API's one time format, like every other time it shows.
    assert newest["cert_expiry"] == "2027-01-15T08:00:00.000Z"
    assert (oldest["http_status"], oldest["cert_expiry"]) == (None, None)
