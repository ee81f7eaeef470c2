"""What the handlers and middlewares answer with: the handler type, a JSON error, a
compressed body, an SVG badge."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

__all__ = ["Handler", "compressed", "json_error", "svg_response"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def compressed(response: web.Response) -> web.Response:
    """gzip/deflate when the client accepts it: a page of 100 probes is ~650 KB of repetitive
    HTML, ~10x smaller compressed. aiohttp compresses bodies over 4 KB in a thread."""
    response.enable_compression()
    return response


def svg_response(body: str) -> web.Response:
    return web.Response(
        text=body,
        content_type="image/svg+xml",
        headers={"Cache-Control": "max-age=60"},
    )
