"""Posting JSON to a chat API with the shared client, and what its answer means.

The one place where httpx exceptions and HTTP answers become `DeliveryError`s:
- 2xx: delivered.
- 429: temporary, with `retry_after` from the `Retry-After` header or the body (Telegram's
  `parameters.retry_after`, Discord's `retry_after`).
- 408 and 5xx, timeouts, connection errors: temporary.
- any other answer (4xx, an unexpected redirect): permanent, with the API's own error text.

Messages never hold the URL (a Telegram token sits in its path, a webhook's secret in its path
or query): they name the service and, for connection errors, the host only. Any secret the
caller lists is masked in the API's text too, should an API ever echo it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from probe.notify.base import DeliveryError

__all__ = [
    "check_http_url",
    "error_text",
    "is_loopback",
    "post_json",
    "public_url",
    "retry_after",
]

# httpx logs every request at INFO with the full URL: a Telegram token or a webhook path
# would reach the logs whatever level the App sets for the root logger.
logging.getLogger("httpx").setLevel(logging.WARNING)

_MAX_ERROR_TEXT = 300


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: Any,
    *,
    service: str,
    timeout: float,
    secrets: Iterable[str] = (),
    describe: Callable[[httpx.Response], str] | None = None,
) -> httpx.Response:
    """POST `payload` as JSON to `url`; the response when it is a 2xx, else DeliveryError.

    `service` names the API in messages ("Telegram"); `describe` extracts the API's error
    text from a failed response (default: `error_text`).
    """
    hidden = [secret for secret in secrets if secret]
    try:
        # httpx's timeout bounds each phase; this bounds the whole exchange.
        async with asyncio.timeout(timeout):
            response = await client.post(
                url,
                json=payload,
                timeout=timeout,
                follow_redirects=False,
                headers={"Accept": "application/json, text/plain;q=0.9, */*;q=0.1"},
            )
    except (httpx.TimeoutException, TimeoutError):
        raise DeliveryError(f"{service}: no answer within {timeout:g}s") from None
    except httpx.UnsupportedProtocol:
        raise DeliveryError(
            f"{service}: unsupported URL scheme (use http or https)", permanent=True
        ) from None
    except httpx.InvalidURL:
        raise DeliveryError(f"{service}: invalid URL", permanent=True) from None
    except httpx.TransportError as exc:
        raise DeliveryError(
            f"{service}: cannot reach {_host(url)}: {_transport_reason(exc)}"
        ) from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    text = _mask((describe or error_text)(response), hidden)
    shown = f"{service} answered {status}" + (f": {text}" if text else "")
    if status == 429:
        raise DeliveryError(shown, retry_after=retry_after(response))
    if status == 408 or status >= 500:
        raise DeliveryError(shown)
    if 300 <= status < 400:
        shown += " (a redirect: check the URL)"
    raise DeliveryError(shown, permanent=True)


def error_text(response: httpx.Response) -> str:
    """The API's own words for a failed request: a JSON body's `description`, `message`,
    `error.message` or `error`, else the body as text; one line, at most 300 characters."""
    body = _json_body(response)
    text = ""
    if isinstance(body, Mapping):
        for key in ("description", "message", "error_description", "error"):
            value = body.get(key)
            if isinstance(value, Mapping):
                value = value.get("message") or value.get("code")
            if isinstance(value, str) and value.strip():
                text = value
                break
    elif body is None:
        text = response.text
    return _one_line(text)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a 429: the `Retry-After` header (seconds or an HTTP date), else
    the body's `parameters.retry_after` (Telegram) or `retry_after` (Discord, Slack APIs)."""
    header = response.headers.get("Retry-After")
    if header:
        seconds = _parse_retry_after(header.strip())
        if seconds is not None:
            return seconds
    body = _json_body(response)
    if isinstance(body, Mapping):
        parameters = body.get("parameters")
        candidates = [
            parameters.get("retry_after") if isinstance(parameters, Mapping) else None,
            body.get("retry_after"),
        ]
        for value in candidates:
            if isinstance(value, int | float) and _is_seconds(value):
                return float(value)
    return None


def public_url(url: str) -> str:
    """`scheme://host[:port]` of `url`: what may be shown of a webhook (its path and query
    are the secret)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def is_loopback(url: str) -> bool:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    return host in ("localhost", "::1") or host.startswith("127.")


def _is_seconds(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0


def _parse_retry_after(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _json_body(response: httpx.Response) -> Any:
    """The body parsed as JSON; None when it is not JSON."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"


def _mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def _transport_reason(exc: httpx.TransportError) -> str:
    """A short reason from the OS error under httpx's exception; never the URL."""
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 10:
        if isinstance(cause, OSError) and cause.errno:
            # asyncio's own strerror ("Connect call failed ('10.0.0.1', 443)") names the
            # address; the errno's text is the reason.
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
        seen += 1
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection or answered garbage"
    return type(exc).__name__


def check_http_url(value: str, *, what: str = "URL") -> str:
    """`value` when it is an absolute http(s) URL with a host; else ValueError. The message
    never repeats the URL (a webhook URL is a secret)."""
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError(f"invalid {what}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{what} must start with https:// (or http://)")
    if not host:
        raise ValueError(f"{what} has no host")
    return value.strip()
