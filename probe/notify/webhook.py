"""The generic webhook (`http` in EaseProbe; `webhook` is accepted too): one HTTP request per
notification, with a JSON body by default.

The default body is the notification as a JSON document (templates/webhook/, the same document
the log notifier writes), sent with `Content-Type: application/json`: what a program at the
other end can parse, where EaseProbe sends markdown text (its open issue #699). A `template`
(or `template_file`) per event replaces the body with the user's own; the text it renders is
sent as it is (set a `Content-Type` header if it is not JSON).

Keys: EaseProbe's `url`, `headers` (a map, or EaseProbe's list of `{name, value}`) and
`success_status` (one code, or a list of codes and `[lo, hi]` ranges; default 200-299), plus
`method` (default POST). The request goes through the App's shared HTTP client.

Answers: a success status is delivered; 429 is temporary (Retry-After honoured); 408 and 5xx,
timeouts and connection errors are temporary; any other answer (a 4xx, an unexpected redirect)
is permanent. Secrets: the URL's path and query (where webhook tokens live) and header values
never appear in logs, errors or `target()`, which shows `scheme://host:port` only; an answer's
error text is quoted with any echo of the URL's path or query cut out.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import BeforeValidator, Field, SecretStr, WithJsonSchema, field_validator

from probe import __version__
from probe.durations import format_duration
from probe.notify._http import check_http_url, error_text, public_url, retry_after
from probe.notify.base import DeliveryError, Notification, Notifier, NotifierSpec
from probe.notify.templates import TemplatedSpec, Templates

__all__ = ["USER_AGENT", "WebhookNotifier", "WebhookSpec", "render_document"]

USER_AGENT = f"probe/{__version__}"

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

_default_templates: Templates | None = None


def _templates(given: Any) -> Any:
    """The App's renderer; a default one (UTC) for a notifier built without it."""
    global _default_templates
    if given is not None:
        return given
    if _default_templates is None:
        _default_templates = Templates()
    return _default_templates


def render_document(templates: Any, notification: Notification, override: str | None) -> str:
    """The notification rendered in the `webhook` family: by default its JSON document.

    JSON comes out on one line (the templates indent it for their readers), so the body, a
    dry run's log line and the log notifier's line are the same text; anything else an
    override renders is kept as it is.
    """
    text: str = _templates(templates).render(
        "webhook", notification.event, notification, override=override
    )
    try:
        data = json.loads(text)
    except ValueError:
        return text
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------- spec


def _status_ranges(value: Any) -> Any:
    """`200`, `[200, 204]`, `[[200, 299], 302]` -> [(lo, hi), ...]. EaseProbe takes one code."""
    if isinstance(value, bool):
        raise ValueError("expected a status code, or a list of codes and [lo, hi] ranges")
    if isinstance(value, int):
        return [(value, value)]
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                out.append((item, item))
            elif isinstance(item, list | tuple) and len(item) == 2:
                out.append(tuple(item))
            else:
                raise ValueError("each entry is a status code or a [lo, hi] range")
        return out
    return value


def _header_map(value: Any) -> Any:
    """EaseProbe writes headers as a list of `{name, value}`; a map is accepted too."""
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, dict) or set(item) != {"name", "value"}:
                raise ValueError("each header is {name: ..., value: ...}")
            out[item["name"]] = item["value"]
        return out
    return value


# What the two BeforeValidators above take, for `probe schema`.
_HEADERS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "object", "additionalProperties": {"type": "string"}},
        {
            "type": "array",
            "description": "EaseProbe's form: a list of {name, value}",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                "required": ["name", "value"],
                "additionalProperties": False,
            },
        },
    ]
}
_RANGE_SCHEMA: dict[str, Any] = {
    "type": "array",
    "prefixItems": [{"type": "integer"}, {"type": "integer"}],
    "minItems": 2,
    "maxItems": 2,
}
_STATUS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "description": "one status code (EaseProbe's form)"},
        {
            "type": "array",
            "items": {"anyOf": [{"type": "integer"}, _RANGE_SCHEMA]},
            "minItems": 1,
        },
    ]
}


