"""Telegram notifier against a local Bot API that parses HTML and answers as Telegram does."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from probe.notify import load_notifier_class
from probe.notify.base import DeliveryError, Event, NotifyContext
from probe.notify.telegram import TelegramNotifier, TelegramSpec, split_html
from probe.notify.templates import Templates
from tests.notify.fake_apis import (
    TELEGRAM_TOKEN,
    FakeTelegram,
    Reply,
    down,
    recovery,
    sla,
    telegram_parse,
)

NAME = "db <primary> & replica_1 *[eu]*"


@pytest.fixture
async def context() -> AsyncIterator[NotifyContext]:
    async with httpx.AsyncClient() as client:
        yield NotifyContext(http=client, templates=Templates(), timeout=5.0, dry=False)


@pytest.fixture
async def api(web_server) -> FakeTelegram:
    fake = FakeTelegram(chats=(42, -1001234567890, "@probe_alerts"))
    fake.base = await web_server(fake.app)
    return fake


def notifier(context: NotifyContext, api_url: str, **keys) -> TelegramNotifier:
    spec = TelegramSpec.model_validate(
        {"name": "tg", "token": TELEGRAM_TOKEN, "chat_id": 42, "api_url": api_url, **keys}
    )
    return TelegramNotifier(spec, context)


def test_registered() -> None:
    assert load_notifier_class("telegram") is TelegramNotifier


# -- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token", ["", "999999", "abc:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "123:short", "1:" + "a" * 29]
)
def test_token_of_the_wrong_shape_is_a_config_error(token: str) -> None:
    with pytest.raises(ValidationError) as info:
        TelegramSpec.model_validate({"name": "tg", "token": token, "chat_id": 42})
    error = info.value.errors()[0]
    assert error["loc"] == ("token",)
    assert "not a Telegram bot token" in error["msg"]
    assert token not in str(info.value) or not token


@pytest.mark.parametrize("chat_id", [42, "42", -1001234567890, "-1001234567890", "@probe_alerts"])
def test_chat_id_forms(chat_id: int | str) -> None:
    spec = TelegramSpec.model_validate({"name": "tg", "token": TELEGRAM_TOKEN, "chat_id": chat_id})
    assert spec.target() == f"telegram chat {chat_id}"
    assert TELEGRAM_TOKEN not in repr(spec)


@pytest.mark.parametrize("chat_id", ["", "general", "@ab", "42a", True])
def test_bad_chat_id(chat_id: object) -> None:
    with pytest.raises(ValidationError, match="chat_id"):
        TelegramSpec.model_validate({"name": "tg", "token": TELEGRAM_TOKEN, "chat_id": chat_id})


def test_missing_keys_and_bad_api_url() -> None:
    with pytest.raises(ValidationError) as info:
        TelegramSpec.model_validate({"name": "tg"})
    assert {e["loc"] for e in info.value.errors()} == {("token",), ("chat_id",)}
    with pytest.raises(ValidationError, match="api_url must start with https://"):
        TelegramSpec.model_validate(
            {"name": "tg", "token": TELEGRAM_TOKEN, "chat_id": 1, "api_url": "ftp://x"}
        )
    spec = TelegramSpec.model_validate(
        {"name": "tg", "token": TELEGRAM_TOKEN, "chat_id": 1, "api_url": "http://127.0.0.1:81/"}
    )
    assert spec.api_url == "http://127.0.0.1:81"
    assert spec.target() == "telegram chat 1 via http://127.0.0.1:81"


# -- messages ------------------------------------------------------------------------------


async def test_down_then_recovery(context: NotifyContext, api: FakeTelegram) -> None:
    tg = notifier(context, api.base)
    for note in (down(probe=NAME), recovery(probe=NAME)):
        await tg.send(tg.render(note))
    assert [r.path for r in api.requests] == [f"/bot{TELEGRAM_TOKEN}/sendMessage"] * 2
    first, second = (r.json for r in api.requests)
    assert first["chat_id"] == 42
    assert first["parse_mode"] == "HTML"
    assert first["link_preview_options"] == {"is_disabled": True}
    # Escaped in the HTML, shown as written.
    assert "db &lt;primary&gt; &amp; replica_1 *[eu]*" in first["text"]
    error, visible = telegram_parse(first["text"])
    assert error is None
    assert visible.startswith(f"🔴 {NAME} is down")
    _, visible = telegram_parse(second["text"])
    assert visible.startswith(f"✅ {NAME} is up again")
    assert "Downtime: 2h 5m" in visible


async def test_long_message_is_split_into_valid_parts(
    context: NotifyContext, api: FakeTelegram
) -> None:
    message = "\n".join(f"line {i:03d}: <tag> & {'x' * 40}" for i in range(110))  # ~5,000
    assert len(message) > 5000
    tg = notifier(context, api.base)
    payload = tg.render(down(probe=NAME, message=message))
    assert len(payload) == 2
    await tg.send(payload)
    assert len(api.messages) == 2  # both accepted: valid HTML, within 4,096
    visible = [telegram_parse(m["text"])[1] for m in api.messages]
    joined = "\n".join(visible)
    for i in range(110):
        assert f"line {i:03d}: <tag> & {'x' * 40}" in joined
    # the <pre> around the message was closed and reopened at the cut
    assert api.messages[0]["text"].endswith("</pre>")
    assert api.messages[1]["text"].startswith("<pre>")


async def test_sla_report_of_many_probes(context: NotifyContext, api: FakeTelegram) -> None:
    tg = notifier(context, api.base)
    payload = tg.render(sla(rows=300))
    assert len(payload) >= 4
    await tg.send(payload)
    assert len(api.messages) == len(payload)
    text = "\n".join(telegram_parse(m["text"])[1] for m in api.messages)
    assert all(f"probe-{i:04d}:" in text for i in range(300))


async def test_channel_username_chat(context: NotifyContext, api: FakeTelegram) -> None:
    tg = notifier(context, api.base, chat_id="@probe_alerts")
    await tg.send(tg.render(down()))
    assert api.requests[0].json["chat_id"] == "@probe_alerts"


async def test_override_is_escaped(context: NotifyContext, api: FakeTelegram) -> None:
    tg = notifier(context, api.base, template={"down": "<b>{{ probe }}</b> is {{ status }}"})
    await tg.send(tg.render(down(probe="<x>&")))
    assert api.messages[0]["text"] == "<b>&lt;x&gt;&amp;</b> is down"


async def test_render_needs_no_network(context: NotifyContext, closed_port: int) -> None:
    # What a dry run does: render and log; nothing is sent and nothing needs the API.
    tg = notifier(context, f"http://127.0.0.1:{closed_port}")
    payload = tg.render(down())
    assert payload[0]["chat_id"] == 42
    assert TELEGRAM_TOKEN not in repr(payload)


# -- errors --------------------------------------------------------------------------------


async def test_bad_token_is_permanent_without_the_token(
    context: NotifyContext, api: FakeTelegram
) -> None:
    other = "987654321:" + "B" * 35
    tg = TelegramNotifier(
        TelegramSpec.model_validate(
            {"name": "tg", "token": other, "chat_id": 42, "api_url": api.base}
        ),
        context,
    )
    with pytest.raises(DeliveryError) as info:
        await tg.send(tg.render(down()))
    assert info.value.permanent
    assert str(info.value) == "Telegram answered 401: Unauthorized"
    assert other not in str(info.value)


async def test_unknown_chat_is_permanent(context: NotifyContext, api: FakeTelegram) -> None:
    tg = notifier(context, api.base, chat_id=7)
    with pytest.raises(DeliveryError) as info:
        await tg.send(tg.render(down()))
    assert info.value.permanent
    assert str(info.value) == "Telegram answered 400: Bad Request: chat not found"


async def test_supergroup_migration_says_what_to_do(
    context: NotifyContext, api: FakeTelegram
) -> None:
    api.script(
        Reply(
            400,
            json={
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": -1001234567890},
            },
        )
    )
    tg = notifier(context, api.base)
    with pytest.raises(DeliveryError, match="set chat_id to -1001234567890") as info:
        await tg.send(tg.render(down()))
    assert info.value.permanent


async def test_rate_limit_is_temporary_with_retry_after(
    context: NotifyContext, api: FakeTelegram
) -> None:
    api.script(
        Reply(
            429,
            json={
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 7",
                "parameters": {"retry_after": 7},
            },
        )
    )
    tg = notifier(context, api.base)
    with pytest.raises(DeliveryError) as info:
        await tg.send(tg.render(down()))
    assert not info.value.permanent
    assert info.value.retry_after == 7
    assert "Too Many Requests" in str(info.value)


@pytest.mark.slow
async def test_server_error_and_timeout_are_temporary(
    context: NotifyContext, api: FakeTelegram
) -> None:
    api.script(
        Reply(
            502,
            text="<html><head><title>502 Bad Gateway</title></head></html>",
            headers={"Content-Type": "text/html"},
        )
    )
    tg = notifier(context, api.base, timeout="300ms")
    with pytest.raises(DeliveryError) as info:
        await tg.send(tg.render(down()))
    assert not info.value.permanent
    assert str(info.value).startswith("Telegram answered 502:")
    api.script(Reply(200, json={"ok": True, "result": {}}, delay=2.0))
    with pytest.raises(DeliveryError) as info:
        await tg.send(tg.render(down()))
    assert not info.value.permanent
    assert str(info.value) == "Telegram: no answer within 0.3s"


async def test_connection_refused_is_temporary(context: NotifyContext, closed_port: int) -> None:
    tg = notifier(context, f"http://127.0.0.1:{closed_port}")
    with pytest.raises(DeliveryError) as info:
        await tg.send(tg.render(down()))
    assert not info.value.permanent
    assert str(info.value) == f"Telegram: cannot reach 127.0.0.1:{closed_port}: connection refused"
    assert TELEGRAM_TOKEN not in str(info.value)


async def test_second_part_failing_names_the_part(
    context: NotifyContext, api: FakeTelegram
) -> None:
    api.script(Reply(200, json={"ok": True, "result": {"message_id": 1}}))
    api.script(Reply(500, json={"ok": False, "error_code": 500, "description": "Internal"}))
    tg = notifier(context, api.base)
    payload = tg.render(down(message="y" * 5000))
    with pytest.raises(DeliveryError, match=r"\(part 2 of 2\)$") as info:
        await tg.send(payload)
    assert not info.value.permanent


# -- splitting -----------------------------------------------------------------------------


def test_split_short_and_empty() -> None:
    assert split_html("hello") == ["hello"]
    assert split_html("  <b></b>\n") == []


def test_split_a_single_long_line_at_spaces_and_anywhere() -> None:
    words = " ".join(["word"] * 2000)  # 9,999 characters, no newline
    parts = split_html(words, 4096)
    assert len(parts) == 3
    assert all(len(p) <= 4096 and not p.startswith(" ") for p in parts)
    assert " ".join(parts) == words
    solid = "z" * 9000
    parts = split_html(solid, 4096)
    assert [len(p) for p in parts] == [4096, 4096, 808]


def test_split_never_cuts_entities_or_tags() -> None:
    text = "<b>" + "&amp;" * 2000 + "</b>"
    parts = split_html(text, 4096)
    assert len(parts) == 3
    for part in parts:
        assert len(part) <= 4096
        assert part.startswith("<b>") and part.endswith("</b>")
        assert telegram_parse(part)[0] is None
        assert re.fullmatch(r"<b>(&amp;)+</b>", part)


def test_split_reopens_links_with_their_attributes() -> None:
    text = '<a href="https://example.test/?a=1&amp;b=2">' + "link text " * 600 + "</a>"
    parts = split_html(text, 4096)
    assert len(parts) == 2
    for part in parts:
        assert part.startswith('<a href="https://example.test/?a=1&amp;b=2">')
        assert part.endswith("</a>")


def test_split_counts_utf16_units() -> None:
    text = "😀" * 3000  # 2 units each: 6,000 units
    parts = split_html(text, 4096)
    assert [len(p) for p in parts] == [2048, 952]


@settings(max_examples=80, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from(["", "b", "i", "code", "pre"]),
            st.text(alphabet=st.sampled_from("ab <>&\"' 😀\n"), max_size=300),
        ),
        min_size=1,
        max_size=40,
    ),
    limit=st.integers(min_value=40, max_value=600),
)
def test_split_property(lines: list[tuple[str, str]], limit: int) -> None:
    """Every part parses as Telegram HTML and fits; no visible character is lost other than
    the newline or space a cut fell on."""
    text = "\n".join(
        f"<{tag}>{html.escape(body)}</{tag}>" if tag else html.escape(body) for tag, body in lines
    )
    parts = split_html(text, limit)
    visible = []
    for part in parts:
        assert len(part.encode("utf-16-le")) // 2 <= limit
        error, shown = telegram_parse(part)
        assert error is None, (part, error)
        visible.append(shown)
    _, whole = telegram_parse(text)
    assert re.sub(r"\s", "", "".join(visible)) == re.sub(r"\s", "", whole)


async def test_event_enum_renders_every_kind(context: NotifyContext) -> None:
    tg = notifier(context, "http://127.0.0.1:9")
    for note in (down(), recovery(), sla(), down(event=Event.TEST)):
        payload = tg.render(note)
        assert all(telegram_parse(p["text"])[0] is None for p in payload)
