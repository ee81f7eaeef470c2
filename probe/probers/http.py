"""HTTP(S) probes: a request to `url`, judged on its status code and (optionally) its body.

Clients are shared: one `httpx.AsyncClient` per distinct (TLS setting, proxy), one SSLContext per
distinct TLS setting, both held in `SharedResources` (a client costs ~21 ms of CPU and ~0.8 MB).
Keep-alive is off (no idle connection is kept and `Connection: close` is sent), so every check
still opens, and closes, a connection of its own, and measures what a new visitor would see.

The client runs on a small transport of ours over httpcore's public API so that the check can
say where it is (`ctx.phase`): name resolution and connecting happen in our network backend,
the rest is reported by httpcore's `trace` extension. Redirects are followed one by one here
(not by httpx), so a redirect's body is never read and the count is ours.

Messages: driver exceptions are mapped in `_describe()`; judged responses say what failed:
`status 503 not in 200-399`, `body does not contain "ok"`, `too many redirects (more than 10)`.
"""

from __future__ import annotations

import base64
import importlib.util
import logging
import re
import ssl
from collections.abc import AsyncGenerator
from contextlib import aclosing
from http.cookiejar import Cookie, CookieJar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, cast

import httpcore
import httpx
from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from probe.conditions import ConditionError
from probe.conditions.documents import DOC_TYPES, EvalProgram, EvalVariable, compile_eval
from probe.conditions.expression import EvalError
from probe.config.models import ConfigPath, ExpiryWarnings, ProbeSpec, StrictModel
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._httpcheck import (
    HTTPX_ERRORS,
    TimingTracer,
    describe_stream_error,
    describe_transport_error,
)
from probe.probers._httpcore import (
    USER_AGENT,
    ProbeClient,
    WholeBody,
    close_client,
    current_check,
    new_client,
)
from probe.probers._match import Matcher, PatternKeys, mismatch
from probe.probers._net import first_error, redact_url, with_excerpt
from probe.probers._proxy import DIRECT, ProxyRoute
from probe.probers._redirect import next_request
from probe.probers.base import Prober, SharedResources
from probe.text import quoted
from probe.tlsconf import client_context

__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_MAX_REDIRECTS", "USER_AGENT", "HTTPProber", "HTTPSpec"]

DEFAULT_MAX_REDIRECTS = 10
DEFAULT_MAX_BODY = 1024 * 1024

