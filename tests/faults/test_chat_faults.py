"""Chat APIs that fail: answering 500, answering 429 with Retry-After, hanging. Local stand-ins
for Slack's and Telegram's APIs (tests/notify/fake_apis.py) take the real notifiers' requests;
the real Dispatcher delivers through the real store's outbox. Every notification must reach
every channel exactly once, Retry-After must be waited out, and a hanging API must hold up
neither the other channels nor the probes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from probe.config.models import RetrySettings
from probe.core.result import Result, Status
from probe.core.scheduler import Scheduler
from probe.notify.base import NotifyContext
from probe.notify.dispatch import Dispatcher
from probe.notify.metrics import NotifyMetrics
from probe.notify.slack import SlackNotifier, SlackSpec
from probe.notify.telegram import TelegramNotifier, TelegramSpec
from probe.notify.templates import Templates
from probe.probers.base import SharedResources
from probe.probers.http import HTTPProber, HTTPSpec
from probe.store import Store
from tests.faults import servers
from tests.faults.servers import FaultServer
from tests.notify.fake_apis import TELEGRAM_TOKEN, FakeSlack, FakeTelegram, Reply, down

pytestmark = pytest.mark.slow

NOTIFICATIONS = 5
RETRY_AFTER = 1


class CountingSlack(FakeSlack):
    """FakeSlack that also keeps the payloads it accepted (answered 200 "ok")."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[Any] = []
        self.times: list[float] = []

    async def answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        response = await super().answer(request, body)
        if response.status == 200:
            self.accepted.append(json.loads(body))
        return response


class TimedTelegram(FakeTelegram):
    """FakeTelegram that notes when each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append(time.monotonic())
        return await super()._handle(request)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store.open(tmp_path / "probe.db")
    await s.start()
    yield s
    await s.close()


def outbox(db: Path) -> dict[str, list[tuple[str, int]]]:
    """notifier -> [(state, attempts)] of its outbox rows."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT notifier, state, attempts FROM outbox").fetchall()
    finally:
        conn.close()
    found: dict[str, list[tuple[str, int]]] = {}
    for notifier, state, attempts in rows:
        found.setdefault(notifier, []).append((state, attempts))
    return found


def names_in(payloads: list[Any]) -> list[str]:
    """Which of the test's probes each accepted payload was about."""
    return [
        f"p{i}"
        for payload in payloads
        for i in range(NOTIFICATIONS)
        if f"chat-fault-p{i}" in json.dumps(payload)
    ]


async def test_500_429_and_a_hang_lose_nothing_duplicate_nothing_and_block_nothing(
    web_server, client, store, tmp_path, fault_figures
):
    failing, hanging, telegram = CountingSlack(), CountingSlack(), TimedTelegram()
    for fake in (failing, hanging, telegram):
        fake.base = await web_server(fake.app)
    failing.script(Reply(500, text="internal_error"), times=3)
    telegram.script(
        Reply(
            429,
            json={
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {RETRY_AFTER}",
                "parameters": {"retry_after": RETRY_AFTER},
            },
            headers={"Retry-After": str(RETRY_AFTER)},
        )
    )
    # Longer than the notifier's timeout: the first two sends hang, then it answers.
    hanging.script(Reply(200, text="ok", delay=10.0), times=2)

    context = NotifyContext(http=client, templates=Templates(), timeout=5.0, dry=False)
    notifiers = [
        SlackNotifier(SlackSpec(name="slack-500", webhook=failing.url), context),
        SlackNotifier(SlackSpec(name="slack-hang", webhook=hanging.url, timeout="400ms"), context),
        TelegramNotifier(
            TelegramSpec(name="tg", token=TELEGRAM_TOKEN, chat_id="42", api_url=telegram.base),
            context,
        ),
    ]
    dispatcher = Dispatcher(
        notifiers,
        store,
        retry=RetrySettings(times=2, interval="50ms"),
        outbox_interval=0.3,
        metrics=NotifyMetrics(CollectorRegistry()),
    )

    # Probes run beside it all: a hanging chat API must not hold them up.
    resources = SharedResources()
    healthy = await FaultServer(servers.healthy).start()
    probes = [
        HTTPProber(
            HTTPSpec(name=f"web-{i}", url=healthy.url(), timeout="1s", interval="0.1s"), resources
        )
        for i in range(5)
    ]
    results: list[Result] = []
    scheduler = Scheduler(probes, results.append)

    await dispatcher.start()
    scheduler.start()
    started = time.monotonic()
    try:
        sent = [down(probe=f"chat-fault-p{i}") for i in range(NOTIFICATIONS)]
        for notification in sent:
            assert dispatcher.notify(notification, []) == 3
        # The 500s and the 429 are over and done with while the hanging API still hangs.
        async with asyncio.timeout(10):
            while len(failing.accepted) < NOTIFICATIONS or len(telegram.messages) < NOTIFICATIONS:
                await asyncio.sleep(0.02)
        others_done = time.monotonic() - started
        checks_meanwhile = len(results)
        async with asyncio.timeout(15):
            while dispatcher.pending:
                await asyncio.sleep(0.02)
        all_done = time.monotonic() - started
    finally:
        await scheduler.stop(grace=1)
        await dispatcher.stop(grace=1)
        await healthy.stop()
        await resources.aclose()

    # Retry-After honoured: the 429'd message came back no sooner than it asked.
    retry_gap = telegram.arrivals[NOTIFICATIONS] - telegram.arrivals[0]
    fault_figures.add(
        f"chat APIs (500 x3, 429 Retry-After {RETRY_AFTER}s, hang x2 past a 400 ms timeout): "
        f"{NOTIFICATIONS} notifications x 3 channels; healthy channels done in "
        f"{others_done * 1000:.0f} ms, the hanging one in {all_done * 1000:.0f} ms; "
        f"429 retried after {retry_gap * 1000:.0f} ms; {checks_meanwhile} probe checks meanwhile"
    )
    assert retry_gap >= RETRY_AFTER - 0.05
    # Exactly once per channel: nothing lost, nothing twice.
    expected = sorted(f"p{i}" for i in range(NOTIFICATIONS))
    assert sorted(names_in(failing.accepted)) == expected
    assert sorted(names_in(hanging.accepted)) == expected
    assert sorted(names_in(telegram.messages)) == expected
    rows = outbox(tmp_path / "probe.db")
    for name in ("slack-500", "slack-hang", "tg"):
        assert [state for state, _ in rows[name]] == ["delivered"] * NOTIFICATIONS, rows
    assert sum(attempts for _, attempts in rows["slack-500"]) == NOTIFICATIONS + 3
    assert sum(attempts for _, attempts in rows["slack-hang"]) == NOTIFICATIONS + 2
    # The probes went on being checked while the API hung (every one, more than once).
    meanwhile = [r.name for r in results[:checks_meanwhile]]
    assert all(meanwhile.count(f"web-{i}") >= 2 for i in range(5)), meanwhile
    assert all(r.status is Status.UP for r in results)
