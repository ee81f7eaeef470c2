"""The apprise notifier delivering for real: apprise's `json://` and `form://` services post to
a local aiohttp server that records each request, so what apprise sent is checked end to end.
URL validation uses apprise's own parser."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from pydantic import ValidationError

from probe.notify import load_notifier_class
from probe.notify.apprise import AppriseNotifier, AppriseSpec
from probe.notify.base import DeliveryError, Event, Notification, NotifyContext
from probe.notify.templates import Templates
from tests.notify.samples import notification as sample

SECRET = "tok-9f8e7d6c5b4a"


@dataclass
class Hooks:
    """Records POSTs per path; `status` (per path, default 200) and `delay` shape answers."""

    requests: list[tuple[str, str, str]] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.requests.append((request.path, request.headers.get("Content-Type", ""), body))
        status = self.status.get(request.path, 200)
        return web.Response(status=status, text="ok" if status < 400 else "refused")

    def bodies(self, path: str) -> list[str]:
        return [body for p, _ctype, body in self.requests if p == path]


@pytest.fixture
async def hooks(web_server: Callable[..., Awaitable[str]]) -> tuple[Hooks, str]:
    recorder = Hooks()
    app = web.Application()
    app.router.add_post("/{tail:.*}", recorder.handle)
    base = await web_server(app)
    return recorder, base.removeprefix("http://")


def notification(event: Event = Event.DOWN, **fields: Any) -> Notification:
    return sample(event, **{"probe": "api_v2", **fields})


def make(*urls: str, **keys: Any) -> AppriseNotifier:
    keys.setdefault("timeout", "5s")
    spec = AppriseSpec.model_validate({"name": "everywhere", "urls": list(urls), **keys})
    context = NotifyContext(http=None, templates=Templates(), timeout=10.0, dry=False)
    return AppriseNotifier(spec, context)


def test_registry_points_at_the_notifier():
    assert load_notifier_class("apprise") is AppriseNotifier


async def test_json_and_form_deliveries(hooks):
    recorder, host = hooks
    notifier = make(f"json://{host}/hook/{SECRET}", f"form://{host}/form/{SECRET}")
    await notifier.send(notifier.render(notification()))

    [raw_json] = recorder.bodies(f"/hook/{SECRET}")
    posted = json.loads(raw_json)
    assert posted["title"] == "🔴 api_v2 is down"  # the markdown heading, as plain text
    assert posted["type"] == "failure"
    assert "status 503 not in 200-399" in posted["message"]
    assert "`https://api.example.test/health`" in posted["message"]

    [raw_form] = recorder.bodies(f"/form/{SECRET}")
    form = parse_qs(raw_form)
    assert form["title"] == ["🔴 api_v2 is down"]
    assert form["type"] == ["failure"]


async def test_recovery_is_a_success_with_the_downtime(hooks):
    recorder, host = hooks
    notifier = make(f"json://{host}/hook")
    await notifier.send(notifier.render(notification(Event.RECOVERY, duration=3725.0)))
    posted = json.loads(recorder.bodies("/hook")[0])
    assert posted["type"] == "success"
    assert "1h 2m" in posted["message"]


async def test_single_url_key(hooks):
    recorder, host = hooks
    spec = AppriseSpec.model_validate({"name": "one", "url": f"json://{host}/one"})
    notifier = AppriseNotifier(
        spec, NotifyContext(http=None, templates=Templates(), timeout=5.0, dry=False)
    )
    await notifier.send(notifier.render(notification()))
    assert len(recorder.bodies("/one")) == 1


async def test_template_override(hooks):
    recorder, host = hooks
    notifier = make(f"json://{host}/hook", template={"down": "# {{ probe }} DOWN\n\ncall Bob"})
    await notifier.send(notifier.render(notification()))
    posted = json.loads(recorder.bodies("/hook")[0])
    assert posted["title"] == "api_v2 DOWN"
    assert posted["message"] == "call Bob"


@pytest.mark.parametrize("status", [500, 401])
async def test_refusal_is_temporary_and_hides_the_url(hooks, status):
    # apprise reports only that a service failed, not whether a retry can help.
    recorder, host = hooks
    recorder.status[f"/hook/{SECRET}"] = status
    notifier = make(f"json://{host}/hook/{SECRET}")
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(notifier.render(notification()))
    error = caught.value
    assert not error.permanent
    assert error.message.startswith("apprise: json: ")
    assert str(status) in error.message
    assert SECRET not in error.message


async def test_unreachable_service(closed_port):
    notifier = make(f"json://127.0.0.1:{closed_port}/hook/{SECRET}")
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(notifier.render(notification()))
    assert not caught.value.permanent
    assert caught.value.message.startswith("apprise: json: ")
    assert SECRET not in caught.value.message


async def test_a_retry_goes_only_where_the_message_did_not_arrive(hooks):
    recorder, host = hooks
    recorder.status["/bad"] = 503
    notifier = make(f"json://{host}/good", f"form://{host}/bad")
    payload = notifier.render(notification())
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(payload)
    assert caught.value.message.startswith("apprise: form: ")
    assert "json" not in caught.value.message

    recorder.status.pop("/bad")
    await notifier.send(payload)  # the retry of the same notification
    assert len(recorder.bodies("/good")) == 1
    assert len(recorder.bodies("/bad")) == 2

    await notifier.send(notifier.render(notification()))  # a new notification goes to both
    assert len(recorder.bodies("/good")) == 2


@pytest.mark.slow
async def test_slow_service_never_blocks_the_event_loop(hooks):
    recorder, host = hooks
    recorder.delay = 0.5
    notifier = make(f"json://{host}/slow")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await notifier.send(notifier.render(notification()))
    finally:
        task.cancel()
    assert len(recorder.bodies("/slow")) == 1
    assert ticks >= 10  # the loop kept running while apprise waited in its thread


@pytest.mark.slow
async def test_timeout(hooks):
    recorder, host = hooks
    recorder.delay = 3.0
    notifier = make(f"json://{host}/slow", timeout="300ms")
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(notifier.render(notification()))
    assert time.monotonic() - started < 2.5
    assert not caught.value.permanent
    assert caught.value.message == "apprise: json: timed out"


# --- config ---------------------------------------------------------------------------------


def test_target_names_the_schemes_only():
    spec = AppriseSpec.model_validate(
        {
            "name": "a",
            "urls": [
                f"json://127.0.0.1:8080/hook/{SECRET}",
                f"tgram://123456789:AAH{SECRET}/12345",
                f"https://discord.com/api/webhooks/123456/{SECRET}",
            ],
        }
    )
    assert spec.target() == "apprise: json, tgram, discord"
    assert SECRET not in repr(spec)


@pytest.mark.parametrize(
    ("urls", "expected"),
    [
        ([f"nosuchservice://{SECRET}@host/x"], 'unknown apprise scheme "nosuchservice://"'),
        (["json://127.0.0.1/ok", "not a url"], "not a URL"),
        ([f"https://example.test/hooks/{SECRET}"], "does not recognise this https:// URL"),
        ([""], "empty URL"),
        ([], "urls is required"),
    ],
)
def test_bad_urls_are_config_errors(urls, expected):
    with pytest.raises(ValidationError) as caught:
        AppriseSpec.model_validate({"name": "a", "urls": urls})
    text = str(caught.value)
    assert expected in text
    assert SECRET not in text


def test_error_location_names_the_entry():
    with pytest.raises(ValidationError) as caught:
        AppriseSpec.model_validate({"name": "a", "urls": ["json://127.0.0.1/x", "bogus://x"]})
    [error] = caught.value.errors()
    assert error["loc"] == ("urls", 1)
