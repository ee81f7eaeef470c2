"""Discord notifier against a local webhook that validates and answers as Discord does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from probe.notify import load_notifier_class
from probe.notify.base import DeliveryError, NotifyContext
from probe.notify.discord import DiscordNotifier, DiscordSpec
from probe.notify.templates import Templates
from tests.notify.fake_apis import (
    DISCORD_PATH,
    DISCORD_TOKEN,
    FakeDiscord,
    Reply,
    down,
    recovery,
    sla,
)


@pytest.fixture
async def context() -> AsyncIterator[NotifyContext]:
    async with httpx.AsyncClient() as client:
        yield NotifyContext(http=client, templates=Templates(), timeout=5.0, dry=False)


@pytest.fixture
async def api(web_server) -> FakeDiscord:
    fake = FakeDiscord()
    fake.base = await web_server(fake.app)
    return fake


def notifier(context: NotifyContext, webhook: str, **keys) -> DiscordNotifier:
    spec = DiscordSpec.model_validate({"name": "dc", "webhook": webhook, **keys})
    return DiscordNotifier(spec, context)


def test_registered() -> None:
    assert load_notifier_class("discord") is DiscordNotifier


def test_spec() -> None:
    url = f"https://discord.com/api/webhooks/1234567890/{DISCORD_TOKEN}"
    spec = DiscordSpec.model_validate(
        {"name": "dc", "webhook": url, "username": "Probe", "avatar": "https://x.test/a.png"}
    )
    assert spec.target() == "discord webhook on https://discord.com"
    assert DISCORD_TOKEN not in repr(spec)
    with pytest.raises(ValidationError, match='containing "discord" or "clyde"'):
        DiscordSpec.model_validate({"name": "dc", "webhook": url, "username": "My Discord bot"})
    with pytest.raises(ValidationError, match="avatar must start with https://"):
        DiscordSpec.model_validate({"name": "dc", "webhook": url, "avatar": "a.png"})
    with pytest.raises(ValidationError, match="webhook"):
        DiscordSpec.model_validate({"name": "dc"})


def test_thumbnail_spec() -> None:
    url = f"https://discord.com/api/webhooks/1234567890/{DISCORD_TOKEN}"
    spec = DiscordSpec.model_validate(
        {"name": "dc", "webhook": url, "thumbnail": " https://img.example.test/t.png "}
    )
    assert spec.thumbnail == "https://img.example.test/t.png"
    assert (
        DiscordSpec.model_validate({"name": "dc", "webhook": url, "thumbnail": ""}).thumbnail
        is None
    )
    with pytest.raises(ValidationError, match="thumbnail must start with https://"):
        DiscordSpec.model_validate({"name": "dc", "webhook": url, "thumbnail": "t.png"})


async def test_thumbnail_goes_in_the_embed(context: NotifyContext, api: FakeDiscord) -> None:
    dc = notifier(context, api.url, thumbnail="https://img.example.test/t.png")
    for note in (down(), recovery(), sla()):
        await dc.send(dc.render(note))
    assert len(api.requests) == 3
    for request in api.requests:
        embeds = request.json["embeds"]
        assert embeds[0]["thumbnail"] == {"url": "https://img.example.test/t.png"}
        assert all("thumbnail" not in embed for embed in embeds[1:])
    # Without the key, no thumbnail; a template override's own thumbnail is kept.
    assert "thumbnail" not in notifier(context, api.url).render(down())["embeds"][0]
    own = '{"embeds": [{"title": "x", "thumbnail": {"url": "https://own.test/o.png"}}]}'
    dc = notifier(
        context, api.url, thumbnail="https://img.example.test/t.png", template={"down": own}
    )
    payload = dc.render(down())
    await dc.send(payload)
    assert api.requests[-1].json["embeds"][0]["thumbnail"] == {"url": "https://own.test/o.png"}


async def test_fake_discord_refuses_a_bad_thumbnail(
    context: NotifyContext, api: FakeDiscord
) -> None:
    # The fake answers as Discord does, so the test above would catch a wrong shape.
    dc = notifier(context, api.url)
    payload = dc.render(down())
    payload["embeds"][0]["thumbnail"] = "https://img.example.test/t.png"  # not an object
    with pytest.raises(DeliveryError, match=r"thumbnail\.url: Scheme must be one of"):
        await dc.send(payload)


async def test_down_and_recovery_embeds(context: NotifyContext, api: FakeDiscord) -> None:
    dc = notifier(context, api.url, username="Probe", avatar="https://img.example.test/p.png")
    first = dc.render(down(probe="web *prod*", message="@everyone <@123> status 503"))
    second = notifier(context, api.url).render(recovery())
    await dc.send(first)
    await dc.send(second)
    assert [r.path for r in api.requests] == [DISCORD_PATH] * 2
    assert api.requests[0].json == first
    assert first["username"] == "Probe"
    assert first["avatar_url"] == "https://img.example.test/p.png"
    assert first["allowed_mentions"] == {"parse": []}
    embed = first["embeds"][0]
    assert embed["title"] == "🔴 web \\*prod\\* is down"
    assert embed["color"] == 0xE01E5A
    assert embed["timestamp"] == "2024-05-01T10:00:00Z"
    assert embed["description"] == "@everyone \\<@123\\> status 503"
    shown = {f["name"]: f["value"] for f in embed["fields"]}
    assert shown["Endpoint"] == "`https://api.example.test/health?x=1&y=<2>`"
    assert shown["Kind"] == "http"
    embed = second["embeds"][0]
    assert embed["color"] == 0x2EB67D
    assert {f["name"]: f["value"] for f in embed["fields"]}["Downtime"] == "2h 5m"
    assert "username" not in second  # the webhook's own name unless configured


async def test_limits_are_enforced(context: NotifyContext, api: FakeDiscord) -> None:
    dc = notifier(context, api.url)
    payload = dc.render(down(probe="n" * 500, message="m" * 9000, labels={"k": "v" * 3000}))
    await dc.send(payload)  # the fake refuses anything over Discord's limits
    embed = payload["embeds"][0]
    assert len(embed["title"]) <= 256
    assert len(embed["description"]) <= 4096
    assert all(len(f["value"]) <= 1024 for f in embed["fields"])
    # and the 6,000 over the whole message, with an override adding embeds
    source = (
        '{"content": {{ ("c" * 3000) | tojson }}, "embeds": ['
        '{"title": "a", "description": {{ ("d" * 4000) | tojson }}},'
        '{"title": "b", "description": {{ ("e" * 4000) | tojson }}}]}'
    )
    dc = notifier(context, api.url, template={"down": source})
    payload = dc.render(down())
    await dc.send(payload)
    assert len(payload["content"]) == 2000
    assert sum(len(e["title"]) + len(e["description"]) for e in payload["embeds"]) <= 6000


async def test_sla_report(context: NotifyContext, api: FakeDiscord) -> None:
    dc = notifier(context, api.url)
    payload = dc.render(sla(rows=400))
    await dc.send(payload)
    embed = payload["embeds"][0]
    assert embed["color"] == 0x1D9BD1
    assert embed["description"].startswith("**probe-0399**: 96.01% · down 6h 39m · 0 incidents")
    lines = embed["description"].split("\n")
    assert lines[-1] == f"… and {400 - len(lines) + 1} more"
    assert all(line.count("**") == 2 for line in lines[:-1])  # whole rows only


# -- errors --------------------------------------------------------------------------------


async def test_bad_token_and_unknown_webhook_are_permanent(
    context: NotifyContext, api: FakeDiscord
) -> None:
    dc = notifier(context, api.base + "/api/webhooks/1234567890/not-the-token")
    with pytest.raises(DeliveryError) as info:
        await dc.send(dc.render(down()))
    assert info.value.permanent
    assert str(info.value) == "Discord answered 401: Invalid Webhook Token (code 50027)"
    assert "not-the-token" not in str(info.value)
    dc = notifier(context, api.base + "/api/webhooks/999/whatever")
    with pytest.raises(
        DeliveryError, match=r"^Discord answered 404: Unknown Webhook \(code 10015\)$"
    ):
        await dc.send(dc.render(down()))


async def test_invalid_form_body_shows_the_field(context: NotifyContext, api: FakeDiscord) -> None:
    dc = notifier(context, api.url, template={"down": '{"embeds": [{"color": "red"}]}'})
    with pytest.raises(DeliveryError) as info:
        await dc.send(dc.render(down()))
    assert info.value.permanent
    assert str(info.value) == (
        "Discord answered 400: Invalid Form Body (code 50035): embeds.0.color: bad"
    )


async def test_rate_limit_and_outage_are_temporary(
    context: NotifyContext, api: FakeDiscord
) -> None:
    dc = notifier(context, api.url)
    api.script(
        Reply(
            429,
            json={"message": "You are being rate limited.", "retry_after": 0.75, "global": False},
        )
    )
    with pytest.raises(DeliveryError) as info:
        await dc.send(dc.render(down()))
    assert not info.value.permanent
    assert info.value.retry_after == 0.75
    api.script(Reply(429, json={"message": "slow", "retry_after": 9}, headers={"Retry-After": "2"}))
    with pytest.raises(DeliveryError) as info:
        await dc.send(dc.render(down()))
    assert info.value.retry_after == 2  # the header wins
    api.script(Reply(503, text="upstream connect error"))
    with pytest.raises(DeliveryError) as info:
        await dc.send(dc.render(down()))
    assert not info.value.permanent
    assert str(info.value) == "Discord answered 503: upstream connect error"


async def test_render_needs_no_network(context: NotifyContext, closed_port: int) -> None:
    dc = notifier(context, f"http://127.0.0.1:{closed_port}/api/webhooks/1/{DISCORD_TOKEN}")
    assert dc.render(down())["embeds"][0]["color"] == 0xE01E5A
