"""WebSocket probes: the opening handshake with `url` (ws:// or wss://), then either a ping
answered by a pong (EaseProbe's check) or, with `send`, a message sent and the first reply
judged with `contain` / `not_contain` / `regex` (as the http prober judges a body).

The client is the `websockets` library (its asyncio implementation). Without a proxy the TCP
connection is opened by `probers/_connect.py` (phases `resolve` and `connect`, Happy
Eyeballs, `[IP]`) and handed to websockets for the TLS and WebSocket handshakes (phase
`WebSocket handshake`); through a proxy (`proxy:`, or HTTP_PROXY/HTTPS_PROXY/NO_PROXY read as
Go does, `probers/_proxy.py`) websockets connects by itself (phase `connect`). Redirects are
not followed (EaseProbe's gorilla client does not either): a 3xx is a refused upgrade.

Messages (`_describe()` is the one place the library's errors become them): `the server
refused the WebSocket upgrade: HTTP 403`, `connection closed by the server during WebSocket
handshake`, `connection closed by the server during ping (code 1001)`, `reply does not
contain "ok"`, `reply contains "error"`, `connection refused`, the TLS messages of
`_net.describe_os_error`, and the scheduler's `timeout after 5s during ping`.

Conditions read `[STATUS]` (101 once upgraded; the refusing status otherwise) and `[BODY]`
(the reply, as text). Header values and URL credentials never appear in messages or details.

Closing: after a judged check the close handshake is started and waited for briefly
(`_CLOSE_WAIT`); on any other path (an error, the scheduler's timeout cancelling the check)
the connection is aborted at once, so nothing outlives the check.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import ssl
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import websockets
from pydantic import Field, ValidationInfo, field_validator, model_validator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
    ProxyError,
    WebSocketException,
)

from probe.config.models import ConfigPath, ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.durations import format_duration
from probe.errors import ProbeError
from probe.probers._connect import connect_tcp
from probe.probers._match import Matcher, PatternKeys, mismatch
from probe.probers._net import describe_os_error, plain_error, redact_url
from probe.probers._proxy import ProxyRoute, invalid_proxy
from probe.probers.base import Prober, SharedResources
from probe.text import printable
from probe.tlsconf import check_cert_and_key, client_context, existing_file

__all__ = ["WebSocketProber", "WebSocketSpec"]

# How long a judged check waits for the server's half of the close handshake.
_CLOSE_WAIT = 0.5
# The largest reply read (websockets refuses bigger messages with a "message too big").
_MAX_REPLY = 1024 * 1024
_HANDSHAKE = "WebSocket handshake"

# websockets logs failed handshakes and closings; each check's result already says so.
_DRIVER_LOG = logging.getLogger("probe.probers.websocket.driver")
_DRIVER_LOG.setLevel(logging.CRITICAL)


class WebSocketSpec(PatternKeys, ProbeSpec):
    """A `websocket:` entry: EaseProbe's keys (`url`, `headers`, `proxy`) plus TLS
    (`ca`/`cert`/`key`/`insecure`), `send` and the reply's `contain`/`not_contain`/`regex`."""

    kind: ClassVar[str] = "websocket"
    condition_placeholders: ClassVar[frozenset[str]] = frozenset({"STATUS", "BODY"})

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    proxy: str | None = None
    # Without `proxy`, HTTP_PROXY/HTTPS_PROXY/NO_PROXY apply, as in EaseProbe (Go's default).
    proxy_from_env: bool = True
    insecure: bool = False
    ca: ConfigPath | None = None
    cert: ConfigPath | None = None
    key: ConfigPath | None = None
    # A text message sent once connected; the first reply is then judged (no ping).
    send: str | None = None

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError('the scheme must be "ws" or "wss" (ws://host/path)')
        try:
            port = parts.port
        except ValueError:
            raise ValueError("the port must be 1-65535") from None
        if not parts.hostname or (port is not None and not 1 <= port <= 65535):
            raise ValueError("the URL needs a host (and a port in 1-65535)")
        try:
            websockets.uri.parse_uri(value)
        except InvalidURI as exc:
            raise ValueError(f"not a WebSocket URL: {exc.msg}") from None
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or any(c in name for c in " :\r\n\t") or any(c in text for c in "\r\n"):
                raise ValueError(f'header "{printable(name, 40)}": not a valid header line')
        return value

    @field_validator("proxy")
    @classmethod
    def _valid_proxy(cls, value: str | None) -> str | None:
        if not value:
            return None
        value = value.strip()
        problem = invalid_proxy(value)
        if problem is not None:
            raise ValueError(f"proxy: {problem}")
        if value.startswith("socks") and importlib.util.find_spec("python_socks") is None:
            raise ValueError(
                "a socks5 proxy needs the optional package python-socks: pip install python-socks"
            )
        return value

    @field_validator("ca", "cert", "key")
    @classmethod
    def _existing(cls, value: Any, info: ValidationInfo) -> Any:
        return existing_file(value)

    @model_validator(mode="after")
    def _tls_pair(self) -> WebSocketSpec:
        check_cert_and_key(self.cert, self.key)
        return self

    def endpoint(self) -> str:
        return redact_url(self.url)


