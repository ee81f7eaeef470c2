"""`with_output` (http, shell): an excerpt of the body / the command's output goes into the
check's message, and from there into every notification of that probe (rendered for real
by the shipped templates); without it, none does."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import pytest
from aiohttp import web

from probe.alerting import notification_for
from probe.core.result import Result, Status
from probe.core.scheduler import run_check
from probe.core.tracker import AlertDecision, Observation, ProbeState
from probe.notify.templates import Templates
from probe.probers.http import HTTPProber, HTTPSpec
from probe.probers.shell import ShellProber, ShellSpec
from tests.support import probers as scenarios

BODY = "maintenance\x1b[2J\x1b]0;owned\x07 until 10:00\r\n" + "x" * 2000


def rendered(result: Result, spec: HTTPSpec | ShellSpec, format: str = "text") -> str:
    """The down notification of `result`, as the App builds it and a notifier renders it."""
    alert = AlertDecision("down", spec.name, datetime.now(UTC).timestamp(), 1, None, None)
    state = ProbeState(name=spec.name, status=Status.DOWN)
    observation = Observation(result, state, None, None, alert)
    notification = notification_for(observation, spec)
    assert notification is not None
    return Templates("UTC").render(format, "down", notification)


@pytest.fixture
async def maintenance(web_server) -> str:
    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, text=BODY)

    return await web_server(scenarios.web_app({"GET /": busy}))


@pytest.mark.parametrize("format", ["text", "markdown", "slack", "telegram"])
async def test_http_body_excerpt_reaches_the_notification(maintenance, resources, format):
    spec = HTTPSpec(name="web", url=f"{maintenance}/", timeout="5s", with_output=True)
    result = (await run_check(HTTPProber(spec, resources))).result
    assert result.message.startswith("status 503 not in 200-399; output: maintenance?[2J")
    excerpt = result.message.partition("; output: ")[2]
    assert len(excerpt) == 500 and excerpt.endswith("...")
    assert "until 10:00" in rendered(result, spec, format)
    assert "\x1b" not in rendered(result, spec, format)


async def test_http_without_with_output_shows_no_body(maintenance, resources):
    spec = HTTPSpec(name="web", url=f"{maintenance}/", timeout="5s")
    result = (await run_check(HTTPProber(spec, resources))).result
    assert result.message == "status 503 not in 200-399"
    assert "maintenance" not in rendered(result, spec)


@pytest.mark.parametrize("with_output", [True, False])
async def test_shell_output_excerpt_reaches_the_notification(resources, with_output):
    script = "import sys; print('disk /var 97% full'); print('TOKEN=hunter22'); sys.exit(3)"
    spec = ShellSpec(
        name="disk",
        cmd=sys.executable,
        args=["-c", script],
        env=["TOKEN=hunter22"],
        timeout="10s",
        with_output=with_output,
    )
    result = (await run_check(ShellProber(spec, resources))).result
    text = rendered(result, spec)
    assert "hunter22" not in text  # a configured env value stays masked
    if with_output:
        assert result.message == "exit status 3: TOKEN=***; output: disk /var 97% full TOKEN=***"
        assert "Message:  exit status 3: TOKEN=***; output: disk /var 97% full" in text
    else:
        assert result.message == "exit status 3: TOKEN=***"
        assert "output:" not in text
