"""Slack notifier against a local incoming webhook that answers as hooks.slack.com does."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from probe.notify import load_notifier_class
from probe.notify.base import DeliveryError, NotifyContext
from probe.notify.slack import SlackNotifier, SlackSpec
from probe.notify.templates import Templates
from tests.notify.fake_apis import SLACK_PATH, FakeSlack, Reply, down, recovery, sla


@pytest.fixture
async def context() -> AsyncIterator[NotifyContext]:
    async with httpx.AsyncClient() as client:
        yield NotifyContext(http=client, templates=Templates(), timeout=5.0, dry=False)


@pytest.fixture
async def api(web_server) -> FakeSlack:
    fake = FakeSlack()
    fake.base = await web_server(fake.app)
    return fake


def notifier(context: NotifyContext, webhook: str, **keys) -> SlackNotifier:
    spec = SlackSpec.model_validate({"name": "ops", "webhook": webhook, **keys})
    return SlackNotifier(spec, context)


def fields(payload: dict[str, Any]) -> dict[str, str]:
    """The attachment's section fields as {label: value}."""
    section = payload["attachments"][0]["blocks"][0]
    return dict(f["text"].removeprefix("*").split("*\n", 1) for f in section["fields"])


def test_registered() -> None:
    assert load_notifier_class("slack") is SlackNotifier


def test_spec() -> None:
    url = "https://hooks.slack.com/services/T0/B0/secretpart"
    spec = SlackSpec.model_validate({"name": "ops", "webhook": url})
    assert spec.target() == "slack webhook on https://hooks.slack.com"
    assert "secretpart" not in repr(spec)
    with pytest.raises(ValidationError) as info:
        SlackSpec.model_validate({"name": "ops"})
    assert info.value.errors()[0]["loc"] == ("webhook",)
    assert info.value.errors()[0]["type"] == "missing"
    for bad, why in [
        ("hooks.slack.com/services/secretpart", "webhook must start with https://"),
        ("ftp://hooks.slack.com/secretpart", "webhook must start with https://"),
        ("https:///secretpart", "webhook has no host"),
    ]:
        with pytest.raises(ValidationError, match=why) as info:
            SlackSpec.model_validate({"name": "ops", "webhook": bad})
        assert "secretpart" not in str(info.value)


async def test_down_message(context: NotifyContext, api: FakeSlack) -> None:
    slack = notifier(context, api.url)
    payload = slack.render(down(position=3, outage_start=1714557600.0 - 120))
    await slack.send(payload)
    assert len(api.requests) == 1
    sent = api.requests[0]
    assert sent.path == SLACK_PATH
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json == payload
    assert payload["text"] == "🔴 api is down"
    assert payload["blocks"] == [
        {
            "type": "header",
            "text": {"type": "plain_text", "emoji": True, "text": "🔴 api is down"},
        }
    ]
    attachment = payload["attachments"][0]
    assert attachment["color"] == "#E01E5A"
    assert fields(payload) == {
        "Status": "down",
        "Kind": "http",
        "Endpoint": "https://api.example.test/health?x=1&amp;y=&lt;2&gt;",
        "Time": "2024-05-01 10:00:00 UTC",
        "Down since": "2024-05-01 09:58:00 UTC",
        "Failed checks": "3",
    }
    message = attachment["blocks"][1]["text"]
    assert message == {"type": "mrkdwn", "text": "*Message*\nstatus 503 not in 200-399"}
    assert attachment["blocks"][2]["elements"][0]["text"] == "team=core"


async def test_recovery_message_has_the_duration(context: NotifyContext, api: FakeSlack) -> None:
    slack = notifier(context, api.url)
    payload = slack.render(recovery())
    await slack.send(payload)
    assert payload["attachments"][0]["color"] == "#2EB67D"
    assert payload["text"] == "✅ api is up again after 2h 5m"
    assert fields(payload)["Downtime"] == "2h 5m"
    assert fields(payload)["Down since"] == "2024-05-01 10:00:00 UTC"


async def test_data_cannot_mention_or_link(context: NotifyContext, api: FakeSlack) -> None:
    slack = notifier(context, api.url)
    payload = slack.render(down(probe="<!channel>", message="<https://evil.test|click> & co"))
    await slack.send(payload)
    assert payload["text"] == "🔴 &lt;!channel&gt; is down"
    assert "<!channel>" not in str(payload["attachments"])
    assert "&lt;https://evil.test|click&gt; &amp; co" in str(payload["attachments"])


async def test_limits_are_enforced(context: NotifyContext, api: FakeSlack) -> None:
    slack = notifier(context, api.url)
    payload = slack.render(down(probe="p" * 400, message="&" * 10000, endpoint="e" * 5000))
    await slack.send(payload)  # the fake refuses too-long texts with invalid_blocks
    assert len(payload["blocks"][0]["text"]["text"]) == 150
    assert payload["attachments"][0]["blocks"][1]["text"]["text"].endswith("&amp;…")


