"""The middlewares every response passes: errors as JSON (never a traceback), and the
security headers."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Middleware

from probe.config.urls import icon_origin
from probe.web.query import BadRequest
from probe.web.responses import Handler, json_error

__all__ = ["errors", "security_headers"]

log = logging.getLogger("probe.web")


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as err:
        return json_error(400, str(err))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return json_error(exc.status, exc.reason)
        raise
    except Exception:  # the one place a bug becomes a 500; never a traceback to the client
        log.exception("web: %s %s failed", request.method, request.path)
        return json_error(500, "internal error")


def security_headers(icon: str | None) -> Middleware:
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
