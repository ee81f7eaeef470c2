"""Grouped notifications (settings.notify.group): the config keys, the summary and how every
format shows a big one within its service's limits, and the dispatcher holding, summarising and
delivering through the real outbox to real local receivers."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from probe.app import App
from probe.assembly import load_config
from probe.config.models import GroupSettings, RetrySettings
from probe.notify import load_notifier_class
from probe.notify.base import Event, Notification, NotifyContext
from probe.notify.discord import DiscordNotifier, DiscordSpec
from probe.notify.dispatch import Dispatcher
from probe.notify.grouping import LISTED, MESSAGE_CHARS, counts_text
from probe.notify.slack import SlackNotifier, SlackSpec
from probe.notify.teams import TeamsNotifier, TeamsSpec
from probe.notify.telegram import TelegramNotifier, TelegramSpec
from probe.notify.templates import Templates
from probe.store import Store
from tests.config.conftest import ConfigFiles
from tests.notify.fake_apis import (
    TELEGRAM_TOKEN,
    FakeDiscord,
    FakeSlack,
    FakeTeams,
    FakeTelegram,
    group,
)
from tests.notify.webhook_server import Answer, WebhookServer, notification, webhook_notifier
from tests.support.config import free_http_port


def test_group_settings_defaults_and_keys(tmp_path: Path) -> None:
    files = ConfigFiles(tmp_path)
    assert files.load("settings: {}\n").settings.notify.group == GroupSettings()
    assert (GroupSettings().wait, GroupSettings().threshold) == (5.0, 5)
    text = "settings:\n  notify:\n    group: {wait: 300ms, threshold: 20}\n"
    group = files.load(text).settings.notify.group
    assert (group.wait, group.threshold) == (0.3, 20)
    assert files.load("settings: {notify: {group: {wait: 0s}}}\n").settings.notify.group.wait == 0


def test_bad_group_settings_are_located_errors(tmp_path: Path) -> None:
    files = ConfigFiles(tmp_path)
    text = "settings:\n  notify:\n    group: {wait: -1s, threshold: 0, size: 3}\n"
    assert files.errors(text) == [
        'probes.yaml:3:19: settings.notify.group.wait: invalid duration "-1s": must not be'
        " negative",
        "probes.yaml:3:35: settings.notify.group.threshold: must be at least 1, got 0",
        'probes.yaml:3:38: settings.notify.group.size: unknown key "size"',
    ]


# -- the summary and its templates -----------------------------------------------------------


def test_summary_counts_and_lists_worst_first() -> None:
    note = group(downs=3, recoveries=2)
    assert note.event is Event.GROUP and note.probe is None
    assert note.message == "3 down, 2 recovered" and note.status == "down"
    report = note.report
    assert report["counts"] == {"down": 3, "recovery": 2, "total": 5}
    # downs first, the oldest outage first (probe-002 went down 2 minutes before probe-000)
    assert [row["probe"] for row in report["down"]] == ["probe-002", "probe-001", "probe-000"]
    assert [row["probe"] for row in report["recovery"]] == ["probe-up-000", "probe-up-001"]
    assert report["recovery"][0]["duration_text"] == "2h 5m" and report["more"] == 0
    assert counts_text(0, 3) == "3 recovered" and counts_text(50, 0) == "50 down"


def test_members_beyond_the_listed_ones_are_counted() -> None:
    note = group(downs=LISTED + 10, recoveries=5, message="x " * 200)
    report = note.report
    assert report["counts"] == {"down": LISTED + 10, "recovery": 5, "total": LISTED + 15}
    assert len(report["down"]) == LISTED and report["recovery"] == [] and report["more"] == 15
    message = report["down"][0]["message"]
    assert len(message) == MESSAGE_CHARS and "\n" not in message and message.endswith("…")


def big_group() -> Notification:
    """60 members with long names and long, multi-line messages full of markup."""
    return group(
        downs=45,
        recoveries=15,
        name="service-" + "n" * 90 + "<&>*_",
        message=("connect: connection refused <b>&amp; `x` *y* _z_\n" * 10),
    )


@pytest.mark.parametrize("format", ["text", "markdown", "email"])
def test_plain_formats_list_fifty_and_count_the_rest(format: str) -> None:
    text = Templates().render(format, Event.GROUP, big_group())
    assert "and 10 more" in text
    assert text.count("service-") == LISTED


def test_webhook_document_carries_the_report() -> None:
    document = json.loads(Templates().render("webhook", Event.GROUP, big_group()))
    assert document["event"] == "group" and document["message"] == "45 down, 15 recovered"
    report = document["report"]
    assert report["counts"] == {"down": 45, "recovery": 15, "total": 60}
    assert len(report["down"]) + len(report["recovery"]) == LISTED and report["more"] == 10


@pytest.fixture
async def context() -> AsyncIterator[NotifyContext]:
    async with httpx.AsyncClient() as http:
        yield NotifyContext(http=http, templates=Templates(), timeout=5.0, dry=False)


async def test_slack_takes_a_sixty_member_summary(web_server, context: NotifyContext) -> None:
    api = FakeSlack()
    api.base = await web_server(api.app)
    slack = SlackNotifier(SlackSpec.model_validate({"name": "s", "webhook": api.url}), context)
    payload = slack.render(big_group())
    await slack.send(payload)  # the fake refuses what Slack refuses (block count, sizes)
    assert len(json.dumps(payload["text"])) < 40_000
    assert len(json.dumps(payload, ensure_ascii=False)) < 40_000
    assert "… and 10 more" in json.dumps(payload, ensure_ascii=False)


async def test_discord_takes_a_sixty_member_summary(web_server, context: NotifyContext) -> None:
    api = FakeDiscord()
    api.base = await web_server(api.app)
    spec = DiscordSpec.model_validate({"name": "d", "webhook": api.url})
    discord = DiscordNotifier(spec, context)
    payload = discord.render(big_group())
    await discord.send(payload)  # the fake refuses a description over 4,096, an embed over 6,000
    (embed,) = payload["embeds"]
    assert len(embed["description"]) <= 4096 and embed["description"].endswith(" more")
    assert len(payload.get("content") or "") <= 2000


async def test_telegram_takes_a_sixty_member_summary(web_server, context: NotifyContext) -> None:
    api = FakeTelegram()
    api.base = await web_server(api.app)
    spec = TelegramSpec.model_validate(
        {"name": "t", "token": TELEGRAM_TOKEN, "chat_id": 42, "api_url": api.base}
    )
    telegram = TelegramNotifier(spec, context)
    parts = telegram.render(big_group())
    assert len(parts) == 1  # cut to fit one message, not split
    await telegram.send(parts)  # the fake parses the HTML and counts UTF-16 units
    (message,) = api.messages
    assert "more" in message["text"].splitlines()[-1]
    assert "<b>&amp;" not in message["text"]  # data stays escaped


async def test_teams_takes_a_sixty_member_summary(web_server, context: NotifyContext) -> None:
    api = FakeTeams()
    api.base = await web_server(api.app)
    teams = TeamsNotifier(TeamsSpec.model_validate({"name": "t", "webhook": api.url}), context)
    payload = teams.render(big_group())
    await teams.send(payload)  # the fake refuses a card over 28 KB
    assert "… and 10 more" in json.dumps(payload, ensure_ascii=False)


def test_group_template_override_per_notifier(context: NotifyContext) -> None:
    spec = SlackSpec.model_validate(
        {
            "name": "s",
            "webhook": "http://127.0.0.1:9/hook",
            "template": {"group": '{"text": {{ (report.counts.total ~ " changed") | tojson }}}'},
        }
    )
    assert SlackNotifier(spec, context).render(big_group()) == {"text": "60 changed"}


# -- the dispatcher: windows, summaries, the outbox ------------------------------------------


def outbox(store: Store) -> list[tuple[str, str, str, int]]:
    """(notifier, state, probe, attempts) per outbox row, oldest first."""
    conn = sqlite3.connect(store.path)
    try:
        found = conn.execute(
            "SELECT notifier, state, notification, attempts FROM outbox ORDER BY created, id"
        ).fetchall()
    finally:
        conn.close()
    return [(name, state, json.loads(data)["probe"], tries) for name, state, data, tries in found]


def downs(count: int, *, first: int = 0) -> list[Notification]:
    """`count` downs of p-000, p-001, ...; a later probe's outage began earlier."""
    return [
        notification(probe=f"p-{index:03d}", outage_start=1714557600.0 - index)
        for index in range(first, first + count)
    ]


class Clock:
    """A clock the test moves: the windows close by it, never by the wall."""

    def __init__(self) -> None:
        self.now = 1714557600.0

    def __call__(self) -> float:
        return self.now


def grouping(wait: str = "0.3s", threshold: int = 5) -> GroupSettings:
    return GroupSettings.model_validate({"wait": wait, "threshold": threshold})


async def test_a_burst_becomes_one_summary_per_notifier(
    client, store, server, web_server, metrics
) -> None:
    other = WebhookServer()
    await other.start(web_server)
    notifiers = [
        webhook_notifier(client, "ops", server.base + "/ops"),
        webhook_notifier(client, "oncall", other.base + "/oncall"),
    ]
    dispatcher = Dispatcher(notifiers, store, metrics=metrics, group=grouping())
    await dispatcher.start()
    for n in downs(50):
        dispatcher.notify(n, [])
    await server.wait_for(1)
    await other.wait_for(1)
    await dispatcher.drain()
    await dispatcher.stop()
    for receiver in (server, other):
        (hit,) = receiver.hits  # exactly one message each
        summary = hit.json
        assert summary["event"] == "group" and summary["message"] == "50 down"
        report = summary["report"]
        assert report["counts"] == {"down": 50, "recovery": 0, "total": 50}
        # worst first: the oldest outage (p-049's) first
        assert [row["probe"] for row in report["down"]] == [f"p-{i:03d}" for i in range(49, -1, -1)]
    rows = outbox(store)
    assert len(rows) == 100 and {(name, state, tries) for name, state, _, tries in rows} == {
        ("ops", "delivered", 1),
        ("oncall", "delivered", 1),
    }
    assert metrics.grouped_value("ops") == 50 and metrics.value("ops", "sent") == 50
    assert dispatcher.pending == 0


