"""The dispatcher with a real store and real webhook servers: the outbox row committed before
the send, quick retries, Retry-After, permanent refusals, dry runs, bounded concurrency, and
notify() never waiting for a slow API."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from probe.config.models import RetrySettings
from probe.notify.dispatch import Dispatcher
from probe.notify.metrics import NotifyMetrics
from probe.store import Store
from tests.notify.webhook_server import Answer, WebhookServer, notification, webhook_notifier

SECRET = "/hook/s3cret-path"


def rows(store: Store) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(
            "SELECT id, notifier, state, attempts, last_error, delivered_at IS NOT NULL"
            " FROM outbox ORDER BY created, id"
        ).fetchall()
    finally:
        conn.close()


async def test_delivered_once_and_recorded(client, store, server, metrics) -> None:
    notifier = webhook_notifier(client, "ops", server.base + SECRET)
    dispatcher = Dispatcher([notifier], store, metrics=metrics)
    await dispatcher.start()
    n = notification(probe="db")
    assert dispatcher.notify(n, []) == 1
    assert dispatcher.pending == 1
    await dispatcher.drain()
    await dispatcher.stop()
    assert [h.json["id"] for h in server.hits] == [n.id]
    assert rows(store) == [(f"{n.id}:ops", "ops", "delivered", 1, None, 1)]
    assert metrics.value("ops", "sent") == 1
    assert metrics.outbox_pending._value.get() == 0


async def test_the_outbox_row_is_committed_before_the_send(client, store, web_server) -> None:
    seen_in_store: list[list[tuple[Any, ...]]] = []

    class Checking(WebhookServer):
        async def _handle(self, request):
            # While the request is being made, the row is already on disk.
            seen_in_store.append(rows(store))
            return await super()._handle(request)

    server = Checking()
    await server.start(web_server)
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        store,
        metrics=NotifyMetrics(CollectorRegistry()),
    )
    await dispatcher.start()
    n = notification()
    dispatcher.notify(n, [])
    await dispatcher.drain()
    await dispatcher.stop()
    assert seen_in_store == [[(f"{n.id}:ops", "ops", "pending", 0, None, 0)]]


@pytest.mark.slow
async def test_quick_retries_double_the_interval(client, store, server, metrics) -> None:
    server.answer(Answer(503, "busy"), times=2)
    notifier = webhook_notifier(client, "ops", server.base + "/x")
    dispatcher = Dispatcher(
        [notifier], store, retry=RetrySettings(times=3, interval="0.1s"), metrics=metrics
    )
    await dispatcher.start()
    dispatcher.notify(notification(), [])
    await dispatcher.drain()
    await dispatcher.stop()
    assert [h.status for h in server.hits] == [503, 503, 200]
    gaps = [b.at - a.at for a, b in zip(server.hits, server.hits[1:], strict=False)]
    assert 0.09 <= gaps[0] < 0.5 and 0.19 <= gaps[1] < 0.7, gaps
    assert rows(store)[0][2:4] == ("delivered", 3)
    assert metrics.value("ops", "sent") == 1 and metrics.value("ops", "failed") == 0


async def test_per_notifier_retry_overrides_the_settings(client, store, server, metrics) -> None:
    server.default = Answer(503, "down")
    notifier = webhook_notifier(
        client, "ops", server.base + "/x", retry={"times": 1, "interval": "50ms"}
    )
    dispatcher = Dispatcher(
        [notifier], store, retry=RetrySettings(times=5, interval="0.05s"), metrics=metrics
    )
    await dispatcher.start()
    dispatcher.notify(notification(), [])
    await dispatcher.drain()
    await dispatcher.stop()
    assert len(server.hits) == 2  # the first try and one retry, then the outbox waits
    ((_, _, state, attempts, error, _),) = rows(store)
    assert (state, attempts) == ("pending", 2) and "answered 503" in error


@pytest.mark.slow
async def test_retry_after_is_honoured(client, store, server, metrics) -> None:
    server.answer(Answer(429, "rate limited", {"Retry-After": "1"}))
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        store,
        retry=RetrySettings(times=2, interval="0.05s"),
        metrics=metrics,
    )
    await dispatcher.start()
    dispatcher.notify(notification(), [])
    await dispatcher.drain()
    await dispatcher.stop()
    first, second = server.hits
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.95


async def test_a_4xx_is_not_retried_and_its_text_is_logged_without_the_path(
    client, store, server, metrics, caplog
) -> None:
    server.default = Answer(
        401,
        json.dumps({"error": "invalid_token", "message": f"no hook at {SECRET}"}),
        {"Content-Type": "application/json"},
    )
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + SECRET)],
        store,
        retry=RetrySettings(times=3, interval="0.05s"),
        metrics=metrics,
    )
    await dispatcher.start()
    with caplog.at_level(logging.INFO, logger="probe.notify"):
        dispatcher.notify(notification(probe="db"), [])
        await dispatcher.drain()
    await dispatcher.stop()
    assert len(server.hits) == 1
    ((_, _, state, attempts, error, delivered),) = rows(store)
    assert (state, attempts, delivered) == ("failed", 1, 0)
    assert "401" in error and "no hook at" in error and "s3cret" not in error
    assert "down notification for db refused" in caplog.text and "no hook at" in caplog.text
    assert "s3cret" not in caplog.text
    assert metrics.value("ops", "failed") == 1 and dispatcher.pending == 0


@pytest.mark.parametrize("where", ["notifier", "settings"])
async def test_dry_run_sends_nothing_and_logs_the_payload(
    client, store, server, metrics, caplog, where
) -> None:
    notifier = webhook_notifier(
        client,
        "ops",
        server.base + SECRET + "?token=s3cret",
        headers={"Authorization": "Bearer s3cret"},
        **({"dry": True} if where == "notifier" else {}),
    )
    if where == "settings":
        notifier.context.dry = True  # what settings.notify.dry / --dry-notify set
    dispatcher = Dispatcher([notifier], store, metrics=metrics)
    await dispatcher.start()
    n = notification(probe="db", message="refused")
    with caplog.at_level(logging.INFO, logger="probe.notify"):
        dispatcher.notify(n, [])
        await dispatcher.drain()
    await dispatcher.stop()
    assert server.hits == []
    (line,) = [r.getMessage() for r in caplog.records if "dry run" in r.getMessage()]
    assert f"to {server.base}: " in line
    payload = json.loads(line.split(f"to {server.base}: ", 1)[1])
    assert payload == json.loads(notifier.render(n))
    assert "s3cret" not in caplog.text
    assert rows(store)[0][2] == "delivered"
    assert metrics.value("ops", "dry") == 1 and metrics.value("ops", "sent") == 0


@pytest.mark.slow
async def test_notify_never_waits_and_sends_are_bounded(client, store, server, metrics) -> None:
    server.default = Answer(200, "ok", delay=0.15)
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x", timeout=5)],
        store,
        concurrency=8,
        metrics=metrics,
    )
    await dispatcher.start()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    started = time.perf_counter()
    for i in range(80):
        dispatcher.notify(notification(probe=f"p{i}"), [])
    assert time.perf_counter() - started < 0.1  # queued, not sent
    await dispatcher.drain()
    tick_task.cancel()
    await dispatcher.stop()
    assert len(server.accepted) == 80
    assert server.max_in_flight == 8
    # 80 sends of 0.15 s, 8 at a time, take ~1.5 s; the loop kept ticking all along.
    assert ticks > 50
    assert store.outbox_count("delivered") == 80


async def test_the_same_notification_twice_is_one_delivery(client, store, server, metrics) -> None:
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")], store, metrics=metrics
    )
    await dispatcher.start()
    n = notification()
    dispatcher.notify(n, [])
    dispatcher.notify(n, ["__default_channel__"])
    await dispatcher.drain()
    await dispatcher.stop()
    assert len(server.hits) == 1


async def test_notify_after_stop_is_refused_with_a_log_line(client, store, metrics, caplog) -> None:
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", "http://127.0.0.1:9/x")], store, metrics=metrics
    )
    await dispatcher.start()
    await dispatcher.stop()
    with caplog.at_level(logging.WARNING, logger="probe.notify"):
        assert dispatcher.notify(notification(probe="late"), []) == 0
    assert "down notification for late not sent: alerting has stopped" in caplog.text
