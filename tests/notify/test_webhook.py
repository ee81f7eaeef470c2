"""The generic webhook notifier (`http` / `webhook`) against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json

import pytest

from probe.notify.base import DeliveryError
from probe.notify.webhook import WebhookSpec
from tests.config.conftest import ConfigFiles
from tests.notify.webhook_server import Answer, WebhookServer, notification, webhook_notifier

SECRET_PATH = "/hooks/T0KEN-s3cret"
SECRET_QUERY = "key=query-s3cret"


def secret_url(server: WebhookServer) -> str:
    return f"{server.base}{SECRET_PATH}?{SECRET_QUERY}"


async def send(notifier, n=None) -> None:
    n = n or notification()
    await notifier.send(notifier.render(n))


async def test_default_body_is_the_notification_as_json(client, server) -> None:
    notifier = webhook_notifier(client, "hook", secret_url(server))
    n = notification(
        "recovery",
        probe="api",
        message="connected",
        outage_start=1000.0,
        time=1125.0,
        duration=125.0,
        labels={"team": "core"},
    )
    await send(notifier, n)
    (hit,) = server.hits
    assert hit.method == "POST"
    assert hit.path == SECRET_PATH and hit.query == SECRET_QUERY
    assert hit.headers["Content-Type"] == "application/json"
    assert hit.headers["User-Agent"].startswith("probe/")
    doc = hit.json
    assert doc["id"] == n.id
    assert (doc["event"], doc["probe"], doc["status"], doc["message"]) == (
        "recovery",
        "api",
        "up",
        "connected",
    )
    assert doc["duration"] == 125.0
    assert doc["time"] == "1970-01-01T00:18:45Z" or doc["time"].startswith("1970-01-01T00:18:45")
    assert doc["labels"] == {"team": "core"}


async def test_method_headers_and_success_status(client, server) -> None:
    server.default = Answer(202, "queued")
    notifier = webhook_notifier(
        client,
        "hook",
        server.base + "/put",
        method="put",
        # EaseProbe's list form of headers.
        headers=[{"name": "Authorization", "value": "Bearer xyz"}, {"name": "X-A", "value": "1"}],
        success_status=[202],
    )
    await send(notifier)
    (hit,) = server.hits
    assert hit.method == "PUT"
    assert hit.headers["Authorization"] == "Bearer xyz" and hit.headers["X-A"] == "1"

    server.default = Answer(200, "ok")
    with pytest.raises(DeliveryError) as info:
        await send(notifier)  # 200 is not in [202]
    assert info.value.permanent is True and "answered 200" in info.value.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (204, [(204, 204)]),
        ([200, [201, 209]], [(200, 200), (201, 209)]),
        ([[200, 299], 302], [(200, 299), (302, 302)]),
    ],
)
def test_success_status_forms(value, expected) -> None:
    spec = WebhookSpec.model_validate(
        {"name": "h", "url": "http://127.0.0.1/", "success_status": value}
    )
    assert spec.success_status == expected


def test_headers_map_form_and_content_type_override() -> None:
    spec = WebhookSpec.model_validate(
        {"name": "h", "url": "http://127.0.0.1/", "headers": {"content-type": "text/plain"}}
    )
    assert spec.headers["content-type"].get_secret_value() == "text/plain"


async def test_a_content_type_header_replaces_the_default(client, server) -> None:
    notifier = webhook_notifier(
        client, "hook", server.base + "/", headers={"content-type": "text/plain"}
    )
    await send(notifier)
    assert server.hits[0].headers["Content-Type"] == "text/plain"


async def test_4xx_is_permanent_with_the_api_text_and_no_secret(client, server) -> None:
    server.default = Answer(
        403,
        json.dumps({"message": f"token invalid for {SECRET_PATH}?{SECRET_QUERY}"}),
        {"Content-Type": "application/json"},
    )
    notifier = webhook_notifier(client, "hook", secret_url(server))
    with pytest.raises(DeliveryError) as info:
        await send(notifier)
    err = info.value
    assert err.permanent is True
    assert "403" in err.message and "token invalid for" in err.message
    assert "s3cret" not in err.message and "T0KEN" not in err.message
    assert err.message.startswith(server.base)  # scheme://host:port, nothing more


async def test_429_is_temporary_with_retry_after(client, server) -> None:
    server.default = Answer(429, "slow down", {"Retry-After": "7"})
    with pytest.raises(DeliveryError) as info:
        await send(webhook_notifier(client, "hook", secret_url(server)))
    assert info.value.permanent is False and info.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_5xx_and_408_are_temporary(client, server, status) -> None:
    server.default = Answer(status, "<html>oops</html>")
    with pytest.raises(DeliveryError) as info:
        await send(webhook_notifier(client, "hook", secret_url(server)))
    assert info.value.permanent is False
    assert str(status) in info.value.message


async def test_redirect_is_permanent(client, server) -> None:
    server.default = Answer(301, "", {"Location": "https://elsewhere.invalid/"})
    with pytest.raises(DeliveryError) as info:
        await send(webhook_notifier(client, "hook", secret_url(server)))
    assert info.value.permanent is True and "redirect" in info.value.message
    assert len(server.hits) == 1  # not followed


async def test_connection_refused_is_temporary_and_shows_no_path(client, closed_port) -> None:
    url = f"http://127.0.0.1:{closed_port}{SECRET_PATH}?{SECRET_QUERY}"
    with pytest.raises(DeliveryError) as info:
        await send(webhook_notifier(client, "hook", url))
    assert info.value.permanent is False
    assert "connection refused" in info.value.message
    assert "s3cret" not in info.value.message


@pytest.mark.slow
async def test_a_hanging_server_is_a_temporary_timeout(client, server) -> None:
    server.default = Answer(200, "late", delay=2.0)
    notifier = webhook_notifier(client, "hook", secret_url(server), timeout=0.3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(DeliveryError) as info:
        await send(notifier)
    assert loop.time() - start < 1.5
    assert info.value.permanent is False and "no answer within 300ms" in info.value.message


async def test_template_override_replaces_the_body(client, server) -> None:
    notifier = webhook_notifier(
        client,
        "hook",
        server.base + "/",
        template={"down": '{"text": {{ (probe ~ " is " ~ status) | tojson }}}'},
    )
    await send(notifier, notification(probe="db"))
    assert server.hits[0].json == {"text": "db is down"}
    # Events without an override keep the default document.
    await send(notifier, notification("recovery", probe="db", duration=3.0))
    assert server.hits[1].json["event"] == "recovery"


def test_target_shows_scheme_host_and_port_only() -> None:
    spec = WebhookSpec.model_validate(
        {"name": "h", "url": f"https://user:pw@hooks.example.test:8443{SECRET_PATH}?{SECRET_QUERY}"}
    )
    assert spec.target() == "https://hooks.example.test:8443"
    assert "s3cret" not in repr(spec) and "T0KEN" not in repr(spec)


def test_config_errors_are_located(tmp_path) -> None:
    files = ConfigFiles(tmp_path)
    errors = files.errors(
        "notify:\n"
        "  webhook:\n"
        "    - name: a\n"
        "    - name: b\n"
        "      url: ftp://127.0.0.1/x\n"
        "    - name: c\n"
        "      url: http://127.0.0.1/x\n"
        "      method: 'GE T'\n"
        "      success_status: [[300, 200]]\n"
        "  http:\n"
        "    - name: a\n"
        "      url: http://127.0.0.1/\n"
    )
    assert errors == [
        "probes.yaml:3:7: notify.webhook[0].url: missing required key",
        "probes.yaml:5:12: notify.webhook[1].url: URL must start with https:// (or http://)",
        'probes.yaml:8:15: notify.webhook[2].method: invalid HTTP method "GE T"',
        "probes.yaml:9:23: notify.webhook[2].success_status: "
        "invalid status range 300-200 (codes are 100 to 599)",
        'probes.yaml:11:13: notify.http[0].name: duplicate notifier name "a" (first at line 3)',
    ]


def test_http_and_webhook_kinds_load_the_same_notifier(tmp_path) -> None:
    files = ConfigFiles(tmp_path)
    cfg = files.load(
        "notify:\n"
        "  http:\n    - {name: a, url: 'http://127.0.0.1:1/a', success_status: 200}\n"
        "  webhook:\n    - {name: b, url: 'http://127.0.0.1:1/b', channels: [x]}\n"
    )
    assert [(n.kind, n.name, type(n).__name__) for n in cfg.notifiers] == [
        ("http", "a", "WebhookSpec"),
        ("http", "b", "WebhookSpec"),
    ]
    assert cfg.notifier_counts == {"http": 2}