class WebSocketProber(Prober[WebSocketSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = WebSocketSpec

    def __init__(self, spec: WebSocketSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        parts = urlsplit(spec.url)
        self._tls = parts.scheme == "wss"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        route = ProxyRoute.fixed(spec.proxy) if spec.proxy else None
        if route is None and spec.proxy_from_env:
            route = ProxyRoute.from_environment()
        # The proxy rules are HTTP's: ws:// goes as http:// would, wss:// as https://.
        as_http = httpx.URL(parts._replace(scheme="https" if self._tls else "http").geturl())
        self._proxy = route.proxy_for(as_http) if route is not None else None
        # websockets sends a URL's user:password as Basic credentials, and an Authorization
        # header as well if one is set: the header wins, so the URL goes without them.
        self._url = spec.url
        if parts.username is not None and any(h.lower() == "authorization" for h in spec.headers):
            self._url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        self._contain = Matcher.build(spec.contain, spec.regex)
        self._not_contain = Matcher.build(spec.not_contain, spec.regex)
        self._ssl: ssl.SSLContext | None = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (wss only), shared by the probes with the same TLS keys (one costs
        milliseconds and the system's roots in memory) and built on first use: a bad CA file
        is a failed check."""
        if not self._tls:
            return None
        if self._ssl is None:
            spec = self.spec
            key = ("websocket-tls", spec.ca, spec.cert, spec.key, spec.insecure)
            try:
                self._ssl = self.resources.get_or_create(
                    key,
                    lambda: client_context(
                        ca=spec.ca, cert=spec.cert, key=spec.key, insecure=spec.insecure
                    ),
                )
            except (OSError, ssl.SSLError) as exc:
                raise ProbeError(f"TLS: cannot load the certificates: {_load_error(exc)}") from None
        return self._ssl

    def prepare(self) -> None:
        self._ssl_context()

    async def check(self, ctx: CheckContext) -> Outcome:
        context = self._ssl_context()
        kwargs: dict[str, Any] = {
            "additional_headers": self.spec.headers,
            "open_timeout": self.spec.timeout,
            "ping_interval": None,  # one ping, ours; no keepalive task
            "close_timeout": _CLOSE_WAIT,
            "compression": None,  # nothing worth compressing in a probe; saves CPU
            "max_size": _MAX_REPLY,
            "logger": _DRIVER_LOG,
            "proxy": self._proxy,
        }
        if context is not None:
            kwargs["ssl"] = context
        sock: socket.socket | None = None
        ws: ClientConnection | None = None
        judged = False
        try:
            if self._proxy is None:
                sock = await connect_tcp(self._host, self._port, ctx)
                kwargs["sock"] = sock
            else:
                ctx.phase = "connect"
                ctx.details["proxy"] = redact_url(self._proxy)
            ctx.phase = _HANDSHAKE
            ws = await _Connect(self._url, **kwargs)
            ctx.http_status = 101
            outcome = await self._exchange(ws, ctx)
            judged = True
            return outcome
        except (OSError, EOFError, TimeoutError, WebSocketException) as exc:
            status = _refusing_status(exc)
            if status is not None:
                ctx.http_status = status
            raise ProbeError(_describe(exc, ctx.phase, self.spec.timeout), **ctx.details) from None
        finally:
            await _close(ws, sock, graceful=judged)

    async def _exchange(self, ws: ClientConnection, ctx: CheckContext) -> Outcome:
        details = dict(ctx.details)
        if self.spec.send is None:
            ctx.phase = "ping"
            waiter = await ws.ping()
            latency = await waiter
            details["pong_ms"] = round(latency * 1000, 3)
            return Outcome(True, f"upgraded; pong in {latency * 1000:.1f} ms", details)
        ctx.phase = "send"
        await ws.send(self.spec.send)
        ctx.phase = "waiting for the reply"
        reply = await ws.recv()
        text = reply if isinstance(reply, str) else reply.decode("utf-8", "replace")
        ctx.facts["BODY"] = text
        details["reply_bytes"] = len(reply.encode() if isinstance(reply, str) else reply)
        problem = mismatch(text, self._contain, self._not_contain, "reply")
        if problem is not None:
            return Outcome(False, problem, details)
        return Outcome(True, f"upgraded; reply of {details['reply_bytes']} bytes", details)


class _Connect(connect):
    """websockets' connect, without following redirects: a check judges the URL it was
    given (and a socket handed over cannot be reopened for another host)."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


async def _close(
    ws: ClientConnection | None, sock: socket.socket | None, *, graceful: bool
) -> None:
    """Close on every path: briefly and politely after a judged check, at once otherwise."""
    if ws is None:
        if sock is not None:
            sock.close()  # the handshake failed: its transport, if any, is aborted already
        return
    if graceful:
        try:
            await ws.close()  # bounded by close_timeout
            return
        except BaseException:
            ws.transport.abort()
            raise
    ws.transport.abort()


def _load_error(exc: OSError) -> str:
    """OpenSSL's reason (`no certificate or crl found`), or the OS's (`No such file`)."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    return exc.strerror or plain_error(exc)


def _refusing_status(exc: BaseException) -> int | None:
    if isinstance(exc, InvalidStatus):
        return int(exc.response.status_code)
    return None


def _describe(exc: BaseException, phase: str, timeout: float) -> str:
    """The one place websockets' and the OS's errors become messages."""
    if isinstance(exc, InvalidStatus):
        return f"the server refused the WebSocket upgrade: HTTP {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else None
        said = f" (code {code})" if code is not None else ""
        return f"connection closed by the server during {phase}{said}"
    if isinstance(exc, TimeoutError):
        return f"timeout after {format_duration(timeout)} during {phase}"
    if isinstance(exc, InvalidProxy):
        return "proxy: not a valid proxy URL"  # its text repeats the URL, credentials included
    if isinstance(exc, ProxyError):
        return f"proxy: {printable(str(exc), 120)}"
    known = describe_os_error(exc)
    if known is not None:
        return known
    if isinstance(exc, InvalidMessage | EOFError | ConnectionError):
        # EOF, or a reset asyncio reports without an errno (a TLS handshake cut short).
        return f"connection closed by the server during {phase}"
    if isinstance(exc, InvalidHandshake):
        return f"not a WebSocket server: {printable(str(exc), 120)}"
    return f"WebSocket error: {plain_error(exc)}"
