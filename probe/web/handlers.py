"""The routes and their handlers: the status page, /healthz, the JSON API, /metrics and the
badges, over the state create_app gives the application."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from probe.config.diff import ReloadReport
from probe.metrics import exposition
from probe.web import svg
from probe.web.data import WINDOWS, ProbeSummary, StatusSource
from probe.web.json_shapes import incidents, iso, pct, result_item, sla_item
from probe.web.query import filter_summaries
from probe.web.render import StatusPage
from probe.web.responses import compressed, json_error, svg_response

__all__ = ["STATE", "AppState", "Reloader", "add_routes"]

_BADGE_RESPONSE_WINDOWS = ("24h", "7d", "30d")


class Reloader(Protocol):
    """What reloads the running config (the App): `POST /-/reload` and the reload state."""

    async def reload(self, trigger: str) -> ReloadReport: ...

    @property
    def last_reload(self) -> ReloadReport | None: ...


@dataclass(slots=True)
class AppState:
    """What the handlers read. Not frozen: a reload swaps `source` and `page` in place (an
    aiohttp application's own state cannot change once it serves)."""

    source: StatusSource
    registry: CollectorRegistry | None
    healthy: Callable[[], bool]
    page: StatusPage
    reloader: Reloader | None = None


STATE = web.AppKey("probe", AppState)


async def _page(request: web.Request) -> web.Response:
    html = await request.app[STATE].page.render(request.query)
    response = web.Response(
        text=html,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )
    return compressed(response)


async def _healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = {"status": "ok" if state.healthy() else "degraded"}
    last = state.reloader.last_reload if state.reloader is not None else None
    if last is not None and not last.ok:
        # Only that: the reasons (paths, config text) are for the authenticated API.
        body["reload"] = "failed"
    return web.json_response(body)


async def _reload(request: web.Request) -> web.Response:
    reloader = request.app[STATE].reloader
    if reloader is None:
        return json_error(404, "reloading is not available here")
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        # A page elsewhere cannot make a visitor's browser reload us (no CORS preflight
        # guards a bare POST).
        return json_error(403, "cross-origin reload refused")
    report = await reloader.reload("api")
    return web.json_response(report.to_json(), status=200 if report.ok else 422)


async def _reload_state(request: web.Request) -> web.Response:
    reloader = request.app[STATE].reloader
    last = reloader.last_reload if reloader is not None else None
    if last is None:
        return web.json_response({"status": "none"})
    return web.json_response(last.to_json())


async def _sla(request: web.Request) -> web.Response:
    items = await request.app[STATE].source.summaries()
    page, _, total = filter_summaries(items, request.query)
    # 1,000 items are ~20 ms of Python: in a thread, so the loop runs between its slices.
    body = await asyncio.to_thread(lambda: json.dumps([sla_item(item) for item in page]))
    response = web.Response(text=body, content_type="application/json")
    response.headers["X-Total-Count"] = str(total)
    return compressed(response)


async def _probe(request: web.Request) -> web.Response:
    source = request.app[STATE].source
    name = request.match_info["name"]
    item = await source.summary(name)
    if item is None:
        return await _removed_probe(source, name)
    detail = await source.detail(name)
    body = sla_item(item)
    body["labels"] = dict(item.info.labels)
    body["depends_on"] = list(item.info.depends_on)
    body["alerts_folded_into"] = source.folded_into(name)
    body["since"] = None if item.since is None else iso(item.since)
    body["windows"] = {
        w: {**item.windows[w].to_json(), "sla": pct(item.windows[w])} for w in WINDOWS
    }
    body["results"] = [result_item(r) for r in detail["results"]]
    body["incidents"] = incidents(detail["transitions"], source.now())
    return web.json_response(body)


async def _removed_probe(source: StatusSource, name: str) -> web.Response:
    """A probe no longer configured (a reload removed it) whose history the store keeps:
    its results and incidents, still queryable; else a 404."""
    detail = await source.detail(name)
    if not detail["results"] and not detail["transitions"]:
        return json_error(404, "no such probe")
    body = {
        "name": name,
        "configured": False,
        "results": [result_item(r) for r in detail["results"]],
        "incidents": incidents(detail["transitions"], source.now()),
    }
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    registry = request.app[STATE].registry
    if registry is None:
        return json_error(404, "metrics are not enabled")
    body = exposition(registry)
    return compressed(web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}))


async def _badge_status(request: web.Request) -> web.Response:
    item = await request.app[STATE].source.summary(request.match_info["name"])
    if item is None:
        return json_error(404, "no such probe")
    return svg_response(svg.status_badge(item.info.name, item.status.value))


async def _window_badge(
    request: web.Request,
    windows: Sequence[str],
    draw: Callable[[ProbeSummary, str], str],
) -> web.Response:
    """A badge of one probe over the request's window, or a 404 naming what is missing."""
    window = request.match_info["window"]
    if window not in windows:
        return json_error(404, f"no such window; one of {', '.join(windows)}")
    item = await request.app[STATE].source.summary(request.match_info["name"])
    if item is None:
        return json_error(404, "no such probe")
    return svg_response(draw(item, window))


async def _badge_uptime(request: web.Request) -> web.Response:
    return await _window_badge(
        request,
        WINDOWS,
        lambda item, window: svg.uptime_badge(item.info.name, window, item.windows[window].sla),
    )


async def _badge_response_time(request: web.Request) -> web.Response:
    return await _window_badge(
        request,
        _BADGE_RESPONSE_WINDOWS,
        lambda item, window: svg.response_time_badge(
            item.info.name, window, item.windows[window].p95_ms
        ),
    )


def add_routes(app: web.Application) -> None:
    """The routes, on an app whose STATE is set."""
    app.router.add_get("/", _page)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/v1/sla", _sla)
    app.router.add_get("/api/v1/reload", _reload_state)
    app.router.add_post("/-/reload", _reload)
    # `.+`: probe names may hold a slash (sent as %2F, which the router sees decoded).
    app.router.add_get("/api/v1/probes/{name:.+}", _probe)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/badge/{name:.+}/status.svg", _badge_status)
    app.router.add_get("/badge/{name:.+}/uptime/{window}.svg", _badge_uptime)
    app.router.add_get("/badge/{name:.+}/response-time/{window}.svg", _badge_response_time)