class WebhookSpec(TemplatedSpec):
    """An entry under `notify: http:` (or `webhook:`)."""

    kind: ClassVar[str] = "http"

    # Secrets both: a webhook's token sits in its URL's path or query, an API key in a header.
    url: SecretStr
    method: str = "POST"
    headers: Annotated[
        dict[str, SecretStr], BeforeValidator(_header_map), WithJsonSchema(_HEADERS_SCHEMA)
    ] = Field(default_factory=dict)
    success_status: Annotated[
        list[tuple[int, int]], BeforeValidator(_status_ranges), WithJsonSchema(_STATUS_SCHEMA)
    ] = Field(default_factory=lambda: [(200, 299)], min_length=1)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: SecretStr) -> SecretStr:
        return SecretStr(check_http_url(value.get_secret_value()))

    @field_validator("method")
    @classmethod
    def _valid_method(cls, value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise ValueError(f'invalid HTTP method "{value[:20]}"')
        return value.upper()

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, text in value.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f'invalid header name "{name[:40]}"')
            if "\r" in text.get_secret_value() or "\n" in text.get_secret_value():
                raise ValueError(f"header {name}: a value cannot contain a line break")
        return value

    @field_validator("success_status")
    @classmethod
    def _valid_ranges(cls, value: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for lo, hi in value:
            if not (100 <= lo <= hi <= 599):
                raise ValueError(f"invalid status range {lo}-{hi} (codes are 100 to 599)")
        return value

    def target(self) -> str:
        return public_url(self.url.get_secret_value())


# --------------------------------------------------------------------------- errors


def _hide(text: str, url: str) -> str:
    """`text` without any echo of the URL, its path or its query (where the secrets are)."""
    parts = urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    secrets = [url, parts.path + query, parts.query, parts.path if len(parts.path) > 1 else ""]
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "…")
    return text


def _reason(exc: httpx.TransportError) -> str:
    """A short reason from the OS error under httpx's exception. Never str(exc): some of
    httpx's messages carry the URL."""
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.errno:
            # asyncio's own text ("Connect call failed ('10.0.0.1', 443)") says less.
            return os.strerror(cause.errno).lower()
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection without a valid HTTP answer"
    return type(exc).__name__


# --------------------------------------------------------------------------- notifier


class WebhookNotifier(Notifier[WebhookSpec]):
    spec_type: ClassVar[type[NotifierSpec]] = WebhookSpec
    format: ClassVar[str] = "webhook"

    def render(self, notification: Notification) -> str:
        override = self.spec.override(notification.event)
        return render_document(self.context.templates, notification, override)

    def _headers(self) -> httpx.Headers:
        headers = httpx.Headers({"Content-Type": "application/json", "User-Agent": USER_AGENT})
        # The user's win, whatever their case.
        headers.update({k: v.get_secret_value() for k, v in self.spec.headers.items()})
        return headers

    async def send(self, payload: Any) -> None:
        body = payload.encode("utf-8") if isinstance(payload, str) else json.dumps(payload).encode()
        client: httpx.AsyncClient = self.context.http
        url = self.spec.url.get_secret_value()
        where = public_url(url)
        try:
            # httpx's timeout is per phase; this bounds the whole exchange.
            async with asyncio.timeout(self.timeout):
                response = await client.request(
                    self.spec.method,
                    url,
                    content=body,
                    headers=self._headers(),
                    timeout=self.timeout,
                    follow_redirects=False,
                )
        except (TimeoutError, httpx.TimeoutException):
            raise DeliveryError(
                f"{where}: no answer within {format_duration(self.timeout)}"
            ) from None
        except httpx.TransportError as exc:
            raise DeliveryError(f"cannot reach {where}: {_reason(exc)}") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{where}: request failed ({type(exc).__name__})") from None
        code = response.status_code
        if any(lo <= code <= hi for lo, hi in self.spec.success_status):
            return
        text = _hide(error_text(response), url)
        message = f"{where} answered {code}" + (f": {text}" if text else "")
        if code == 429:
            raise DeliveryError(message, retry_after=retry_after(response))
        if code == 408 or code >= 500:
            raise DeliveryError(message)
        if 300 <= code < 400:
            message += " (a redirect: check the URL)"
        # A 4xx will not change by itself (a bad token, a wrong path).
        raise DeliveryError(message, permanent=True)