async def test_sla_report(context: NotifyContext, api: FakeSlack) -> None:
    slack = notifier(context, api.url)
    payload = slack.render(sla(rows=500))
    await slack.send(payload)
    blocks = payload["attachments"][0]["blocks"]
    assert payload["attachments"][0]["color"] == "#1D9BD1"
    assert blocks[0]["text"]["text"].startswith("500 probes · 2024-05-01")
    # worst first: the largest downtime leads; no-data rows last
    assert blocks[1]["text"]["text"].startswith("• *probe-0499*  95.01% · down 8h 19m")
    assert blocks[-1]["elements"][0]["text"] == "… and 440 more"


async def test_inline_override(context: NotifyContext, api: FakeSlack) -> None:
    source = '{"text": {{ ("custom: " ~ probe ~ " " ~ status) | tojson }}}'
    slack = notifier(context, api.url, template={"down": source})
    payload = slack.render(down(probe='quote " and \\ backslash'))
    await slack.send(payload)
    assert api.requests[0].json == {"text": 'custom: quote " and \\ backslash down'}
    # other events keep the shipped template
    assert "attachments" in slack.render(recovery())


async def test_override_from_file(context: NotifyContext, api: FakeSlack, tmp_path: Path) -> None:
    (tmp_path / "slack-down.j2").write_text('{"text": {{ title | tojson }}}', encoding="utf-8")
    spec = SlackSpec.model_validate(
        {"name": "ops", "webhook": api.url, "template_file": {"down": "slack-down.j2"}},
        context={"base_dir": tmp_path},
    )
    slack = SlackNotifier(spec, context)
    await slack.send(slack.render(down()))
    assert api.requests[0].json == {"text": "api is down"}


def test_broken_override_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"down: line 2: unexpected '}'"):
        SlackSpec.model_validate(
            {
                "name": "ops",
                "webhook": "https://hooks.slack.com/services/x",
                "template": {"down": '{"text":\n {{ probe }'},
            }
        )


async def test_render_needs_no_network(context: NotifyContext, closed_port: int) -> None:
    slack = notifier(context, f"http://127.0.0.1:{closed_port}/services/secret")
    payload = slack.render(down())
    assert payload["attachments"][0]["color"] == "#E01E5A"
    assert "secret" not in repr(payload)


# -- errors --------------------------------------------------------------------------------


async def test_unknown_hook_is_permanent_without_the_path(
    context: NotifyContext, api: FakeSlack
) -> None:
    slack = notifier(context, api.base + "/services/T1/B1/wrongsecret")
    with pytest.raises(DeliveryError) as info:
        await slack.send(slack.render(down()))
    assert info.value.permanent
    assert str(info.value) == "Slack answered 404: no_service"
    assert "wrongsecret" not in str(info.value)


async def test_invalid_payload_is_permanent(context: NotifyContext, api: FakeSlack) -> None:
    # An override may produce any JSON; Slack refuses what is not a message.
    slack = notifier(context, api.url, template={"down": "[1, 2]"})
    with pytest.raises(DeliveryError) as info:
        await slack.send(slack.render(down()))
    assert info.value.permanent
    assert str(info.value) == "Slack answered 400: invalid_payload"


async def test_rate_limit_and_outage_are_temporary(context: NotifyContext, api: FakeSlack) -> None:
    slack = notifier(context, api.url)
    api.script(Reply(429, text="rate_limited", headers={"Retry-After": "30"}))
    with pytest.raises(DeliveryError) as info:
        await slack.send(slack.render(down()))
    assert not info.value.permanent
    assert info.value.retry_after == 30
    assert str(info.value) == "Slack answered 429: rate_limited"
    api.script(Reply(500, text="internal_error"))
    with pytest.raises(DeliveryError) as info:
        await slack.send(slack.render(down()))
    assert not info.value.permanent
    assert info.value.retry_after is None
    await slack.send(slack.render(down()))  # and then it works
    assert len(api.requests) == 3


async def test_plain_http_webhook_warns(
    context: NotifyContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="probe.notify.slack")
    notifier(context, "http://127.0.0.1:9/services/x")
    assert not caplog.records
    notifier(context, "http://chat.internal.test/hooks/secretpart")
    assert "plain http" in caplog.text
    assert "secretpart" not in caplog.text


async def test_retry_after_as_an_http_date(context: NotifyContext, api: FakeSlack) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    api.script(Reply(429, text="rate_limited", headers={"Retry-After": when}))
    slack = notifier(context, api.url)
    with pytest.raises(DeliveryError) as info:
        await slack.send(slack.render(down()))
    assert info.value.retry_after is not None
    assert 100 < info.value.retry_after <= 120
