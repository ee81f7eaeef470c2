"""Conditions on real HTTP checks: a local aiohttp server answering JSON, XML, text and 503,
over plain HTTP and TLS, run through the scheduler's runner as `probe run` runs them; and
conditions in a config file, whose mistakes are located errors."""

from __future__ import annotations

import json
import re
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from probe.assembly import load_config
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.probers.base import SharedResources
from probe.probers.http import HTTPProber, HTTPSpec
from tests.conditions import has_problem, load_problems
from tests.support import probers as scenarios

HEALTH = {"status": "UP", "checks": [{"name": "db", "status": "UP"}], "version": "2.3.1"}


def app() -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.json_response(HEALTH, headers={"X-Region": "eu-1"})

    async def degraded(request: web.Request) -> web.Response:
        body = {**HEALTH, "status": "DOWN"}
        return web.json_response(body, status=503)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><h1>Example Domain</h1></html>", content_type="text/html")

    return scenarios.web_app({"GET /health": health, "GET /degraded": degraded, "GET /page": page})


@pytest.fixture
async def base(web_server: Any) -> str:
    return str(await web_server(app()))


def prober(url: str, conditions: list[str], **keys: Any) -> HTTPProber:
    spec = HTTPSpec(name="web", url=url, timeout="5s", conditions=conditions, **keys)
    return HTTPProber(spec, SharedResources())


async def check(url: str, conditions: list[str], **keys: Any) -> Any:
    probe = prober(url, conditions, **keys)
    try:
        return (await run_check(probe)).result
    finally:
        await probe.resources.aclose()


async def test_gatus_style_conditions_hold(base: str) -> None:
    result = await check(
        f"{base}/health",
        [
            "[STATUS] == 200",
            "[BODY].status == UP",
            "[BODY].checks[0].name == db",
            "len([BODY].checks) == 1",
            "has([BODY].errors) == false",
            "[BODY].version == pat(2.*)",
            "[HEADERS].content-type == pat(application/json*)",
            "[HEADERS].X-REGION == eu-1",
            "[RESPONSE_TIME] < 5000",
            "[CONNECTED] == true",
            "[IP] == 127.0.0.1",
        ],
    )
    assert result.status is Status.UP, result.message
    assert "failed_conditions" not in result.details


async def test_a_failed_condition_says_why(base: str) -> None:
    result = await check(
        f"{base}/health", ["[STATUS] == 200", "[BODY].status == DOWN", "[BODY].nope == 1"]
    )
    assert result.status is Status.DOWN
    assert result.message == (
        "condition failed: [BODY].status (UP) == DOWN; [BODY].nope (missing) == 1"
    )
    assert result.details["failed_conditions"] == [
        "[BODY].status (UP) == DOWN",
        "[BODY].nope (missing) == 1",
    ]


async def test_conditions_decide_the_status_code_unless_success_code_is_given(base: str) -> None:
    # As in Gatus: without success_code, `[STATUS] == 503` is what healthy means here.
    expected = await check(f"{base}/degraded", ["[STATUS] == 503", "[BODY].status == DOWN"])
    assert expected.status is Status.UP, expected.message
    assert expected.http_status == 503
    both = await check(f"{base}/degraded", ["[STATUS] == 503"], success_code=[[200, 299]])
    assert both.status is Status.DOWN and both.message.startswith("status 503 not in 200-299")
    plain = await check(f"{base}/degraded", ["[BODY].status == UP"])
    assert plain.status is Status.DOWN
    assert plain.message == "condition failed: [BODY].status (DOWN) == UP"


async def test_html_page_with_pat(base: str) -> None:
    up = await check(f"{base}/page", ["[BODY] == pat(*<h1>Example Domain</h1>*)"])
    assert up.status is Status.UP, up.message
    down = await check(f"{base}/page", ["[BODY] == pat(*<h1>Other*)"])
    assert down.status is Status.DOWN
    assert down.message.startswith("condition failed: [BODY] (<html><h1>Example Domain")


async def test_without_an_answer(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/"
    closed = await check(url, ["[CONNECTED] == false"])
    assert closed.status is Status.UP, closed.message
    assert "as the conditions expect" in closed.message
    # Conditions that do not ask about the connection never turn a failure into a pass.
    timing = await check(url, ["[RESPONSE_TIME] < 60000"])
    assert timing.status is Status.DOWN and "refused" in timing.message
    wanted = await check(url, ["[CONNECTED] == true"])
    assert wanted.status is Status.DOWN


async def test_certificate_expiration_over_tls(
    web_server: Any, tls_ca: trustme.CA, tls_ca_file: Path
) -> None:
    leaf = tls_ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=30))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    url = str(await web_server(app(), ssl_context=context))
    result = await check(f"{url}/health", ["[CERTIFICATE_EXPIRATION] > 48h"], ca=str(tls_ca_file))
    assert result.status is Status.UP, result.message
    assert result.cert_expiry is not None
    assert 29 * 86400 < result.cert_expiry - datetime.now(UTC).timestamp() < 31 * 86400
    late = await check(f"{url}/health", ["[CERTIFICATE_EXPIRATION] > 60d"], insecure=True)
    assert late.status is Status.DOWN
    # 30 days less the moments since the certificate was made: 29d23h, or 30d when rounded.
    assert re.fullmatch(
        r"condition failed: \[CERTIFICATE_EXPIRATION\] \((29d23h|30d)\) > 60d", late.message
    ), late.message


def test_config_errors_are_located(tmp_path: Path) -> None:
    problems = load_problems(
        tmp_path,
        "http:\n"
        "  - name: web\n"
        "    url: http://127.0.0.1:9/\n"
        "    conditions:\n"
        '      - "[STATUS] == 200"\n'
        '      - "[BODY].status = UP"\n'
        "  - name: api\n"
        "    url: http://127.0.0.1:9/\n"
        '    conditions: ["[ROWS] > 1"]\n'
        "tcp:\n"
        "  - name: port\n"
        "    host: 127.0.0.1:9\n"
        "    conditions: ['[STATUS] == 200', '[CONNECTED] == false']\n",
    )
    assert has_problem(
        problems,
        "probes.yaml:6:9: http[0].conditions[1]:",
        "compare with == (a single = is not an operator) (at character 15)",
    ), problems
    assert has_problem(
        problems,
        "probes.yaml:9:18: http[1].conditions[0]:",
        "[ROWS] is not a placeholder of http probes",
        "(at character 1)",
    ), problems
    assert has_problem(
        problems,
        "probes.yaml:13:18: tcp[0].conditions[0]:",
        "[STATUS] is not a placeholder of tcp probes",
    ), problems
    assert len(problems) == 3


def test_a_gatus_endpoint_moved_into_our_layout_loads(tmp_path: Path) -> None:
    gatus_conditions = [
        "[STATUS] == 200",
        "[BODY].status == UP",
        "[RESPONSE_TIME] < 300",
        "[STATUS] == any(200, 429)",
        "len([BODY].data) > 0",
        "has([BODY].errors) == false",
        "[BODY] == pat(*<h1>Example*)",
        "[CERTIFICATE_EXPIRATION] > 48h",
        "[CONNECTED] == true",
    ]
    path = tmp_path / "probes.yaml"
    path.write_text(
        json.dumps(
            {"http": [{"name": "web", "url": "https://127.0.0.1/", "conditions": gatus_conditions}]}
        )
    )
    config = load_config(path, environ={})
    assert config.probes[0].conditions == gatus_conditions
