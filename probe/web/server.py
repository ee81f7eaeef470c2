"""The embedded HTTP server (aiohttp.web, on the App's event loop).

    GET /                                         the status page (HTML; filters, pg/sz, refresh)
    GET /healthz                                  200 {"status": "ok" | "degraded"}, no config
    GET /api/v1/sla                               EaseProbe's item shape + windows; its filters
    GET /api/v1/probes/{name}                     status, SLA per window, results, incidents
    GET /metrics                                  Prometheus exposition of the registry
    GET /badge/{name}/status.svg
    GET /badge/{name}/uptime/{24h|7d|30d|90d}.svg
    GET /badge/{name}/response-time/{24h|7d|30d}.svg

With `settings.http.token` and/or `username`/`password`, everything but /healthz and the
badges needs `Authorization: Bearer <token>` or HTTP basic auth (a browser asks for it). Bad
query parameters are a 400 with a JSON error, an unknown probe a 404 with a JSON error, and no
request ever gets a traceback. The web layer only reads: the store through StatusSource, the
metrics through the registry the App hands in.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from probe.core.result import Result, Status, utc_iso
from probe.core.tracker import Transition
from probe.metrics import exposition
from probe.store.sla import SLAFigures
from probe.web import svg
from probe.web.data import WINDOWS, ProbeSummary, StatusSource
from probe.web.query import DEFAULT_PAGE_SIZE, BadRequest, filter_summaries
from probe.web.render import StatusPage
from probe.web.urls import icon_origin

__all__ = ["DEFAULT_PAGE_SIZE", "BadRequest", "create_app", "filter_summaries", "start_server"]

log = logging.getLogger("probe.web")

_BADGE_RESPONSE_WINDOWS = ("24h", "7d", "30d")


@dataclass(frozen=True, slots=True)
class _State:
    source: StatusSource
    registry: CollectorRegistry | None
    healthy: Callable[[], bool]
    page: StatusPage


_STATE = web.AppKey("probe", _State)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# --- middlewares -------------------------------------------------------------------------------


def _auth_middleware(token: str | None, basic: tuple[str, str] | None) -> Middleware:
    # An empty secret would let in anyone who sends an empty one ("Authorization: Bearer "):
    # the config refuses it, and so does the server, whoever builds it.
    if token is not None and not token.strip():
        raise ValueError("an empty bearer token protects nothing")
    if basic is not None and not (basic[0] and basic[1].strip()):
        raise ValueError("basic auth needs a user name and a non-empty password")
    bearer = None if token is None else token.encode()
    user, password = (None, None) if basic is None else (basic[0].encode(), basic[1].encode())
    # Basic makes a browser ask for the password; an API client sends the bearer token.
    challenge = 'Basic realm="probe", charset="UTF-8"' if basic else 'Bearer realm="probe"'

    def allowed(header: str) -> bool:
        scheme, _, credentials = header.strip().partition(" ")
        given = credentials.strip().encode()
        if not given:
            return False
        if scheme.lower() == "bearer" and bearer is not None:
            return hmac.compare_digest(given, bearer)
        if scheme.lower() == "basic" and user is not None and password is not None:
            try:
                decoded = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                return False
            name, sep, secret = decoded.partition(b":")
            # Both compared, always: the time taken says nothing about which was wrong.
            same_user = hmac.compare_digest(name, user)
            same_password = hmac.compare_digest(secret, password)
            return bool(sep) and same_user and same_password
        return False

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if bearer is None and user is None:
            return await handler(request)
        if path == "/healthz" or path.startswith("/badge/"):
            return await handler(request)
        if not allowed(request.headers.get("Authorization", "")):
            response = _error(401, "authentication required")
            response.headers["WWW-Authenticate"] = challenge
            return response
        return await handler(request)

    return auth


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as err:
        return _error(400, str(err))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise
    except Exception:  # the one place a bug becomes a 500; never a traceback to the client
        log.exception("web: %s %s failed", request.method, request.path)
        return _error(500, "internal error")


def _security_headers(icon: str | None) -> Middleware:
    # Nothing is loaded from anywhere: no scripts, no frames; styles only inline (the page).
    # The one exception is the origin of `settings.icon`, when it is on another server.
    origin = None if icon is None else icon_origin(icon)
    images = "'self' data:" if origin is None else f"'self' data: {origin}"
    policy = (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src {images}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )

    @web.middleware
    async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", policy)
        return response

    return security_headers


# --- JSON shapes -------------------------------------------------------------------------------


def _pct(figures: SLAFigures) -> float | None:
    return None if figures.sla is None else round(figures.sla, 4)


def _latest(result: Result | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"time": utc_iso(result.time), "status": result.status.value, "message": result.message}


def sla_item(item: ProbeSummary) -> dict[str, Any]:
    """EaseProbe's /api/v1/sla item, plus kind, status and the SLA per window."""
    total = item.total
    return {
        "name": item.info.name,
        "kind": item.info.kind,
        "endpoint": item.info.endpoint,
        "status": item.status.value,
        "sla": {"up": round(total.up_s, 3), "down": round(total.down_s, 3), "sla": _pct(total)},
        "probe_summary": {
            "total": total.checks,
            "up": total.checks - total.checks_down,
            "down": total.checks_down,
        },
        "latest_probe": _latest(item.last),
        "windows": {window: _pct(item.windows[window]) for window in WINDOWS},
    }