async def test_few_wait_for_the_window_then_go_one_by_one(client, store, server) -> None:
    clock = Clock()
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        store,
        group=grouping("0.2s"),
        clock=clock,
    )
    await dispatcher.start()
    for n in downs(3):
        dispatcher.notify(n, [])
    dispatcher.notify(notification("test", probe=None), [])
    dispatcher.notify_sla(notification("sla", probe=None, report={"window": "day", "rows": []}))
    await dispatcher.drain()
    await server.wait_for(2)
    # Longer than the window on the wall, but the window closes by the clock, which stood still:
    # the test message and the SLA report went out at once, the downs still wait (their rows
    # committed).
    await asyncio.sleep(0.5)
    assert sorted(hit.json["event"] for hit in server.hits) == ["sla", "test"]
    states = sorted((probe or "", state) for _, state, probe, _ in outbox(store))
    assert states == [("", "delivered")] * 2 + [(f"p-00{i}", "pending") for i in range(3)]
    clock.now += 0.2
    hits = await server.wait_for(5)
    await dispatcher.stop()
    assert sorted(hit.json["probe"] for hit in hits[2:]) == ["p-000", "p-001", "p-002"]
    assert all(hit.json["event"] == "down" for hit in hits[2:])
    assert [state for _, state, _, _ in outbox(store)] == ["delivered"] * 5


