"""Fixtures the notification tests share: an HTTP client, a store, the local webhook server
and a fresh metrics registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from probe.notify.metrics import NotifyMetrics
from probe.store import Store
from tests.notify.webhook_server import WebhookServer


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "probe.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    s = Store.open(db)
    await s.start()
    yield s
    await s.close()


@pytest.fixture
async def server(web_server) -> WebhookServer:
    s = WebhookServer()
    await s.start(web_server)
    return s


@pytest.fixture
def metrics() -> NotifyMetrics:
    return NotifyMetrics(CollectorRegistry())
