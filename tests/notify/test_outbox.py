"""The outbox's side of delivery: after the quick retries, retries until max_age then a drop;
what is pending survives stop and restart, and goes out once."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from probe.config.models import RetrySettings
from probe.notify.dispatch import Dispatcher
from probe.notify.metrics import NotifyMetrics
from probe.store import Store
from tests.notify.webhook_server import Answer, WebhookServer, notification, webhook_notifier

QUICK = RetrySettings(times=2, interval="50ms")


def states(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT state, attempts FROM outbox ORDER BY created").fetchall()
    finally:
        conn.close()


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_api_down_longer_than_the_quick_retries_then_up_delivers_once(
    client, store, server, metrics, db
) -> None:
    # 1 try + 2 quick retries fail, then two rounds of the outbox fail; the third works.
    server.answer(Answer(503, "maintenance"), times=5)
    notifier = webhook_notifier(client, "ops", server.base + "/x")
    dispatcher = Dispatcher([notifier], store, retry=QUICK, outbox_interval=0.2, metrics=metrics)
    await dispatcher.start()
    n = notification(probe="db")
    dispatcher.notify(n, [])
    await server.wait_for(1)
    await dispatcher.drain()
    await asyncio.sleep(0.5)  # a few more outbox rounds: nothing more may be sent
    await dispatcher.stop()
    assert [h.status for h in server.hits] == [503] * 5 + [200]
    assert [h.json["id"] for h in server.accepted] == [n.id]
    assert states(db) == [("delivered", 6)]
    assert metrics.value("ops", "sent") == 1
    # The outbox rounds are `outbox_interval` apart.
    assert server.hits[4].at - server.hits[3].at >= 0.19


async def test_max_age_drops_with_a_log_line_and_a_metric(
    client, store, server, metrics, db, caplog
) -> None:
    server.default = Answer(503, "down for good")
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        store,
        retry=QUICK,
        max_age=0.6,
        outbox_interval=0.15,
        metrics=metrics,
    )
    await dispatcher.start()
    with caplog.at_level(logging.INFO, logger="probe.notify"):
        dispatcher.notify(notification(probe="db"), [])
        await wait_until(lambda: dispatcher.pending == 0)
    tried = len(server.hits)
    await asyncio.sleep(0.4)
    await dispatcher.stop()
    assert 3 <= tried == len(server.hits)  # nothing after the drop
    assert states(db) == [("dropped", tried)]
    assert metrics.value("ops", "dropped") == 1 and metrics.value("ops", "sent") == 0
    assert "dropping the down notification for db: not delivered within 600ms" in caplog.text
    assert "answered 503: down for good" in caplog.text
    assert metrics.outbox_pending._value.get() == 0


async def test_stop_leaves_sends_past_the_grace_pending_and_a_restart_delivers_them(
    client, db, server, web_server
) -> None:
    server.default = Answer(200, "late", delay=3.0)
    store = Store.open(db)
    await store.start()
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x", timeout=10)],
        store,
        metrics=NotifyMetrics(CollectorRegistry()),
    )
    await dispatcher.start()
    n = notification(probe="db")
    dispatcher.notify(n, [])
    await wait_until(lambda: server.in_flight == 1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await dispatcher.stop(grace=0.3)
    assert loop.time() - start < 1.0
    await store.close()
    assert states(db) == [("pending", 1)]

    # The next run: the API is healthy again.
    healthy = WebhookServer()
    await healthy.start(web_server)
    store = Store.open(db)
    await store.start()
    metrics = NotifyMetrics(CollectorRegistry())
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", healthy.base + "/x")], store, metrics=metrics
    )
    await dispatcher.start()
    await healthy.wait_for(1)
    await dispatcher.drain()
    await dispatcher.stop()
    await store.close()
    assert [h.json["id"] for h in healthy.hits] == [n.id]
    assert states(db) == [("delivered", 2)]
    assert metrics.value("ops", "sent") == 1


async def test_stop_does_not_wait_for_retries_that_are_waiting(
    client, store, server, metrics, db
) -> None:
    server.default = Answer(503, "busy")
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        store,
        retry=RetrySettings(times=3, interval="10s"),
        metrics=metrics,
    )
    await dispatcher.start()
    dispatcher.notify(notification(), [])
    await server.wait_for(1, accepted=False)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await dispatcher.stop(grace=5)
    assert loop.time() - start < 1.0
    assert states(db) == [("pending", 1)]


async def test_rows_of_a_notifier_no_longer_configured_are_dropped(
    client, db, server, caplog
) -> None:
    store = Store.open(db)
    await store.start()
    old = Dispatcher(
        [webhook_notifier(client, "gone", "http://127.0.0.1:9/x")],
        store,
        retry=RetrySettings(times=0, interval="1s"),
        metrics=NotifyMetrics(CollectorRegistry()),
    )
    await old.start()
    old.notify(notification(probe="db"), [])
    await old.drain()
    await old.stop()
    assert states(db) == [("pending", 1)]

    metrics = NotifyMetrics(CollectorRegistry())
    new = Dispatcher([webhook_notifier(client, "ops", server.base + "/x")], store, metrics=metrics)
    with caplog.at_level(logging.WARNING, logger="probe.notify"):
        await new.start()
        await new.drain()
    await new.stop()
    await store.close()
    assert server.hits == []
    assert states(db) == [("dropped", 1)]
    assert "was for notifier 'gone', which is no longer configured" in caplog.text
    assert metrics.value("gone", "dropped") == 1


async def test_a_pending_row_older_than_max_age_is_dropped_at_start(client, db, server) -> None:
    store = Store.open(db)
    await store.start()
    first = Dispatcher(
        [webhook_notifier(client, "ops", "http://127.0.0.1:9/x")],
        store,
        retry=RetrySettings(times=0, interval="1s"),
        metrics=NotifyMetrics(CollectorRegistry()),
    )
    await first.start()
    first.notify(notification(), [])
    await first.drain()
    await first.stop()
    await asyncio.sleep(0.3)
    second = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        store,
        max_age=0.2,
        metrics=NotifyMetrics(CollectorRegistry()),
    )
    await second.start()
    await second.drain()
    await second.stop()
    await store.close()
    assert server.hits == []
    assert states(db) == [("dropped", 1)]
