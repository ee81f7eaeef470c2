"""Teams notifier against a local Power Automate Workflows webhook."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from probe.notify import load_notifier_class
from probe.notify.base import DeliveryError, NotifyContext
from probe.notify.teams import TeamsNotifier, TeamsSpec
from probe.notify.templates import Templates
from tests.notify.fake_apis import TEAMS_PATH, TEAMS_SIG, FakeTeams, Reply, down, recovery, sla


@pytest.fixture
async def context() -> AsyncIterator[NotifyContext]:
    async with httpx.AsyncClient() as client:
        yield NotifyContext(http=client, templates=Templates(), timeout=5.0, dry=False)


@pytest.fixture
async def api(web_server) -> FakeTeams:
    fake = FakeTeams()
    fake.base = await web_server(fake.app)
    return fake


def notifier(context: NotifyContext, webhook: str, **keys) -> TeamsNotifier:
    spec = TeamsSpec.model_validate({"name": "teams", "webhook": webhook, **keys})
    return TeamsNotifier(spec, context)


def card(payload: dict[str, Any]) -> dict[str, Any]:
    attachment = payload["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    content: dict[str, Any] = attachment["content"]
    return content


def test_registered() -> None:
    assert load_notifier_class("teams") is TeamsNotifier


def test_spec() -> None:
    url = (
        "https://prod-01.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/"
        f"invoke?api-version=2016-06-01&sig={TEAMS_SIG}"
    )
    spec = TeamsSpec.model_validate({"name": "teams", "webhook": url})
    assert spec.target() == "teams webhook on https://prod-01.westeurope.logic.azure.com:443"
    assert TEAMS_SIG not in repr(spec)
    with pytest.raises(ValidationError, match="webhook"):
        TeamsSpec.model_validate({"name": "teams"})


async def test_down_and_recovery_cards(context: NotifyContext, api: FakeTeams) -> None:
    teams = notifier(context, api.url)
    first, second = teams.render(down(position=2)), teams.render(recovery())
    await teams.send(first)
    await teams.send(second)
    assert [r.path for r in api.requests] == [TEAMS_PATH] * 2
    assert api.requests[0].query["sig"] == TEAMS_SIG
    assert api.requests[0].json == first
    assert first["type"] == "message"
    content = card(first)
    assert content["type"] == "AdaptiveCard"
    assert content["version"] == "1.4"
    header = content["body"][0]
    assert header["type"] == "Container"
    assert header["style"] == "attention"
    assert header["items"][0]["text"] == "🔴 api is down"
    facts = {f["title"]: f["value"] for f in content["body"][1]["facts"]}
    assert facts["Status"] == "down"
    assert facts["Endpoint"] == "https://api.example.test/health?x=1&y=<2>"
    assert facts["Failed checks"] == "2"
    assert content["body"][2]["text"] == "status 503 not in 200-399"
    content = card(second)
    assert content["body"][0]["style"] == "good"
    facts = {f["title"]: f["value"] for f in content["body"][1]["facts"]}
    assert facts["Downtime"] == "2h 5m"


async def test_sla_report(context: NotifyContext, api: FakeTeams) -> None:
    teams = notifier(context, api.url)
    payload = teams.render(sla(rows=150))
    await teams.send(payload)
    body = card(payload)["body"]
    assert len(body[1]["facts"]) == 100
    assert body[1]["facts"][0]["title"] == "probe-0149"
    assert body[2]["text"] == "… and 50 more"


async def test_large_message_fits(context: NotifyContext, api: FakeTeams) -> None:
    teams = notifier(context, api.url)
    payload = teams.render(down(message="€" * 40000))
    await teams.send(payload)  # the fake refuses more than 28 KB
    assert len(json.dumps(payload, ensure_ascii=False).encode()) <= 28 * 1024


# -- errors --------------------------------------------------------------------------------


async def test_bad_signature_is_permanent_without_the_secret(
    context: NotifyContext, api: FakeTeams
) -> None:
    teams = notifier(context, api.url.replace(TEAMS_SIG, "forgedsignature"))
    with pytest.raises(DeliveryError) as info:
        await teams.send(teams.render(down()))
    assert info.value.permanent
    assert str(info.value) == (
        "Teams answered 401: The provided authorization signature is not valid."
    )
    assert "forgedsignature" not in str(info.value)


async def test_schema_mismatch_is_permanent(context: NotifyContext, api: FakeTeams) -> None:
    teams = notifier(context, api.url, template={"down": '{"text": {{ title | tojson }}}'})
    with pytest.raises(DeliveryError) as info:
        await teams.send(teams.render(down()))
    assert info.value.permanent
    assert "did not match its schema definition" in str(info.value)


async def test_outage_and_throttling_are_temporary(context: NotifyContext, api: FakeTeams) -> None:
    teams = notifier(context, api.url)
    api.script(
        Reply(
            429,
            json={"error": {"code": "WorkflowRequestsThrottled", "message": "Rate limit."}},
            headers={"Retry-After": "12"},
        )
    )
    with pytest.raises(DeliveryError) as info:
        await teams.send(teams.render(down()))
    assert not info.value.permanent
    assert info.value.retry_after == 12
    api.script(Reply(502, json={"error": {"code": "BadGateway", "message": "Bad gateway"}}))
    with pytest.raises(DeliveryError, match=r"^Teams answered 502: Bad gateway$") as info:
        await teams.send(teams.render(down()))
    assert not info.value.permanent


async def test_old_connector_webhook_warns(
    context: NotifyContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="probe.notify.teams")
    notifier(
        context, "https://contoso.webhook.office.com/webhookb2/secretid@tenant/IncomingWebhook/x/y"
    )
    assert "Office 365 connector" in caplog.text
    assert "Workflows" in caplog.text
    assert "secretid" not in caplog.text


async def test_render_needs_no_network(context: NotifyContext, closed_port: int) -> None:
    teams = notifier(context, f"http://127.0.0.1:{closed_port}/workflows/x?sig=abc")
    assert card(teams.render(down()))["body"][0]["style"] == "attention"
