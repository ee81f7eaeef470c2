"""Apprise notifier: one message to every apprise URL listed, reaching the 100+ services
apprise supports (https://github.com/caronc/apprise/wiki).

Keys: `urls` (a list of apprise URLs) and/or `url` (one). Each URL is checked at load time
with apprise's own parser: an unknown scheme, or a URL its service cannot use, is a config
error naming the entry (never the URL: it holds tokens and passwords).

The message is the `markdown` template (a user's `template:` override applies): its first line
is the title (leading `#` and bold markers removed), the rest the body, sent with apprise's
markdown body format so it converts for services that take text or HTML. Down alerts go out
as apprise's `failure` type, recoveries as `success` (services that colour or tag by type).

apprise sends with blocking HTTP clients: every URL's send runs in a worker thread
(`asyncio.to_thread`), all URLs at once, each bounded by the notifier's timeout. apprise says
only whether a service took the message, not why not (its result cannot tell a bad token, a
4xx, from a server error, a 5xx), so every failure is a temporary DeliveryError; its text
quotes what apprise logged for the service, with the parts of the URL masked. When some URLs
took a message and others did not, a retry of that notification goes only to the ones that
did not (remembered in memory for the last 1,000 notifications).

apprise's own log does not reach ours: its records could carry URLs (tokens), so what it says
reaches us only through those masked DeliveryError messages.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import logging
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
from pydantic import AfterValidator, Field, SecretStr, model_validator

from probe.notify.base import (
    DeliveryError,
    Event,
    Notification,
    Notifier,
    NotifierSpec,
    NotifyContext,
)
from probe.notify.templates import TemplatedSpec

__all__ = ["AppriseNotifier", "AppriseSpec"]


def _load_plugins() -> None:
    """Load apprise's plugins now (it would on the first URL parsed). Its e-mail plugin
    imports `imghdr`, deprecated since Python 3.11, for a shim of its own: a warning no user
    can act on, kept out of the log (and out of test runs that turn warnings into errors)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*imghdr.*", category=DeprecationWarning)
        apprise.NotificationManager().load_modules()  # type: ignore[no-untyped-call]


_load_plugins()

_APPRISE_LOG = logging.getLogger("apprise")
# Its records may hold URLs; what matters reaches our log through DeliveryError, masked.
_APPRISE_LOG.propagate = False
_APPRISE_LOG.setLevel(logging.WARNING)

# Notifications whose delivery to some URLs is remembered (for retries to skip those).
_REMEMBERED = 1000
# URL parts shorter than this are not masked in apprise's messages (too common to hide).
_MASK_MIN = 4
_REASON_CHARS = 300
_MD_ESCAPE = re.compile(r"\\([\\`*_~|\[\]<>#+\-=!.()])")

# apprise >= 2.0 takes a whole-call timeout and returns a result with per-service logs.
_HAS_TIMEOUT = "timeout" in inspect.signature(apprise.Apprise.notify).parameters

_NOTIFY_TYPES = {
    Event.DOWN: apprise.NotifyType.FAILURE,
    Event.RECOVERY: apprise.NotifyType.SUCCESS,
    Event.SLA: apprise.NotifyType.INFO,
    Event.TEST: apprise.NotifyType.INFO,
    Event.FLAPPING: apprise.NotifyType.WARNING,
    Event.STABLE: apprise.NotifyType.INFO,
    Event.EXPIRY: apprise.NotifyType.WARNING,
    Event.DEGRADED: apprise.NotifyType.WARNING,
    Event.GROUP: apprise.NotifyType.WARNING,
}


def _asset() -> apprise.AppriseAsset:
    try:
        # Nothing written to disk by apprise's persistent store (apprise >= 1.9).
        return apprise.AppriseAsset(app_id="probe", app_desc="probe", storage_mode="memory")
    except (AttributeError, TypeError):  # an older apprise, without that store
        return apprise.AppriseAsset(app_id="probe", app_desc="probe")


