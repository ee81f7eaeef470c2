"""The embedded HTTP server (aiohttp.web, on the App's event loop).

    GET /                                         the status page (HTML; filters, pg/sz, refresh)
    GET /healthz                                  200 {"status": "ok" | "degraded"}, no config
                                                  (+ "reload": "failed" after a refused reload)
    POST /-/reload                                reload the config: 200 applied, 422 refused
    GET /api/v1/reload                            how the last reload went, with its errors
    GET /api/v1/sla                               EaseProbe's item shape + windows; its filters
    GET /api/v1/probes/{name}                     status, SLA per window, results, incidents
    GET /metrics                                  Prometheus exposition of the registry
    GET /badge/{name}/status.svg
    GET /badge/{name}/uptime/{24h|7d|30d|90d}.svg
    GET /badge/{name}/response-time/{24h|7d|30d}.svg
    GET|POST /api/v1/push/{token}                 a push probe's heartbeat (?status=up|down,
                                                  msg, latency ms): 200, 400, 404, 429
    GET|POST /api/v1/push/{token}/start           its job started: the next heartbeat's
                                                  latency is the job's duration

With `settings.http.token` and/or `username`/`password`, everything but /healthz, the
badges and the push URLs (their token is their credential) needs `Authorization: Bearer
<token>` or HTTP basic auth (a browser asks for it). Bad query parameters are a 400 with a
JSON error, an unknown probe a 404 with a JSON error, and no request ever gets a traceback.
The web layer only reads (the store through StatusSource, the metrics through the registry
the App hands in), but for the push URLs, whose calls it hands to the App's receiver.

This module puts the application together and serves it; the parts live beside it: the
routes in handlers (JSON shapes in json_shapes), authentication in auth, the error and
security-header middlewares in middleware, the connection limits and timeouts in
connections, the access log in access_log, the push URLs in push_route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from probe.config.models import HTTPAccessLogSettings
from probe.web.access_log import AccessLogger, open_access_log
from probe.web.auth import auth_middleware
from probe.web.connections import (
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    GatedSite,
    Limiter,
    connection_cap,
    connection_state,
)
from probe.web.data import StatusSource
from probe.web.handlers import STATE, AppState, Reloader, add_routes
from probe.web.middleware import errors, security_headers
from probe.web.push_route import PushReceiver, add_push_routes
from probe.web.query import DEFAULT_PAGE_SIZE, BadRequest, filter_summaries
from probe.web.render import StatusPage

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "HEADER_TIMEOUT",
    "IDLE_TIMEOUT",
    "BadRequest",
    "connection_cap",
    "create_app",
    "filter_summaries",
    "start_server",
]

log = logging.getLogger("probe.web")


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
    reloader: Reloader | None = None,
    push: PushReceiver | None = None,
) -> web.Application:
    """The server's routes over `source`; `page` shares a StatusPage (and its cache) with
    the App's status-file writer, else one is made with `title` and `icon`; `push` records
    the heartbeats of push probes (no push routes without it)."""
    page = page or StatusPage(source, title=title, icon=icon)
    app = web.Application(
        middlewares=[
            security_headers(page.icon),
            connection_state,
            errors,
            auth_middleware(token, basic),
        ],
        client_max_size=64 * 1024,
    )
    app[STATE] = AppState(source, registry, healthy, page, reloader)
    add_routes(app)
    if push is not None:
        add_push_routes(app, push)
    return app


async def start_server(
    app: web.Application,
    host: str,
    port: int,
    *,
    max_connections: int = 100,
    access_log: HTTPAccessLogSettings | None = None,
    header_timeout: float = HEADER_TIMEOUT,
    idle_timeout: float = IDLE_TIMEOUT,
) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (0 = any free port), at most `max_connections` clients at
    once (see connection_cap), each closed when a request head takes over `header_timeout`
    or it idles `idle_timeout` between requests; `access_log` writes one line per request.
    Raises OSError when the port is taken, StartupError when the access log cannot be
    opened."""
    stop_log: Callable[[], None] | None = None
    options: dict[str, Any] = {"access_log": None}
    if access_log is not None:
        logger, stop_log = open_access_log(access_log)
        options = {"access_log": logger, "access_log_class": AccessLogger}
        stopper = stop_log

        async def close_log(_app: web.Application) -> None:
            await asyncio.to_thread(stopper)

        app.on_cleanup.append(close_log)
    limit = connection_cap(max_connections)
    if limit < max_connections:
        log.info(
            "web: at most %d connections (a quarter of RLIMIT_NOFILE), not %d",
            limit,
            max_connections,
        )
    runner = web.AppRunner(app, keepalive_timeout=idle_timeout, **options)
    await runner.setup()
    site = GatedSite(runner, host, port, Limiter(limit, header_timeout))
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
