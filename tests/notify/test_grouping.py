"""Grouped notifications (settings.notify.group): the config keys, the summary and how every
format shows a big one within its service's limits, and the dispatcher holding, summarising and
delivering through the real outbox to real local receivers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from probe.config.models import GroupSettings
from probe.notify.base import Event, Notification, NotifyContext
from probe.notify.discord import DiscordNotifier, DiscordSpec
from probe.notify.grouping import LISTED, MESSAGE_CHARS, counts_text
from probe.notify.slack import SlackNotifier, SlackSpec
from probe.notify.teams import TeamsNotifier, TeamsSpec
from probe.notify.telegram import TelegramNotifier, TelegramSpec
from probe.notify.templates import Templates
from tests.config.conftest import ConfigFiles
from tests.notify.fake_apis import (
    TELEGRAM_TOKEN,
    FakeDiscord,
    FakeSlack,
    FakeTeams,
    FakeTelegram,
    group,
)


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