def incidents(changes: list[Transition], now: float) -> list[dict[str, Any]]:
    """Outages from status changes: start, end (None while ongoing) and duration."""
    found: list[dict[str, Any]] = []
    start: float | None = None
    for change in changes:
        if change.current is Status.DOWN and start is None:
            start = change.time
        elif change.current is not Status.DOWN and start is not None:
            found.append({"start": start, "end": change.time})
            start = None
    if start is not None:
        found.append({"start": start, "end": None})
    return [
        {
            "start": _iso(item["start"]),
            "end": None if item["end"] is None else _iso(item["end"]),
            "duration_s": round((item["end"] or now) - item["start"], 3),
        }
        for item in reversed(found)
    ]


def _iso(moment: float) -> str:
    from datetime import UTC, datetime

    return utc_iso(datetime.fromtimestamp(moment, UTC))


# --- handlers ----------------------------------------------------------------------------------


async def _page(request: web.Request) -> web.Response:
    html = await request.app[_STATE].page.render(request.query)
    response = web.Response(
        text=html,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )
    return _compressed(response)


async def _healthz(request: web.Request) -> web.Response:
    healthy = request.app[_STATE].healthy()
    return web.json_response({"status": "ok" if healthy else "degraded"})


async def _sla(request: web.Request) -> web.Response:
    items = await request.app[_STATE].source.summaries()
    page, _, total = filter_summaries(items, request.query)
    # 1,000 items are ~20 ms of Python: in a thread, so the loop runs between its slices.
    body = await asyncio.to_thread(lambda: json.dumps([sla_item(item) for item in page]))
    response = web.Response(text=body, content_type="application/json")
    response.headers["X-Total-Count"] = str(total)
    return _compressed(response)


async def _probe(request: web.Request) -> web.Response:
    source = request.app[_STATE].source
    name = request.match_info["name"]
    item = await source.summary(name)
    if item is None:
        return _error(404, "no such probe")
    detail = await source.detail(name)
    body = sla_item(item)
    body["labels"] = dict(item.info.labels)
    body["since"] = None if item.since is None else _iso(item.since)
    body["windows"] = {
        w: {**item.windows[w].to_json(), "sla": _pct(item.windows[w])} for w in WINDOWS
    }
    body["results"] = [r.to_json() for r in detail["results"]]
    body["incidents"] = incidents(detail["transitions"], source.now())
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    registry = request.app[_STATE].registry
    if registry is None:
        return _error(404, "metrics are not enabled")
    body = exposition(registry)
    return _compressed(web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}))


def _compressed(response: web.Response) -> web.Response:
    """gzip/deflate when the client accepts it: a page of 100 probes is ~650 KB of repetitive
    HTML, ~10x smaller compressed. aiohttp compresses bodies over 4 KB in a thread."""
    response.enable_compression()
    return response


def _svg(body: str) -> web.Response:
    return web.Response(
        text=body,
        content_type="image/svg+xml",
        headers={"Cache-Control": "max-age=60"},
    )


async def _badge_status(request: web.Request) -> web.Response:
    item = await request.app[_STATE].source.summary(request.match_info["name"])
    if item is None:
        return _error(404, "no such probe")
    return _svg(svg.status_badge(item.info.name, item.status.value))


async def _badge_uptime(request: web.Request) -> web.Response:
    window = request.match_info["window"]
    if window not in WINDOWS:
        return _error(404, f"no such window; one of {', '.join(WINDOWS)}")
    item = await request.app[_STATE].source.summary(request.match_info["name"])
    if item is None:
        return _error(404, "no such probe")
    return _svg(svg.uptime_badge(item.info.name, window, item.windows[window].sla))


async def _badge_response_time(request: web.Request) -> web.Response:
    window = request.match_info["window"]
    if window not in _BADGE_RESPONSE_WINDOWS:
        return _error(404, f"no such window; one of {', '.join(_BADGE_RESPONSE_WINDOWS)}")
    item = await request.app[_STATE].source.summary(request.match_info["name"])
    if item is None:
        return _error(404, "no such probe")
    return _svg(svg.response_time_badge(item.info.name, window, item.windows[window].p95_ms))


def create_app(
    source: StatusSource,
    *,
    registry: CollectorRegistry | None = None,
    token: str | None = None,
    basic: tuple[str, str] | None = None,
    healthy: Callable[[], bool] = lambda: True,
    title: str = "Status",
    icon: str | None = None,
    page: StatusPage | None = None,
) -> web.Application:
    """The server's routes over `source`; `page` shares a StatusPage (and its cache) with
    the App's status-file writer, else one is made with `title` and `icon`."""
    page = page or StatusPage(source, title=title, icon=icon)
    app = web.Application(
        middlewares=[
            _security_headers(page.icon),
            _errors,
            _auth_middleware(token, basic),
        ],
        client_max_size=64 * 1024,
    )
    app[_STATE] = _State(source, registry, healthy, page)
    app.router.add_get("/", _page)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/v1/sla", _sla)
    # `.+`: probe names may hold a slash (sent as %2F, which the router sees decoded).
    app.router.add_get("/api/v1/probes/{name:.+}", _probe)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/badge/{name:.+}/status.svg", _badge_status)
    app.router.add_get("/badge/{name:.+}/uptime/{window}.svg", _badge_uptime)
    app.router.add_get("/badge/{name:.+}/response-time/{window}.svg", _badge_response_time)
    return app


async def start_server(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (0 = any free port). Raises OSError when the port is taken."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
