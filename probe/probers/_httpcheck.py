"""What the probers that speak HTTP through httpx share: the tracer that turns httpcore's
events into phases, and the mapping of httpx, httpcore, anyio and OS errors to messages.

The http and etcd probers use all of it; the influxdb prober (aiohttp for the most part) the
words a timeout and an unmapped error are said with. Each prober keeps its own `_describe()`
for what only its service says (redirects, proxies, gateway errors, ...) and calls these for
the rest.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any

import anyio
import httpcore
import httpx
from cryptography import x509

from probe.core.check import CheckContext
from probe.durations import format_duration
from probe.probers._net import describe_os_error, plain_error

__all__ = [
    "HTTPX_ERRORS",
    "PhaseTracer",
    "TimingTracer",
    "describe_stream_error",
    "describe_transport_error",
    "failed_during",
    "timed_out",
]

# What an httpx request raises, besides the bugs: a check catches these (and the
# ExceptionGroup anyio wraps them in when it connects).
HTTPX_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpcore.ProtocolError,
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
)

# What an end of stream without an OS error means, by the phase it happened in; in a phase of
# a prober's own (etcd's "status", ...) it is said as "server closed the connection during X".
_CLOSED_DURING = {
    "resolve": "connection failed",
    "connect": "connection failed",
    "TLS handshake": "server closed the connection during the TLS handshake",
    "sending the request": "server closed the connection without answering",
    "waiting for the response": "server closed the connection without answering",
    "reading the body": "server closed the connection before the body was complete",
}


def leaf_expiry(ssl_object: ssl.SSLObject) -> float | None:
    """When the server's certificate expires (Unix seconds), read from its DER form so that
    it works with `insecure` too; None when it cannot be read. Only the leaf: Python before
    3.13 hands out no chain (the tls prober reads the chain where it can)."""
    try:
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return None
        return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    except (ValueError, ssl.SSLError):
        return None


class PhaseTracer:
    """httpcore's `trace` extension: its events become `ctx.phase` (`phases` maps an event
    such as "start_tls.started", without httpcore's "http11."/"connection." prefix, to the
    phase it starts), the TLS version negotiated becomes `ctx.details["tls_version"]` and the
    server certificate's expiry `ctx.cert_expiry` (metrics, `[CERTIFICATE_EXPIRATION]`).

    Subclasses see every other event through `event()`.
    """

    def __init__(self, ctx: CheckContext, phases: Mapping[str, str]) -> None:
        self._ctx = ctx
        self._phases = phases

    def phase_for(self, event: str) -> str | None:
        return self._phases.get(event)

    def event(self, event: str, info: dict[str, Any]) -> None:
        """An event that starts no phase (nothing by default)."""

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        event = name.partition(".")[2]  # "http11.send_request_headers.started" -> ...
        phase = self.phase_for(event)
        if phase is not None:
            self._ctx.phase = phase
        elif event == "start_tls.complete":
            stream = info.get("return_value")
            ssl_object = None if stream is None else stream.get_extra_info("ssl_object")
            if ssl_object is not None:
                self._ctx.details["tls_version"] = ssl_object.version()
                self._ctx.cert_expiry = leaf_expiry(ssl_object)
        else:
            self.event(event, info)


class TimingTracer(PhaseTracer):
    """A PhaseTracer that also measures the time to the first byte of the response."""

    def __init__(self, ctx: CheckContext, phases: Mapping[str, str]) -> None:
        super().__init__(ctx, phases)
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self.ttfb: float | None = None

    def event(self, event: str, info: dict[str, Any]) -> None:
        if event == "receive_response_headers.complete":
            self.ttfb = self._loop.time() - self._started


def timed_out(timeout: float, phase: str) -> str:
    # The same words as the scheduler's hard timeout: which one fired is a detail.
    return f"timeout after {format_duration(timeout)} during {phase}"


def failed_during(exc: BaseException, phase: str) -> str:
    """An error nobody mapped, with the phase it happened in."""
    return f"{phase} failed: {plain_error(exc)}"


def describe_transport_error(exc: BaseException, phase: str, timeout: float) -> str | None:
    """A timeout of httpx or httpcore, or a TLS or OS error anywhere in `exc`'s chain: its
    message, else None."""
    if isinstance(exc, httpcore.TimeoutException | httpx.TimeoutException):
        return timed_out(timeout, phase)
    return describe_os_error(exc)


def describe_stream_error(exc: BaseException, phase: str) -> str:
    """What is left once the transport errors and a prober's own are mapped: a connection
    the server ended, an invalid response, else the error as it is."""
    if isinstance(exc, httpcore.RemoteProtocolError | httpx.RemoteProtocolError):
        text = str(exc)
        if "disconnected" in text or "peer closed" in text:
            return _closed_during(phase)
        return f"invalid HTTP response: {text[:120]}"
    if isinstance(
        exc,
        httpcore.NetworkError
        | httpx.NetworkError
        | anyio.BrokenResourceError
        | anyio.ClosedResourceError
        | anyio.EndOfStream,
    ):
        return _closed_during(phase)
    return failed_during(exc, phase)


def _closed_during(phase: str) -> str:
    return _CLOSED_DURING.get(phase, f"server closed the connection during {phase}")