def _scheme(url: str) -> str:
    scheme = url.partition("://")[0].strip().lower() if "://" in url else ""
    return scheme[:20]


def _valid_url(value: SecretStr) -> SecretStr:
    """apprise's own parser decides; the message names the scheme, never the URL."""
    url = value.get_secret_value().strip()
    if not url:
        raise ValueError("empty URL")
    scheme = _scheme(url)
    if not scheme:
        raise ValueError("not a URL; apprise URLs look like scheme://... (e.g. json://host/path)")
    if apprise.Apprise.instantiate(url, asset=_asset()) is not None:
        return SecretStr(url)
    if scheme in ("http", "https"):
        raise ValueError(
            f"apprise does not recognise this {scheme}:// URL as a service's webhook; "
            "for a plain webhook use json:// or form:// (or the http notifier)"
        )
    if scheme not in apprise.NotificationManager():  # type: ignore[no-untyped-call]
        raise ValueError(f'unknown apprise scheme "{scheme}://"')
    raise ValueError(
        f'not a valid "{scheme}://" URL for apprise (check its form in apprise\'s wiki)'
    )


AppriseURL = Annotated[SecretStr, AfterValidator(_valid_url)]


class AppriseSpec(TemplatedSpec):
    """An `apprise:` entry."""

    kind: ClassVar[str] = "apprise"

    urls: list[AppriseURL] = Field(default_factory=list)
    url: AppriseURL | None = None

    @model_validator(mode="after")
    def _some_url(self) -> AppriseSpec:
        if not self.urls and self.url is None:
            raise ValueError("urls is required: a list of apprise URLs")
        return self

    def all_urls(self) -> list[str]:
        urls = [url.get_secret_value() for url in self.urls]
        if self.url is not None:
            urls.append(self.url.get_secret_value())
        return urls

    def target(self) -> str:
        return "apprise: " + ", ".join(_label(url) for url in self.all_urls())


def _label(url: str) -> str:
    """The scheme shown for `url` (target(), errors): `json`, `tgram`, or for a service's own
    webhook URL (https://discord.com/api/webhooks/...) apprise's name for that service."""
    scheme = _scheme(url)
    if scheme in ("http", "https"):
        plugin = apprise.Apprise.instantiate(url, asset=_asset())
        if plugin is not None:
            name = plugin.secure_protocol or plugin.protocol
            if isinstance(name, tuple | list):
                name = name[0] if name else scheme
            return str(name or scheme)
    return scheme


@dataclass
class _Service:
    """One URL, with an Apprise object of its own so that each one's outcome is known."""

    label: str
    apobj: apprise.Apprise
    mask: _Masker


