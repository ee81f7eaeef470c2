"""etcd probes through the v3 JSON gateway (etcd 3.4+), over httpx.

A check: with `username`, authenticate (`POST /v3/auth/authenticate`; the token goes in the
`Authorization` header of the requests that follow, as etcd's gRPC gateway expects); then
`GET /health`, `POST /v3/maintenance/status` (the version, and a leader must exist) and
`POST /v3/maintenance/alarm` (no alarm may be raised); then each `data` key through
`POST /v3/kv/range` (keys and values travel base64-encoded), its value compared as text.

Conditions read `[VALUE].key`: the text a key of `data` held (a key etcd does not have is
absent: `has([VALUE].key) == false`); they judge on top of `data`'s own comparison and may name
only keys of `data` (checked at load). `[IP]` is the address of the last connection opened.

The `etcd3` package is not used: it has been unmaintained since 2020 and pins an old protobuf.

Clients are shared: one `httpx.AsyncClient` per TLS setting, held in `SharedResources` (a client
costs ~21 ms of CPU). Keep-alive is off, so each request of each check opens (and closes) a
connection of its own: the check exercises connect, TLS and auth every time. A TLS handshake
cancelled by the scheduler's timeout closes its socket (see probers/_httpcore.py).

Messages: gateway errors and httpx exceptions are mapped in `_describe()`: `connection refused`,
`authentication failed for user "app"`, `permission denied for user "app" reading key "/k"`;
judged answers say what is wrong: `alarm raised: NOSPACE (member 8e9e05c52164694d)`,
`no leader (member ...)`, `unhealthy`, `key "/k": expected "v", got nothing`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
from typing import Any, ClassVar

import httpx
from pydantic import model_validator

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._client import HTTPServiceSpec, client_ssl_context, tls_key
from probe.probers._httpcheck import (
    HTTPX_ERRORS,
    PhaseTracer,
    describe_stream_error,
    describe_transport_error,
)
from probe.probers._httpcore import close_client, current_check, new_client
from probe.probers._net import describe_os_error, first_error
from probe.probers._values import VALUE, value_key_problems
from probe.probers.base import Prober, SharedResources

__all__ = ["EtcdProber", "EtcdSpec"]

# httpx logs every request at INFO; keep URLs (and anything in them) out of the logs.
logging.getLogger("httpx").setLevel(logging.WARNING)

_MAX_SHOWN = 60  # characters of a value shown in a message


class EtcdSpec(HTTPServiceSpec):
    """A `client:` entry with `driver: etcd`.

    `host: host:port` means `http://host:port`, or `https://` when any of `ca`, `cert`/`key`
    or `insecure` is set; `dsn:` is the endpoint URL itself (`https://etcd.lan:2379`, with
    credentials as `https://user:password@...` if wanted). `data` maps keys to the value each
    must hold: `{"/config/mode": "active"}`.
    """

    kind: ClassVar[str] = "etcd"
    # [VALUE].key: what a key of `data` held (see probers/_values.py).
    condition_placeholders: ClassVar[frozenset[str]] = VALUE

    @model_validator(mode="after")
    def _valid_etcd(self) -> EtcdSpec:
        if self.database is not None:
            raise ValueError("the etcd driver takes no database")
        if self.query is not None:
            raise ValueError('the etcd driver takes no query; use data: {"/key": "expected"}')
        for key in self.data:
            if not key:
                raise ValueError("data: a key must not be empty")
        return self

    def condition_problems(self) -> list[tuple[int, str]]:
        """The common problems, and each `[VALUE].key` whose key is not in `data`."""
        problems = super().condition_problems()
        return value_key_problems(self.parsed_conditions(), self.data, problems)


class _GatewayError(Exception):
    """An error answer of the JSON gateway: `{"error": ..., "code": <gRPC code>}`."""

    def __init__(self, status: int, message: str, code: int | None, *, final: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.final = final  # the message is complete as it is (not an error of etcd's own)


class _Steps(PhaseTracer):
    """The step a check is in, and httpcore's `trace` extension that reports the connect and
    TLS handshake phases inside each request (the step again once the request is sent)."""

    def __init__(self, ctx: CheckContext) -> None:
        super().__init__(
            ctx, {"connect_tcp.started": "connect", "start_tls.started": "TLS handshake"}
        )
        self.step = ctx.phase

    def enter(self, step: str) -> None:
        self.step = step
        self._ctx.phase = step

    def phase_for(self, event: str) -> str | None:
        return self.step if event == "send_request_headers.started" else super().phase_for(event)


class EtcdProber(Prober[EtcdSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = EtcdSpec

    def __init__(self, spec: EtcdSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._base = spec.base_url()
        self._tls = tls_key(spec) if self._base.startswith("https:") else None
        self._credentials = spec.credentials()
        self._timeout = httpx.Timeout(spec.timeout or None)

    @property
    def _user(self) -> str | None:
        return None if self._credentials is None else self._credentials[0]

    def _client(self) -> httpx.AsyncClient:
        tls, spec = self._tls, self.spec

        def build() -> httpx.AsyncClient:
            context = None if tls is None else client_ssl_context(spec)
            return new_client(context)

        try:
            return self.resources.get_or_create(("etcd.client", tls), build, close=close_client)
        except (ssl.SSLError, OSError) as exc:
            reason = describe_os_error(exc) or str(exc)
            raise ProbeError(f"TLS: cannot load the TLS files: {reason}") from None

    def prepare(self) -> None:
        self._client()

    async def check(self, ctx: CheckContext) -> Outcome:
        steps = _Steps(ctx)
        # The transport's connect reports to this check: the phases, details["peer"] and the
        # [IP] fact (probers/_httpcore.py).
        token = current_check.set(ctx)
        try:
            return await self._check(ctx, steps)
        except _CAUGHT as caught:
            # anyio connects inside a task group: what failed is the group's first member.
            exc = first_error(caught)
            message = _describe(exc, ctx.phase, self.spec.timeout, self._user)
            raise ProbeError(message, error=type(exc).__name__) from None
        finally:
            current_check.reset(token)

    async def _check(self, ctx: CheckContext, steps: _Steps) -> Outcome:
        client = self._client()
        headers: dict[str, str] = {}
        if self._credentials is not None:
            steps.enter("auth")
            token = await self._authenticate(client, steps)
            if token is not None:
                headers["Authorization"] = token
            else:
                ctx.details["auth"] = "not enabled on the server"

        steps.enter("health")
        health = await self._request(client, steps, "GET", "/health", None, headers, (503,))
        steps.enter("status")
        status = await self._request(client, steps, "POST", "/v3/maintenance/status", {}, headers)
        steps.enter("alarms")
        alarms = await self._request(
            client, steps, "POST", "/v3/maintenance/alarm", {"action": "GET"}, headers
        )

        ctx.details.update(_status_details(status))
        details = ctx.details
        version = details.get("version", "?")
        raised = [
            f"{a.get('alarm', '?')} (member {_member(a.get('memberID'))})"
            for a in alarms.get("alarms") or []
            if a.get("alarm") not in (None, "NONE")
        ]
        if raised:
            details["alarms"] = raised
            return Outcome(
                ok=False, message="alarm raised: " + ", ".join(raised), details=dict(details)
            )
        if details["leader"] == "0":
            message = f"no leader (member {details.get('member_id', '?')})"
            return Outcome(ok=False, message=message, details=dict(details))
        if str(health.get("health")).lower() != "true":
            reason = health.get("reason")
            message = "unhealthy" + (f": {_shown(str(reason))}" if reason else "")
            return Outcome(ok=False, message=message, details=dict(details))

        if self.spec.data:
            mismatch = await self._read_data(ctx, client, steps, headers)
            if mismatch is not None:
                return Outcome(ok=False, message=mismatch, details=dict(details))
            details["keys_checked"] = len(self.spec.data)
        return Outcome(ok=True, message=f"etcd {version} healthy", details=dict(details))

    async def _read_data(
        self, ctx: CheckContext, client: httpx.AsyncClient, steps: _Steps, headers: dict[str, str]
    ) -> str | None:
        """Read every key of `data` into the [VALUE] fact (a key etcd does not have stays
        out of it); what is wrong with the first key that does not hold its value, or None.
        Every key is read even after a mismatch, so the conditions see them all."""
        values: dict[str, str] = {}
        ctx.facts["VALUE"] = values
        mismatch = None
        for key, expected in self.spec.data.items():
            steps.enter(f'reading key "{key}"')
            found = await self._read(client, steps, key, headers)
            if found is not None:
                values[key] = found
            if found != expected and mismatch is None:
                got = "nothing" if found is None else f'"{_shown(found)}"'
                mismatch = f'key "{key}": expected "{_shown(expected)}", got {got}'
        return mismatch

    async def _authenticate(self, client: httpx.AsyncClient, steps: _Steps) -> str | None:
        """The token for the credentials, or None when the server has no auth enabled."""
        assert self._credentials is not None
        user, password = self._credentials
        body = {"name": user, "password": password}
        try:
            answer = await self._request(client, steps, "POST", "/v3/auth/authenticate", body, {})
        except _GatewayError as exc:
            # As etcd's own client does: credentials for a server without auth are not an error.
            if "authentication is not enabled" in exc.message:
                return None
            raise
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise _GatewayError(200, "no token in the answer to authenticate", None)
        return token

    async def _read(
        self, client: httpx.AsyncClient, steps: _Steps, key: str, headers: dict[str, str]
    ) -> str | None:
        body = {"key": base64.b64encode(key.encode()).decode("ascii")}
        answer = await self._request(client, steps, "POST", "/v3/kv/range", body, headers)
        kvs = answer.get("kvs") or []
        if not kvs:
            return None
        raw = kvs[0].get("value", "")
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, TypeError):
            raise _GatewayError(200, "invalid base64 value in the answer", None) from None

    async def _request(
        self,
        client: httpx.AsyncClient,
        steps: _Steps,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
        judged: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        """One request; the JSON object answered. Error answers raise `_GatewayError`, except
        the statuses in `judged`, whose body is returned for the caller to judge."""
        response = await client.request(
            method,
            self._base + path,
            json=body,
            headers=headers,
            timeout=self._timeout,
            extensions={"trace": steps},
        )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            text = _shown(" ".join(response.text.split()))
            raise _GatewayError(
                response.status_code,
                f"unexpected answer to {method} {path}: HTTP {response.status_code}"
                + (f' "{text}"' if text else "")
                + " (not an etcd 3.4+ JSON gateway?)",
                None,
                final=True,
            )
        if response.status_code != 200 and response.status_code not in judged:
            message = str(answer.get("message") or answer.get("error") or "")
            code = answer.get("code")
            if not message:
                message = f"HTTP {response.status_code} from {path}"
            raise _GatewayError(
                response.status_code, message, code if isinstance(code, int) else None
            )
        return answer


def _status_details(status: dict[str, Any]) -> dict[str, Any]:
    header = status.get("header") or {}
    details: dict[str, Any] = {}
    if status.get("version"):
        details["version"] = str(status["version"])
    # The gateway leaves out fields holding their zero value: no `leader` means no leader.
    details["leader"] = _member(status.get("leader", 0))
    if header.get("member_id") is not None:
        details["member_id"] = _member(header["member_id"])
    for key, name in (("dbSize", "db_size"), ("raftTerm", "raft_term")):
        try:
            details[name] = int(status[key])
        except (KeyError, TypeError, ValueError):
            continue
    return details


def _member(value: object) -> str:
    """etcd member IDs as etcdctl shows them (hex); the JSON gateway sends them in decimal."""
    try:
        number = int(str(value))
    except ValueError:
        return str(value)
    return format(number, "x") if number else "0"


def _shown(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


# --- the one place driver exceptions become messages -----------------------------------------

# What a check catches: the driver errors, also when a task group wraps them.
_CAUGHT: tuple[type[Exception], ...] = (_GatewayError, *HTTPX_ERRORS, ExceptionGroup)


def _describe(exc: BaseException, phase: str, timeout: float, user: str | None) -> str:
    """A short message for a gateway error answer, or an exception of httpx, httpcore, anyio
    or the OS."""
    if isinstance(exc, _GatewayError):
        return _describe_gateway(exc, phase, user)
    known = describe_transport_error(exc, phase, timeout)
    if known is not None:
        return known
    return describe_stream_error(exc, phase)


def _describe_gateway(exc: _GatewayError, phase: str, user: str | None) -> str:
    if exc.final:
        return exc.message
    text = exc.message.removeprefix("etcdserver: ")
    who = f' for user "{user}"' if user is not None else ""
    if "authentication failed" in text or "invalid user ID or password" in text:
        return f"authentication failed{who}"
    if "user name is empty" in text:
        return "authentication required: the server has auth enabled; set username and password"
    if "invalid auth token" in text:
        return f"authentication failed{who}: invalid auth token"
    if "permission denied" in text:
        during = f" {phase}" if phase.startswith("reading key") else f" ({phase})"
        return f"permission denied{who}{during}"
    return f"etcd error during {phase}: {_shown(text)}"