async def test_each_notifier_decides_for_itself(client, store, server, web_server) -> None:
    other = WebhookServer()
    await other.start(web_server)
    notifiers = [
        webhook_notifier(client, "many", server.base + "/a", channels=["a"]),
        webhook_notifier(client, "few", other.base + "/b", channels=["b"]),
    ]
    dispatcher = Dispatcher(notifiers, store, group=grouping())
    await dispatcher.start()
    for n in downs(8):
        dispatcher.notify(n, ["a"])
    for n in downs(2, first=8):
        dispatcher.notify(n, ["b"])
    await server.wait_for(1)
    await other.wait_for(2)
    await dispatcher.stop()
    assert [hit.json["message"] for hit in server.hits] == ["8 down"]
    assert sorted(hit.json["probe"] for hit in other.hits) == ["p-008", "p-009"]


async def test_wait_zero_sends_at_once(client, store, server) -> None:
    clock = Clock()  # never moves: nothing could wait for a window to close
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        store,
        group=grouping("0s"),
        clock=clock,
    )
    await dispatcher.start()
    for n in downs(10):
        dispatcher.notify(n, [])
    hits = await server.wait_for(10)
    await dispatcher.stop()
    assert {hit.json["event"] for hit in hits} == {"down"}


async def test_a_summary_the_receiver_fails_is_retried(client, store, server) -> None:
    server.answer(Answer(500, "busy"))
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        store,
        retry=RetrySettings(times=2, interval="50ms"),
        group=grouping(),
    )
    await dispatcher.start()
    for n in downs(10):
        dispatcher.notify(n, [])
    await server.wait_for(1)
    await dispatcher.drain()
    await dispatcher.stop()
    assert [(hit.status, hit.json["event"]) for hit in server.hits] == [
        (500, "group"),
        (200, "group"),
    ]
    assert {(state, tries) for _, state, _, tries in outbox(store)} == {("delivered", 2)}


async def test_a_summary_refused_for_good_falls_back_to_its_members(
    client, store, server, metrics, caplog
) -> None:
    server.answer(Answer(400, "payload too large"))
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        store,
        metrics=metrics,
        group=grouping(),
    )
    await dispatcher.start()
    with caplog.at_level(logging.ERROR, "probe.notify"):
        for n in downs(10):
            dispatcher.notify(n, [])
        hits = await server.wait_for(10)
        await dispatcher.drain()
        await dispatcher.stop()
    assert (server.hits[0].status, server.hits[0].json["event"]) == (400, "group")
    assert sorted(hit.json["probe"] for hit in hits) == [f"p-{i:03d}" for i in range(10)]
    # None lost: each row delivered on its own (the summary's attempt is on its record too).
    assert {(state, tries) for _, state, _, tries in outbox(store)} == {("delivered", 2)}
    assert "sending its 10 notifications one by one" in caplog.text
    assert metrics.value("ops", "sent") == 10 and metrics.value("ops", "failed") == 0
    assert metrics.grouped_value("ops") == 0


async def test_stop_sends_what_waits_at_once(client, store, server) -> None:
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")], store, group=grouping("1h")
    )
    await dispatcher.start()
    for n in downs(10):
        dispatcher.notify(n, [])
    await dispatcher.drain()
    assert server.hits == []  # waiting for an hour
    await dispatcher.stop(grace=5)
    (hit,) = server.hits
    assert hit.json["message"] == "10 down"
    assert {state for _, state, _, _ in outbox(store)} == {"delivered"}


async def test_rows_left_waiting_at_stop_go_out_at_the_next_start(
    client, db, server, metrics
) -> None:
    store = Store.open(db)
    await store.start()
    first = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")], store, group=grouping("1h")
    )
    await first.start()
    for n in downs(10):
        first.notify(n, [])
    await first.drain()
    await first.stop(grace=0)  # no time to send: the rows stay pending
    assert server.hits == []
    await store.close()
    assert {state for _, state, _, _ in outbox(store)} == {"pending"}

    store = Store.open(db)
    await store.start()
    again = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        store,
        metrics=metrics,
        group=grouping(),
    )
    await again.start()
    (hit,) = await server.wait_for(1)
    await again.drain()
    await again.stop()
    await store.close()
    assert hit.json["message"] == "10 down"  # through a window again: one summary
    assert {state for _, state, _, _ in outbox(store)} == {"delivered"}


async def test_a_reload_keeps_what_waits(client, store, server, web_server) -> None:
    moved = WebhookServer()
    await moved.start(web_server)
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/old")], store, group=grouping("1h")
    )
    await dispatcher.start()
    for n in downs(10):
        dispatcher.notify(n, [])
    await dispatcher.drain()
    # The notifier's URL changes and the window shortens to nothing: the summary goes at once,
    # to the notifier now configured under that name.
    dispatcher.reconfigure(
        [webhook_notifier(client, "ops", moved.base + "/new")], group=grouping("0s")
    )
    (hit,) = await moved.wait_for(1)
    await dispatcher.stop()
    assert hit.json["message"] == "10 down" and server.hits == []
    assert {state for _, state, _, _ in outbox(store)} == {"delivered"}


async def test_the_app_groups_by_settings_notify_group(tmp_path, server) -> None:
    """The real App: eight probes of one dead port go down together; the notifier gets one
    summary (a straggler past the window would come on its own: every probe is told once)."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        address = f"127.0.0.1:{closed.getsockname()[1]}"
        probes = "\n".join(
            f'  - {{name: p{i}, host: "{address}", interval: 100ms, timeout: 90ms}}'
            for i in range(8)
        )
        config = tmp_path / "probes.yaml"
        config.write_text(
            f"tcp:\n{probes}\n"
            f'notify:\n  webhook:\n    - {{name: hook, url: "{server.base}/hook"}}\n'
            "settings:\n  notify: {group: {wait: 1s, threshold: 5}}\n"
        )
        app = App(free_http_port(load_config(config)), registry=CollectorRegistry())
        run = asyncio.create_task(app.run())
        try:
            told: list[str] = []
            while len(told) < 8:
                await server.wait_for(len(server.hits) + 1)
                hit = server.hits[-1].json
                if hit["event"] == "group":
                    told += [row["probe"] for row in hit["report"]["down"]]
                else:
                    told.append(hit["probe"])
        finally:
            app.request_stop()
            assert await asyncio.wait_for(run, 15) == 0
    finally:
        closed.close()
    assert sorted(told) == [f"p{i}" for i in range(8)]
    first = server.hits[0].json
    assert first["event"] == "group" and first["report"]["counts"]["down"] > 5


@pytest.mark.parametrize(
    ("kind", "keys"),
    [
        ("email", {"server": "127.0.0.1:25", "to": "ops@example.test", "from": "p@example.test"}),
        ("shell", {"cmd": "true"}),
        ("shell", {"cmd": "true", "format": "json"}),
        ("mqtt", {"server": "127.0.0.1", "topic": "probe/alerts"}),
        ("log", {"file": "stderr"}),
        ("apprise", {"urls": ["json://127.0.0.1:9/hook"]}),
    ],
)
def test_every_other_kind_renders_a_summary(kind: str, keys: dict[str, Any]) -> None:
    cls = load_notifier_class(kind)
    spec = cls.spec_type.model_validate({"name": "n", **keys})
    context = NotifyContext(http=None, templates=Templates(), timeout=5.0, dry=False)
    payload = cls(spec, context).render(big_group())
    shown = json.dumps(payload, ensure_ascii=False)
    assert "45 down, 15 recovered" in shown
    if kind == "email":
        assert payload["subject"] == "[GROUP] 45 down, 15 recovered"
    if kind == "apprise":
        assert payload["type"] == "warning"


async def test_a_probe_down_and_up_within_one_window_arrive_in_order(client, store, server) -> None:
    server.answer(Answer(200, "slow", delay=0.3))  # the down's answer comes late
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")], store, group=grouping()
    )
    await dispatcher.start()
    dispatcher.notify(notification("down", probe="flappy"), [])
    dispatcher.notify(notification("recovery", probe="flappy", duration=1.0), [])
    hits = await server.wait_for(2)
    await dispatcher.stop()
    # The recovery was sent only once the down was delivered.
    assert [hit.json["event"] for hit in hits] == ["down", "recovery"]
    assert {state for _, state, _, _ in outbox(store)} == {"delivered"}