# httpx logs every request at INFO with the full URL, query and userinfo included: secrets
# must never reach the logs (docs/ARCHITECTURE.md), whatever level the App configures.
logging.getLogger("httpx").setLevel(logging.WARNING)

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SIZE = re.compile(r"(\d+)\s*([kmg]i?)?b?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 10**3, "ki": 2**10, "m": 10**6, "mi": 2**20, "g": 10**9, "gi": 2**30}


def _to_bytes(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 1MiB")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match is not None:
            return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]
        raise ValueError(f'invalid size "{value}" (examples: 65536, 512KB, 1MiB)')
    raise ValueError("expected a size such as 1MiB")


# A body read for contain/regex/eval is held in memory whole: past 1 GiB a check is a
# memory hazard, never a health check.
MAX_BODY_LIMIT = 2**30
MAX_REDIRECTS_LIMIT = 100

ByteSize = Annotated[int, BeforeValidator(_to_bytes), Field(ge=1, le=MAX_BODY_LIMIT)]
"""A number of bytes, written `65536`, `512KB` (1000s) or `1MiB` (1024s); at most 1 GiB."""


class _TLSSettings(NamedTuple):
    """What makes two probes' TLS set-ups interchangeable (the key of shared contexts)."""

    insecure: bool
    ca: str | None
    cert: str | None
    key: str | None


class EvalVariableSpec(StrictModel):
    """One of `eval.variables`: a value read from the body before the expression runs."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    type: Literal["int", "float", "string", "bool", "time", "duration"]
    query: str = Field(min_length=1)


class EvalSpec(StrictModel):
    """EaseProbe's `eval`: `doc` says how to read the body, `expression` must hold."""

    # Any case (EaseProbe's examples say `doc: HTML`); editors are offered both spellings.
    doc: Annotated[
        Literal["json", "xml", "html", "text"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
        WithJsonSchema({"enum": [*DOC_TYPES, *(d.upper() for d in DOC_TYPES)]}),
    ]
    variables: list[EvalVariableSpec] = Field(default_factory=list)
    expression: str = Field(min_length=1)

    @field_validator("expression")
    @classmethod
    def _valid_expression(cls, value: str, info: ValidationInfo) -> str:
        doc, variables = info.data.get("doc"), info.data.get("variables")
        if doc is None or variables is None:
            return value  # reported at those keys
        try:
            compile_eval(doc, value, _variables(variables))
        except ConditionError as exc:
            raise ValueError(str(exc)) from None
        return value

    def program(self) -> EvalProgram:
        return compile_eval(self.doc, self.expression, _variables(self.variables))


def _variables(specs: list[EvalVariableSpec]) -> list[EvalVariable]:
    return [EvalVariable(v.name, v.type, v.query) for v in specs]


class HTTPSpec(PatternKeys, ProbeSpec):
    """An `http:` entry, EaseProbe's keys plus `max_body`.

    Redirects: without `limit_redirects`, at most 10 are followed; with it, at most
    `max_redirects`. One more is a failed check.
    """

    kind: ClassVar[str] = "http"
    condition_placeholders: ClassVar[frozenset[str]] = frozenset(
        {"STATUS", "BODY", "HEADERS", "CERTIFICATE_EXPIRATION"}
    )

    url: str
    # A notification as the certificate's remaining time crosses each (https; ours).
    expiry_warnings: ExpiryWarnings = Field(default_factory=list)
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    content_encoding: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    success_code: list[tuple[int, int]] = Field(default_factory=lambda: [(200, 399)], min_length=1)
    insecure: bool = False
    ca: ConfigPath | None = None
    cert: ConfigPath | None = None
    key: ConfigPath | None = None
    proxy: str | None = None
    # Without `proxy`, HTTP_PROXY/HTTPS_PROXY/NO_PROXY apply, as in EaseProbe (Go's default).
    proxy_from_env: bool = True
    # Close with a reset (SO_LINGER 0), leaving no TIME_WAIT behind (EaseProbe's key).
    nolinger: bool = False
    # Put an excerpt of the body in the check's message, so notifications show it.
    with_output: bool = False
    limit_redirects: bool = False
    max_redirects: int = Field(default=DEFAULT_MAX_REDIRECTS, ge=0, le=MAX_REDIRECTS_LIMIT)
    max_body: ByteSize = DEFAULT_MAX_BODY
    eval: EvalSpec | None = None

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        value = value.strip()
        _check_url(value, "http", ("http", "https"))
        return value

    @field_validator("method")
    @classmethod
    def _valid_method(cls, value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise ValueError(f'invalid HTTP method "{value}"')
        return value.upper()

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f'invalid header name "{name}"')
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f'header "{name}": the value must not contain line breaks')
        return value

    @field_validator("success_code")
    @classmethod
    def _valid_ranges(cls, value: list[tuple[int, int]]) -> list[tuple[int, int]]:
        # EaseProbe's ranges as written: its documented default is [[0, 499]], so a bound
        # below 100 is a range wider than real codes, not an error.
        for lo, hi in value:
            if not (0 <= lo <= 999 and 0 <= hi <= 999):
                raise ValueError(f"[{lo}, {hi}]: status code bounds are 0-999")
            if lo > hi:
                raise ValueError(f"[{lo}, {hi}]: the first code must not exceed the second")
        return value

    @field_validator("ca", "cert", "key")
    @classmethod
    def _existing_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @field_validator("proxy")
    @classmethod
    def _valid_proxy(cls, value: str | None) -> str | None:
        if not value:
            return None
        value = value.strip()
        scheme = _check_url(value, "proxy", ("http", "https", "socks5", "socks5h"))
        if scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
            raise ValueError(
                "a socks5 proxy needs the optional package socksio: pip install 'httpx[socks]'"
            )
        return value

    @model_validator(mode="after")
    def _valid_tls(self) -> HTTPSpec:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together: set both or neither")
        try:
            _check_tls_files(self.ca, self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cannot load the TLS files: {_ssl_reason(exc)}") from None
        if self.expiry_warnings and not self.url.strip().lower().startswith("https://"):
            raise ValueError("expiry_warnings needs an https:// url (a certificate to read)")
        return self

    def endpoint(self) -> str:
        return redact_url(self.url)

    def expiry_warning_thresholds(self) -> tuple[float, ...]:
        return tuple(self.expiry_warnings)

    def success_code_text(self) -> str:
        """The effective success codes as shown: `200-399`, `200, 204, 300-302`."""
        return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.success_code)


def _check_url(value: str, what: str, schemes: tuple[str, ...]) -> str:
    """Validate a URL for config; returns its scheme. Messages never repeat the URL, which
    may carry credentials."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid {what} URL: {exc}") from None
    if url.scheme not in schemes:
        raise ValueError(
            f"the {what} URL must start with " + " or ".join(f"{s}://" for s in schemes)
        )
    if not url.host:
        raise ValueError(f"the {what} URL has no host")
    # httpx takes any number as a port; the socket would refuse it at every check.
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ValueError(f"the {what} URL's port {url.port} is not in 1-65535")
    return url.scheme


def _check_tls_files(ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """Load the files into a throwaway context, so a bad PEM or a key that does not match its
    certificate is a config error, not a failed check. Cheap: no CA bundle is read."""
    if ca is None and cert is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None:
        context.load_verify_locations(cafile=ca)
    if cert is not None:
        context.load_cert_chain(cert, key)


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _build_ssl_context(tls: _TLSSettings) -> ssl.SSLContext:
    return client_context(ca=tls.ca, cert=tls.cert, key=tls.key, insecure=tls.insecure)


class _NoCookies(CookieJar):
    """A jar that keeps nothing: a shared client must not carry one probe's cookies into
    another probe's checks, nor one check's into the next (EaseProbe keeps none either)."""

    def set_cookie(self, cookie: Cookie) -> None:
        return


class HTTPProber(Prober[HTTPSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = HTTPSpec

    def __init__(self, spec: HTTPSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._tls = _tls_settings(spec)
        self._headers = _request_headers(spec)
        self._content = spec.body.encode("utf-8") if spec.body else None
        # spec.timeout bounds each phase in httpx; the scheduler's hard timeout bounds the
        # whole check (a server sending one byte a second never trips a per-read timeout).
        self._timeout = httpx.Timeout(spec.timeout or None)
        self._max_redirects = spec.max_redirects if spec.limit_redirects else DEFAULT_MAX_REDIRECTS
        self._contain = Matcher.build(spec.contain, spec.regex)
        self._not_contain = Matcher.build(spec.not_contain, spec.regex)
        self._ranges_text = spec.success_code_text()
        # With `conditions` and no `success_code` of its own, the conditions say which status
        # is good (as in Gatus: `[STATUS] == 503` must be able to pass); given, both apply.
        self._judge_status = not spec.conditions or "success_code" in spec.model_fields_set
        self._eval = None if spec.eval is None else spec.eval.program()
        self._wants_body = self._eval is not None or "BODY" in self.condition_reads
        self._route = _route(spec)
        self._template: httpx.Request | None = None  # see _first_request

    @property
    def client(self) -> ProbeClient:
        """The shared client for this probe's TLS and proxy settings (created on first use)."""
        try:
            context = self.resources.get_or_create(
                ("http.ssl", self._tls), lambda: _build_ssl_context(self._tls)
            )
        except (ssl.SSLError, OSError) as exc:
            raise ProbeError(f"TLS: cannot load the TLS files: {_ssl_reason(exc)}") from None
        route, nolinger = self._route, self.spec.nolinger
        return self.resources.get_or_create(
            ("http.client", self._tls, route, nolinger),
            lambda: new_client(context, route, cookies=_NoCookies(), nolinger=nolinger),
            close=close_client,
        )

    def prepare(self) -> None:
        _ = self.client

    async def check(self, ctx: CheckContext) -> Outcome:
        # An HTTP exchange: its status code is 0 until an answer is judged (the Outcome's).
        ctx.http_status = 0
        token = current_check.set(ctx)
        try:
            return await self._check(ctx)
        except _CAUGHT as caught:
            # anyio connects inside a task group: what failed is the group's first member.
            exc = first_error(caught)
            message = _describe(exc, ctx.phase, self.spec.timeout)
            if message in _CUT_OFF and self._rejected_after_handshake(ctx):
                message += _NO_CLIENT_CERT_HINT
            raise ProbeError(message, error=type(exc).__name__, **ctx.details) from None
        finally:
            current_check.reset(token)

    def _rejected_after_handshake(self, ctx: CheckContext) -> bool:
        # In TLS 1.3 a server checks the client certificate after the handshake is over, and
        # servers that then abort the connection (instead of closing it) lose their alert:
        # all the client sees is a reset before any answer.
        return (
            self._tls.cert is None
            and "tls_version" in ctx.details
            and ctx.phase in ("sending the request", "waiting for the response")
        )

    async def _check(self, ctx: CheckContext) -> Outcome:
        client = self.client
        tracer = TimingTracer(ctx, _PHASES)
        request = self._first_request(client, tracer)
        redirects = 0
        while True:
            ctx.details["url"] = redact_url(str(request.url))
            response = await client.exchange(request)
            try:
                following = next_request(request, response)
                if following is not None:
                    if redirects >= self._max_redirects:
                        self._note_facts(ctx, response, "")
                        details = self._details(ctx, response, tracer, b"", truncated=False)
                        message = f"too many redirects (more than {self._max_redirects})"
                        return Outcome(
                            ok=False,
                            message=message,
                            details=details,
                            http_status=response.status_code,
                        )
                    redirects += 1
                    ctx.details["redirects"] = redirects
                    # The redirect's body is not read: closing the response drops the connection.
                    request = following
                    continue
                ctx.phase = "reading the body"
                body, truncated = await self._read_body(response)
                details = self._details(ctx, response, tracer, body, truncated=truncated)
                return self._judge(ctx, response, body, details)
            finally:
                await response.aclose()

    def _first_request(self, client: ProbeClient, tracer: TimingTracer) -> httpx.Request:
        """The check's request: the URL parsed and the headers merged by httpx once, on the
        first check (they never change), then copied with this check's tracer."""
        template = self._template
        if template is None:
            template = client.build_request(
                self.spec.method,
                self.spec.url,
                headers=self._headers,
                content=self._content,
                timeout=self._timeout,
            )
            self._template = template
        return httpx.Request(
            template.method,
            template.url,
            headers=template.headers,
            content=self._content,
            extensions={**template.extensions, "trace": tracer},
        )

    async def _read_body(self, response: httpx.Response) -> tuple[bytes, bool]:
        """Up to max_body (decoded) bytes; past that, stop reading and say it was cut."""
        limit = self.spec.max_body
        if isinstance(response.stream, WholeBody):  # it came with the head
            whole = response.stream.content
            return whole[:limit], len(whole) > limit
        chunks: list[bytes] = []
        size = 0
        stream = cast(AsyncGenerator[bytes, None], response.aiter_bytes())
        async with aclosing(stream):
            async for chunk in stream:
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    return b"".join(chunks)[:limit], True
        return b"".join(chunks), False

    def _details(
        self,
        ctx: CheckContext,
        response: httpx.Response,
        tracer: TimingTracer,
        body: bytes,
        *,
        truncated: bool,
    ) -> dict[str, Any]:
        details: dict[str, Any] = {
            **ctx.details,
            "status_code": response.status_code,
            "http_version": response.http_version,
            "content_length": len(body),
            "redirects": ctx.details.get("redirects", 0),
            "truncated": truncated,
        }
        if tracer.ttfb is not None:
            details["ttfb_ms"] = round(tracer.ttfb * 1000, 3)
        return details

    def _judge(
        self, ctx: CheckContext, response: httpx.Response, body: bytes, details: dict[str, Any]
    ) -> Outcome:
        text = _decode(body, response) if self._wants_body or self.spec.with_output else ""
        self._note_facts(ctx, response, text)
        ok, message = self._verdict(response, body, details)
        if ok and self._eval is not None:
            ok, message = self._evaluate(self._eval, text, message)
        if self.spec.with_output:
            message = with_excerpt(message, text)
        return Outcome(ok=ok, message=message, details=details, http_status=response.status_code)

    def _evaluate(self, program: EvalProgram, body: str, message: str) -> tuple[bool, str]:
        """EaseProbe's `eval` over the body: the check passes only if the expression holds;
        the message says what was read either way."""
        expression = quoted(program.expression.text)
        try:
            holds, read = program.judge(body)
        except EvalError as exc:
            return False, f"eval {expression}: {exc}"
        said = f" ({read})" if read else ""
        if not holds:
            return False, f"eval {expression} is false{said}"
        return True, f"{message}; eval holds{said}"

    def _note_facts(self, ctx: CheckContext, response: httpx.Response, body: str) -> None:
        """What the conditions read of the answer: [BODY] (decoded, only when a condition
        reads it) and [HEADERS] (names lower-cased; repeated headers joined with ", ")."""
        if not self.conditions:
            return
        headers: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        ctx.facts["HEADERS"] = headers
        if self._wants_body:
            ctx.facts["BODY"] = body

    def _verdict(
        self, response: httpx.Response, body: bytes, details: dict[str, Any]
    ) -> tuple[bool, str]:
        """Whether the answer passes, and the message that says so."""
        status = response.status_code
        in_ranges = any(lo <= status <= hi for lo, hi in self.spec.success_code)
        if self._judge_status and not in_ranges:
            return False, f"status {status} not in {self._ranges_text}"
        if self._contain is not None or self._not_contain is not None:
            text = _decode(body, response)
            where = f" (in the first {len(body)} bytes)" if details["truncated"] else ""
            problem = mismatch(text, self._contain, self._not_contain, "body", where)
            if problem is not None:
                return False, problem
        return True, f"status {status}"


def _route(spec: HTTPSpec) -> ProxyRoute:
    """How requests leave: the probe's proxy, else the environment's (read once, here), else
    direct. Part of the shared client's key, so probes that route alike share a client."""
    if spec.proxy is not None:
        return ProxyRoute.fixed(spec.proxy)
    if spec.proxy_from_env:
        return ProxyRoute.from_environment()
    return DIRECT


def _tls_settings(spec: HTTPSpec) -> _TLSSettings:
    def text(path: Path | None) -> str | None:
        return None if path is None else str(path)

    # With `insecure` nothing is verified, so the CA file does not make a different context.
    ca = None if spec.insecure else text(spec.ca)
    return _TLSSettings(spec.insecure, ca, text(spec.cert), text(spec.key))


def _request_headers(spec: HTTPSpec) -> httpx.Headers:
    headers = httpx.Headers()
    if spec.content_encoding:
        headers["Content-Type"] = spec.content_encoding
    if spec.username is not None or spec.password is not None:
        password = "" if spec.password is None else spec.password.get_secret_value()
        token = base64.b64encode(f"{spec.username or ''}:{password}".encode()).decode("ascii")
        # A header rather than httpx's auth flow: httpx drops it on a redirect to another
        # origin, while an auth flow would send the password to wherever we are redirected.
        headers["Authorization"] = f"Basic {token}"
    for name, value in spec.headers.items():
        headers[name] = value  # the user's headers win, `Host` included
    return headers


def _decode(body: bytes, response: httpx.Response) -> str:
    try:
        return body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


# httpcore's events that start a phase of a request.
_PHASES = {
    "start_tls.started": "TLS handshake",
    "send_request_headers.started": "sending the request",
    "receive_response_headers.started": "waiting for the response",
    "receive_response_body.started": "reading the body",
}


# --- the one place driver exceptions become messages -----------------------------------------

# What a check catches: the driver errors, also when a task group wraps them.
# OverflowError: the socket's own refusal of a port past 65535 (a redirect can name one).
_CAUGHT: tuple[type[Exception], ...] = (*HTTPX_ERRORS, ExceptionGroup, OverflowError)

_NO_CLIENT_CERT_HINT = " after the TLS handshake (does the server require a client certificate?)"
# How a server that drops us right after the handshake shows: a reset, or a plain end of the
# connection, depending on whether its close overtakes our request.
_CUT_OFF = ("connection reset by peer", "server closed the connection without answering")


def _describe(exc: BaseException, phase: str, timeout: float) -> str:
    """A short message for an exception raised by httpx, httpcore, anyio or the OS."""
    known = describe_transport_error(exc, phase, timeout)
    if known is not None:
        return known
    if isinstance(exc, httpcore.ProxyError | httpx.ProxyError):
        return f"proxy error: {exc}"
    if isinstance(exc, httpcore.UnsupportedProtocol | httpx.UnsupportedProtocol):
        # The configured URL is validated, so this is a redirect to ftp:// or the like.
        return "redirected to a URL that is not http or https"
    if isinstance(exc, httpx.DecodingError):
        return "cannot decode the response body (Content-Encoding)"
    if isinstance(exc, httpx.InvalidURL):
        return "invalid URL in a redirect"
    remote = isinstance(exc, httpcore.RemoteProtocolError | httpx.RemoteProtocolError)
    if remote and "location header" in str(exc).lower():
        return "invalid URL in the Location header of a redirect"
    if isinstance(exc, httpcore.LocalProtocolError | httpx.LocalProtocolError):
        return f"cannot send the request: {str(exc)[:120]}"
    return describe_stream_error(exc, phase)
