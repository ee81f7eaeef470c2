"""httpx clients for probers that must see every connection: keep-alive off, phases reported.

Shared by the http and etcd probers. The client runs on a small transport of ours over
httpcore's public API: name resolution and connecting happen in our network backend, which
reports the "resolve" and "connect" phases to the check running in the current task (through
`current_check`), and the streams it returns close their socket when a TLS handshake is
cancelled by the scheduler's timeout (httpcore closes them when the handshake fails, not when
it is cancelled, and nothing else holds the socket by then).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import select
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from http.cookiejar import CookieJar
from typing import Any, cast

import anyio
import httpcore
import httpx

from probe import __version__
from probe.core.check import CheckContext
from probe.probers._connect import NOLINGER, SocketOption, happy_eyeballs, open_socket
from probe.probers._http1 import READ_SIZE, Exchange, request_bytes
from probe.probers._net import Address, resolve
from probe.probers._proxy import DIRECT, ProxyRoute, invalid_proxy

# anyio loads its asyncio backend on its first I/O: ~20 ms of imports on the event loop,
# inside the first HTTP check's measured latency. Load it with this module instead. The
# path is anyio's own; should a later anyio move it, only this warm-up is lost.
with contextlib.suppress(ImportError):
    importlib.import_module("anyio._backends._asyncio")

__all__ = [
    "NOLINGER_OPTIONS",
    "USER_AGENT",
    "ProbeClient",
    "WholeBody",
    "close_client",
    "current_check",
    "new_client",
]

USER_AGENT = f"probe/{__version__}"

# The check running in the current task, for the network backend (which httpcore calls
# without any reference to the request) to report the "resolve" and "connect" phases.
current_check: contextvars.ContextVar[CheckContext | None] = contextvars.ContextVar(
    "probe_http_check", default=None
)


def new_client(
    context: ssl.SSLContext | None,
    route: ProxyRoute = DIRECT,
    *,
    cookies: CookieJar | None = None,
    nolinger: bool = False,
) -> ProbeClient:
    """A client with keep-alive off (`Connection: close`), no redirects followed, requests
    sent as `route` says (direct, a probe's proxy, or the environment's proxies). With
    `nolinger`, sockets close with a reset (SO_LINGER 0): no TIME_WAIT left behind."""
    return ProbeClient(
        _Transport(context, route, NOLINGER_OPTIONS if nolinger else ()), cookies=cookies
    )


class ProbeClient(httpx.AsyncClient):
    """An httpx client on our transport, whose requests can also be handed to the transport
    directly (`exchange`): the http prober builds its request once and follows redirects
    itself, and httpx's send (auth flow, cookie jar, event hooks, logging) would be CPU spent
    on every check for nothing it uses."""

    def __init__(self, transport: _Transport, *, cookies: CookieJar | None) -> None:
        super().__init__(
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Connection": "close"},
            cookies=cookies,
            follow_redirects=False,
            # No .netrc credentials and no proxy taken by httpx: the route decides, per URL.
            trust_env=False,
            timeout=None,
        )
        self._probe_transport = transport

    async def exchange(self, request: httpx.Request) -> httpx.Response:
        """`request` as it is, its response streamed: no redirect followed, no cookie kept."""
        response = await self._probe_transport.handle_async_request(request)
        response.request = request
        return response


# SO_LINGER 0 (`_connect.NOLINGER`), set by httpcore once connected; it takes effect when the
# socket is closed.
NOLINGER_OPTIONS: tuple[httpcore.SOCKET_OPTION, ...] = (NOLINGER,)


async def close_client(client: httpx.AsyncClient) -> None:
    await client.aclose()


class _Transport(httpx.AsyncBaseTransport):
    """httpx's default transport, minus what we do not want, plus our network backend.

    One connection pool per proxy in use (None: direct), made on first use: with a route
    from the environment, NO_PROXY decides per URL, redirects included.
    Exceptions are left as httpcore raised them: `_describe()` maps both families.
    """

    def __init__(
        self,
        context: ssl.SSLContext | None,
        route: ProxyRoute,
        socket_options: tuple[httpcore.SOCKET_OPTION, ...],
    ) -> None:
        self._context = context
        self._route = route
        self._socket_options = socket_options
        self._backend = _PhasedBackend()  # under httpcore's proxy pools
        self._direct_backend = _PhasedBackend(own_streams=True)
        self._default_context: ssl.SSLContext | None = None  # made once, if ever needed
        self._pools: dict[str | None, httpcore.AsyncConnectionPool] = {}

    def _pool_for(self, url: httpx.URL, proxy: str) -> httpcore.AsyncConnectionPool:
        pool = self._pools.get(proxy)
        if pool is None:
            if self._route.from_env:
                reason = invalid_proxy(proxy)
                if reason is not None:  # the config's proxies are checked at load
                    name = "HTTPS_PROXY" if url.scheme == "https" else "HTTP_PROXY"
                    raise httpx.ProxyError(f"{name} from the environment: {reason}")
            pool = self._new_pool(proxy)
            self._pools[proxy] = pool
        return pool

    def _new_pool(self, proxy: str) -> httpcore.AsyncConnectionPool:
        common: dict[str, Any] = {
            "ssl_context": self._context,
            # The scheduler bounds concurrency; a pool limit here would only add waits.
            "max_connections": None,
            "max_keepalive_connections": 0,
            "network_backend": self._backend,
            "socket_options": self._socket_options or None,
        }
        parsed = httpx.Proxy(proxy)
        proxy_url = httpcore.URL(
            scheme=parsed.url.raw_scheme,
            host=parsed.url.raw_host,
            port=parsed.url.port,
            target=parsed.url.raw_path,
        )
        if parsed.url.scheme in ("http", "https"):
            return httpcore.AsyncHTTPProxy(
                proxy_url=proxy_url, proxy_auth=parsed.raw_auth, **common
            )
        # httpcore's SOCKS pool takes no socket options: nolinger does not apply through it.
        del common["socket_options"]
        return httpcore.AsyncSOCKSProxy(proxy_url=proxy_url, proxy_auth=parsed.raw_auth, **common)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        proxy = self._route.proxy_for(request.url)
        if proxy is None:
            return await self._exchange(request, core_request)
        pool = self._pool_for(request.url, proxy)
        core_response = await pool.handle_async_request(core_request)
        assert isinstance(core_response.stream, AsyncIterable)
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_ResponseStream(core_response.stream),
            extensions=core_response.extensions,
        )

    async def _exchange(self, request: httpx.Request, core: httpcore.Request) -> httpx.Response:
        """A direct request on a connection of its own (the socket itself, TLS on memory BIOs
        for https://), parsed by httptools (_http1), closed with its response: the same
        trace events and httpcore exceptions as httpcore's own HTTP/1.1, for less CPU per
        check. Not through a connection pool: every check wants a fresh connection anyway,
        and httpcore's pool scans all of its connections and queued requests for each request
        (at 300 checks/s over 3,000 probes that scan was a fifth of the process's CPU)."""
        timeouts = core.extensions.get("timeout", {})
        trace = core.extensions.get("trace")
        origin = core.url.origin  # its port is the scheme's default when the URL has none
        stream: httpcore.AsyncNetworkStream = await self._direct_backend.connect_tcp(
            origin.host.decode("ascii"),
            origin.port,
            timeouts.get("connect"),
            None,
            self._socket_options or None,
        )
        try:
            if origin.scheme == b"https":
                stream = await self._start_tls(stream, core, timeouts.get("connect"), trace)
            body = await _request_body(request)
            if trace is not None:
                await trace("http11.send_request_headers.started", {"request": core})
            await stream.write(request_bytes(core, body), timeouts.get("write"))
            if trace is not None:
                await trace("http11.receive_response_headers.started", {"request": core})
            exchange = Exchange(stream, head_only=core.method == b"HEAD")
            await exchange.read_head(timeouts.get("read"))
            if trace is not None:
                await trace("http11.receive_response_headers.complete", {"request": core})
        except BaseException:
            await stream.aclose()  # no await inside: cancellation cannot cut it short
            raise
        extensions = {"http_version": exchange.version, "reason_phrase": exchange.reason}
        whole = exchange.whole_body() if _identity_encoded(exchange.headers) else None
        if whole is not None:
            # The whole answer came with its head (a health endpoint's usual few bytes).
            await stream.aclose()
            return httpx.Response(
                status_code=exchange.status,
                headers=exchange.headers,
                stream=WholeBody(whole),
                extensions=extensions,
            )
        return httpx.Response(
            status_code=exchange.status,
            headers=exchange.headers,
            stream=_ExchangeBody(exchange, stream, timeouts.get("read"), trace, core),
            extensions=extensions,
        )

    async def _start_tls(
        self,
        stream: httpcore.AsyncNetworkStream,
        core: httpcore.Request,
        timeout: float | None,
        trace: Any,
    ) -> httpcore.AsyncNetworkStream:
        context = self._context
        if context is None:
            if self._default_context is None:
                self._default_context = ssl.create_default_context()
            context = self._default_context
        hostname = core.extensions.get("sni_hostname") or core.url.host.decode("ascii")
        if trace is not None:
            await trace("connection.start_tls.started", {"request": core})
        secured = await stream.start_tls(context, hostname, timeout)
        if trace is not None:
            await trace("connection.start_tls.complete", {"return_value": secured})
        return secured

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


async def _request_body(request: httpx.Request) -> bytes:
    try:
        return request.content  # a body given as bytes is there already
    except httpx.RequestNotRead:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        return b"".join([part async for part in request.stream])


def _identity_encoded(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the body is as sent (no Content-Encoding, or identity): its bytes are the
    body, and a size limit on them is a limit on what the prober reads."""
    for name, value in headers:
        if name.lower() == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            return False
    return True


class WholeBody(httpx.AsyncByteStream):
    """A body that came whole with its head, not content-encoded: `content` is what a reader
    of the stream would get, and the http prober takes it from there, without the async
    iterators and decoders streaming it through httpx costs."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.content


class _ExchangeBody(httpx.AsyncByteStream):
    """The body of an `_exchange`; closing it closes the connection."""

    def __init__(
        self,
        exchange: Exchange,
        stream: httpcore.AsyncNetworkStream,
        timeout: float | None,
        trace: Any,
        request: httpcore.Request,
    ) -> None:
        self._exchange = exchange
        self._stream = stream
        self._timeout = timeout
        self._trace = trace
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._trace is not None:
            await self._trace("http11.receive_response_body.started", {"request": self._request})
        async for part in self._exchange.body(self._timeout):
            yield part

    async def aclose(self) -> None:
        await self._stream.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    """httpcore's response body (through a proxy pool) as httpx reads it."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class _PhasedBackend(httpcore.AsyncNetworkBackend):
    """Resolves names itself (phase "resolve", through `_net.resolve`), then races the
    addresses (phase "connect", Happy Eyeballs as in `_connect`).

    Direct requests run on the sockets themselves (`own_streams=True`; TLS by `_TLSStream`):
    httpcore's anyio backend wraps every read and write in an anyio cancel scope and asks
    sniffio which loop runs, each time, and a check costs about a third less CPU without it.
    Requests through a proxy keep httpcore's proxy pools on anyio streams. Errors are
    httpcore's either way, with the OS or TLS error as the cause (what `_describe()` reads)."""

    def __init__(self, *, own_streams: bool = False) -> None:
        self._own_streams = own_streams
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        ctx = current_check.get()
        if ctx is not None:
            ctx.phase = "resolve"
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        if ctx is not None:
            ctx.phase = "connect"
        options = tuple(socket_options or ())

        async def attempt(address: Address) -> httpcore.AsyncNetworkStream:
            if not self._own_streams:
                stream = await self._inner.connect_tcp(
                    address[1][0], port, timeout, local_address, options
                )
                return _GuardedStream(stream)
            try:
                async with asyncio.timeout(timeout):
                    # The options are ours (NOLINGER_OPTIONS): (level, name, value) triples.
                    sock = await open_socket(address, cast(tuple[SocketOption, ...], options))
            except TimeoutError:
                raise httpcore.ConnectTimeout("connecting timed out") from None
            except OSError as exc:  # not OverflowError (a port past 65535): said as it is
                raise httpcore.ConnectError(str(exc)) from exc
            return _SocketStream(sock)

        stream, _address = await happy_eyeballs(
            addresses, attempt, discard=lambda loser: loser.aclose(), ctx=ctx
        )
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return _GuardedStream(stream)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _SocketStream(httpcore.AsyncNetworkStream):
    """A connected non-blocking socket as httpcore reads it: b"" at the end, httpcore's
    exceptions with the OS error as their cause (direct requests, see _PhasedBackend).

    On the socket itself, with the event loop's `sock_*` calls, not on an asyncio transport:
    one request and one response need no protocol, buffer or flow control, and a transport
    costs a registration, a StreamReader, a StreamWriter and a weak reference per check. A
    read or write that can be done at once is done at once, without a timer or a future.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            try:
                return self._sock.recv(max_bytes)
            except BlockingIOError:
                pass
            async with asyncio.timeout(timeout):
                return await self._loop.sock_recv(self._sock, max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading") from None
        except OSError as exc:  # resets, TLS errors (ssl.SSLError is an OSError)
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            try:
                sent = self._sock.send(buffer)
            except BlockingIOError:
                sent = 0
            if sent < len(buffer):
                async with asyncio.timeout(timeout):
                    await self._loop.sock_sendall(self._sock, memoryview(buffer)[sent:])
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing") from None
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._sock.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await _TLSStream.wrap(self, ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._sock
        try:
            if info == "client_addr":
                return self._sock.getsockname()
            if info == "server_addr":
                return self._sock.getpeername()
        except OSError:  # closed, or no longer connected
            return None
        if info == "is_readable":
            return self._sock.fileno() < 0 or _readable_now(self._sock)
        return None


def _readable_now(sock: socket.socket) -> bool:
    """Whether a read would not block (data, the end, or an error waiting), without reading."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class _GuardedStream(httpcore.AsyncNetworkStream):
    """A network stream that is closed when its TLS handshake is cancelled.

    httpcore's anyio stream closes itself when the handshake fails but not when the task is
    cancelled (the scheduler's hard timeout), and no one else holds the socket by then.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            stream = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._inner.aclose()
            raise
        return _GuardedStream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _TLSStream(httpcore.AsyncNetworkStream):
    """TLS over a `_SocketStream`, with an SSLObject and memory BIOs, as anyio's TLS stream
    does it (and not asyncio's TLS transport): a server that rejects us after the handshake
    is reported by what it sent, its alert (ssl.SSLError, raised as it is) or a reset, and a
    TLS end without close_notify reads as the end of the stream. The handshake's errors are
    httpcore's ConnectError and ConnectTimeout, as from httpcore's own backends."""

    def __init__(
        self,
        raw: _SocketStream,
        obj: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._raw = raw
        self._ssl = obj
        self._incoming = incoming
        self._outgoing = outgoing

    @classmethod
    async def wrap(
        cls,
        raw: _SocketStream,
        context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float | None,
    ) -> _TLSStream:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
        stream = cls(raw, obj, incoming, outgoing)
        try:
            async with asyncio.timeout(timeout):
                await stream._call(obj.do_handshake, None)
        except (TimeoutError, httpcore.ReadTimeout, httpcore.WriteTimeout):
            await raw.aclose()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from None
        except (httpcore.ReadError, httpcore.WriteError) as exc:
            await raw.aclose()
            raise httpcore.ConnectError(str(exc)) from exc.__cause__ or exc
        except _EndOfStream as exc:
            await raw.aclose()
            raise httpcore.ConnectError("the server closed the TLS handshake") from exc
        except ssl.SSLError as exc:
            await raw.aclose()
            raise httpcore.ConnectError(str(exc)) from exc
        except BaseException:
            await raw.aclose()
            raise
        return stream

    async def _call(self, method: Any, timeout: float | None, *args: Any) -> Any:
        incoming, outgoing = self._incoming, self._outgoing
        while True:
            try:
                result = method(*args)
            except ssl.SSLWantReadError:
                await self._flush(timeout)
                data = await self._raw.read(READ_SIZE, timeout)
                if data:
                    incoming.write(data)
                else:
                    incoming.write_eof()
            except ssl.SSLWantWriteError:
                await self._flush(timeout)
            except ssl.SSLError as exc:
                incoming.write_eof()
                outgoing.write_eof()
                if isinstance(exc, ssl.SSLEOFError) or "UNEXPECTED_EOF" in (exc.strerror or ""):
                    raise _EndOfStream from exc
                raise
            else:
                await self._flush(timeout)
                return result

    async def _flush(self, timeout: float | None) -> None:
        data = self._outgoing.read()
        if data:
            await self._raw.write(data, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return bytes(await self._call(self._ssl.read, timeout, max_bytes))
        except _EndOfStream:
            return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            try:
                await self._call(self._ssl.write, timeout, buffer)
            except _EndOfStream as exc:
                raise httpcore.WriteError("the server closed the TLS connection") from exc

    async def aclose(self) -> None:
        await self._raw.aclose()

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._ssl
        return self._raw.get_extra_info(info)


class _EndOfStream(Exception):
    """The TLS stream ended without close_notify (read as the end, as anyio's does)."""