class AppriseNotifier(Notifier[AppriseSpec]):
    spec_type: ClassVar[type[NotifierSpec]] = AppriseSpec
    format: ClassVar[str] = "markdown"

    def __init__(self, spec: AppriseSpec, context: NotifyContext) -> None:
        super().__init__(spec, context)
        asset = _asset()
        self._services: list[_Service] = []
        for url in spec.all_urls():
            apobj = apprise.Apprise(asset=asset)
            apobj.add(url)
            self._services.append(_Service(_label(url), apobj, _Masker(url)))
        # notification id -> indexes of the services that took it.
        self._delivered: OrderedDict[str, set[int]] = OrderedDict()

    def render(self, notification: Notification) -> dict[str, str]:
        """{id, type, title, body}: the title is the markdown's first line."""
        event = notification.event
        text = self.context.templates.render(
            self.format, event, notification, override=self.spec.override(event)
        )
        title, body = _title_body(text)
        return {
            "id": notification.id,
            "type": str(_NOTIFY_TYPES[event].value),
            "title": title,
            "body": body or title,
        }

    async def send(self, payload: Any) -> None:
        key = str(payload.get("id") or "")
        done = self._delivered.get(key, set())
        pending = [i for i in range(len(self._services)) if i not in done]
        outcomes = await asyncio.gather(
            *(self._send_one(self._services[i], payload) for i in pending)
        )
        failures = [reason for reason in outcomes if reason is not None]
        if not failures:
            self._delivered.pop(key, None)
            return
        if key:
            took = {i for i, reason in zip(pending, outcomes, strict=True) if reason is None}
            if took:
                self._delivered[key] = done | took
                self._delivered.move_to_end(key)
                while len(self._delivered) > _REMEMBERED:
                    self._delivered.popitem(last=False)
        # apprise cannot tell a rejected token from a server error: always temporary.
        raise DeliveryError("apprise: " + "; ".join(failures))

    async def _send_one(self, service: _Service, payload: dict[str, str]) -> str | None:
        """None when `service` took the message, else why not (masked)."""
        kwargs: dict[str, Any] = {
            "body": payload["body"],
            "title": payload["title"],
            "notify_type": payload.get("type", apprise.NotifyType.INFO),
            "body_format": apprise.NotifyFormat.MARKDOWN,
        }
        if _HAS_TIMEOUT:
            kwargs["timeout"] = self.timeout
        try:
            # The thread cannot be cancelled; apprise's own timeout ends it soon after ours.
            async with asyncio.timeout(self.timeout + 1):
                result = await asyncio.to_thread(service.apobj.notify, **kwargs)
        except TimeoutError:
            return f"{service.label}: timed out after {self.timeout:g}s"
        except Exception as exc:  # a plugin bug must not escape as anything but a failure
            return (
                f"{service.label}: {service.mask(str(exc))[:_REASON_CHARS] or type(exc).__name__}"
            )
        if result:
            return None
        return f"{service.label}: {_reason(result, service.mask)}"


def _reason(result: Any, mask: _Masker) -> str:
    """What apprise logged for a failed send (apprise >= 2: per-service logs)."""
    status = getattr(getattr(result, "status", None), "name", "")
    if status == "TIMEOUT":
        return "timed out"
    messages: list[str] = []
    logs = getattr(result, "logs", None)
    if callable(logs):
        for entry in logs():
            if entry.level in ("WARNING", "ERROR", "CRITICAL"):
                messages.append(" ".join(str(entry.message).split()))
    if not messages:
        return "not delivered (apprise gave no reason)"
    text = mask(messages[-1] if len(messages) == 1 else " / ".join(messages[-2:]))
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


class _Masker:
    """Hides the parts of one apprise URL (tokens live in the host, the path and the query,
    depending on the service) in text that apprise produced."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        candidates: set[str] = set()
        try:
            host = parts.hostname or ""
        except ValueError:
            host = ""
        netloc = parts.netloc.rpartition("@")[2]
        if host and not _is_host_name(host):
            candidates.add(host)
            candidates.add(netloc)
        if "@" in parts.netloc:
            userinfo = parts.netloc.rpartition("@")[0]
            candidates.update(userinfo.split(":", 1))
            candidates.add(userinfo)
        candidates.update(segment for segment in parts.path.split("/"))
        candidates.update(value for _key, value in parse_qsl(parts.query))
        candidates.add(parts.fragment)
        secrets = {c for c in candidates if len(c) >= _MASK_MIN}
        secrets |= {unquote(c) for c in secrets}
        ordered = sorted((s for s in secrets if len(s) >= _MASK_MIN), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub("***", text)


def _is_host_name(host: str) -> bool:
    """A real host (shown), as opposed to a token in the host's place (tgram://TOKEN/...)."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "." in host
    return True


def _title_body(text: str) -> tuple[str, str]:
    lines = text.strip().splitlines()
    if not lines:
        return "", ""
    title = lines[0].strip().lstrip("#").strip()
    for marker in ("**", "__"):
        if len(title) > 4 and title.startswith(marker) and title.endswith(marker):
            title = title[2:-2].strip()
    # Titles go out as plain text: the template's markdown escapes would show.
    title = _MD_ESCAPE.sub(r"\1", title)
    body = "\n".join(lines[1:]).strip("\n")
    return title, body
