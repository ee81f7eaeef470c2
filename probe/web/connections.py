"""Connections: bounded in number and in time.

The checks and the web server share one process and its descriptors: a client must never be
able to take the ones a check needs (idle connections under a small RLIMIT_NOFILE once made
every check fail with "too many open files"). So the server keeps at most `max_connections`
(and at most a quarter of RLIMIT_NOFILE), closing any more the moment they arrive; a request
head must arrive within HEADER_TIMEOUT of the connection (or of its first byte, between
keep-alive requests); an idle keep-alive connection is closed after IDLE_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from probe.web.responses import Handler

__all__ = [
    "HEADER_TIMEOUT",
    "IDLE_TIMEOUT",
    "GatedSite",
    "Limiter",
    "connection_cap",
    "connection_state",
]

log = logging.getLogger("probe.web")

HEADER_TIMEOUT = 5.0
IDLE_TIMEOUT = 15.0
_REFUSAL_WARNING_EVERY = 60.0


def connection_cap(requested: int) -> int:
    """`requested`, lowered to a quarter of the soft RLIMIT_NOFILE: the checks, the store and
    the notifiers keep the other three quarters, whatever the web clients do."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # no such limit on this platform
        return requested
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return requested
    return max(1, min(requested, soft // 4))


class Limiter:
    """Connections open now, shared by every connection's _Gate."""

    def __init__(self, limit: int, header_timeout: float) -> None:
        self.limit = limit
        self.header_timeout = header_timeout
        self.active = 0
        self.refused = 0
        self._refused_reported = 0
        self._warned_at: float | None = None

    def refuse(self, loop: asyncio.AbstractEventLoop) -> None:
        self.refused += 1
        now = loop.time()
        if self._warned_at is None or now - self._warned_at >= _REFUSAL_WARNING_EVERY:
            log.warning(
                "web: %d connection(s) closed at once: %d clients connected, the most"
                " allowed (settings.http.max_connections, RLIMIT_NOFILE)",
                self.refused - self._refused_reported,
                self.active,
            )
            self._warned_at = now
            self._refused_reported = self.refused


class _Gate(asyncio.Protocol):
    """One client connection, between the event loop and aiohttp's handler: counted against
    the limit (or closed at once past it), and closed when a request head takes too long.
    Every protocol call is passed on to the handler unchanged."""

    def __init__(self, limiter: Limiter, handler: Callable[[], asyncio.Protocol]) -> None:
        self._limiter = limiter
        self._make_handler = handler
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._busy = 0  # requests being handled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        loop = asyncio.get_running_loop()
        if self._limiter.active >= self._limiter.limit:
            transport.abort()  # the descriptor is freed now, not after a goodbye
            self._limiter.refuse(loop)
            return
        self._limiter.active += 1
        self._transport = transport
        self._inner = self._make_handler()
        self._arm()  # a connection that sends nothing is a slow request head too
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        inner, self._inner = self._inner, None
        if inner is not None:
            self._limiter.active -= 1
            inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if not self._busy and self._timer is None:
            self._arm()  # the first byte of the next request: its head has HEADER_TIMEOUT
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    # The middleware reports when aiohttp has a whole request head, and when it is answered.
    def request_started(self) -> None:
        self._busy += 1
        self._disarm()

    def request_done(self) -> None:
        self._busy -= 1

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._limiter.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if not self._busy and self._transport is not None:
            self._transport.abort()


@web.middleware
async def connection_state(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tells the connection's _Gate that a whole request head arrived (its header timer
    stops) and when the request is answered."""
    transport = request.transport
    gate = None if transport is None else transport.get_protocol()
    if not isinstance(gate, _Gate):
        return await handler(request)
    gate.request_started()
    try:
        return await handler(request)
    finally:
        gate.request_done()


class GatedSite(web.BaseSite):
    """A TCP site whose connections pass through a _Gate each."""

    __slots__ = ("_host", "_limiter", "_port")

    def __init__(self, runner: web.AppRunner, host: str, port: int, limiter: Limiter) -> None:
        # The backlog is also how many connections the event loop accepts in one go: small,
        # so a burst holds few descriptors before the gates close the excess.
        super().__init__(runner, backlog=max(8, min(128, limiter.limit)))
        self._host = host
        self._port = port
        self._limiter = limiter

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        limiter = self._limiter
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Gate(limiter, server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )
