"""The request a redirect asks for (RFC 9110 §15.4), as the http prober follows them one by one.

Browsers' rules, which servers are written for: a 303 turns any method but HEAD into GET, and
so does a 301 or 302 after a POST; 307 and 308 repeat the request as it was, body included.
Credentials stay with their origin: `Authorization` (EaseProbe's basic auth is sent as that
header) and a `Host` the user set are not carried to another scheme, host or port, so a
redirect cannot hand a password to whoever it points at. Cookies are never carried (the
prober keeps none).
"""

from __future__ import annotations

import httpx

__all__ = ["REDIRECT_STATUSES", "next_request"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# What describes a body, dropped with it when a redirect turns the request into a GET.
_BODY_HEADERS = ("content-length", "transfer-encoding", "content-type", "content-encoding")


def next_request(request: httpx.Request, response: httpx.Response) -> httpx.Request | None:
    """The request to follow `response` with, or None when it is not a redirect (a 3xx
    without a Location is an answer to judge).

    Raises httpx.RemoteProtocolError for a Location that is not a URL and
    httpx.UnsupportedProtocol for one that is not http or https (the prober's messages)."""
    if response.status_code not in REDIRECT_STATUSES:
        return None
    location = response.headers.get("location")
    if location is None:
        return None
    url = _resolve(request.url, location)
    method = _method_after(request.method, response.status_code)
    headers = httpx.Headers(request.headers)
    headers.pop("cookie", None)
    if _origin(url) != _origin(request.url):
        headers.pop("authorization", None)
        headers.pop("host", None)
        # The new Host comes first, as in a request httpx builds.
        headers = httpx.Headers([(b"Host", url.netloc), *headers.raw])
    content: bytes | None = request.content
    if method != request.method and method == "GET":
        content = None
        for name in _BODY_HEADERS:
            headers.pop(name, None)
    return httpx.Request(
        method, url, headers=headers, content=content, extensions=request.extensions
    )


def _resolve(base: httpx.URL, location: str) -> httpx.URL:
    try:
        url = base.join(location.strip())
    except httpx.InvalidURL as exc:
        raise httpx.RemoteProtocolError(f"invalid URL in location header: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"redirected to a {url.scheme or 'relative'} URL")
    if not url.host:
        raise httpx.RemoteProtocolError("invalid URL in location header: no host")
    return url


def _method_after(method: str, status: int) -> str:
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = 443 if url.scheme == "https" else 80
    return url.scheme, url.host, url.port or default
