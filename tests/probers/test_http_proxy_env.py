"""HTTP probes honour HTTP_PROXY / HTTPS_PROXY / NO_PROXY (and their lower-case forms) as Go
does, unless the probe sets `proxy:` or `proxy_from_env: false`.

The proxy is a real forward proxy on 127.0.0.1 (below): it takes absolute-form requests and
forwards them to the test's web server, which stands for a host named `backend.test` (never
resolved: a proxied request names it only to the proxy). A request that bypasses the proxy
must resolve `backend.test` itself, which the tests make fail locally (no DNS query leaves).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from probe.core.check import CheckContext
from probe.errors import ProbeError
from probe.probers._proxy import ProxyRoute
from probe.probers.http import HTTPProber, HTTPSpec
from tests.support import probers as scenarios


class ForwardProxy:
    """A minimal HTTP forward proxy: `GET http://host/path` is sent on as `GET /path` to the
    upstream that stands for every host; the answer is relayed until either side closes."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, _, rest = head.partition(b"\r\n")
            method, target, version = line.decode("latin-1").split(" ")
            self.requests.append(f"{method} {target}")
            url = httpx.URL(target)
            origin_line = f"{method} {url.raw_path.decode('ascii')} {version}\r\n"
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            up_writer.write(origin_line.encode("latin-1") + rest)
            await up_writer.drain()
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            up_writer.close()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def proxy(web_server, monkeypatch) -> AsyncIterator[ForwardProxy]:
    # A request that bypasses the proxy looks up backend.test: fail it here, locally.
    scenarios.fail_name_resolution(monkeypatch)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"backend says hello to {request.host}")

    base = await web_server(scenarios.web_app({"GET /health": hello}))
    forward = await ForwardProxy(httpx.URL(base).port or 80).start()
    yield forward
    await forward.close()


async def check(resources, url: str = "http://backend.test/health", **keys: object):
    spec = HTTPSpec(name="web", url=url, timeout="5s", **keys)
    return await HTTPProber(spec, resources).check(CheckContext())


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy"])
async def test_http_proxy_from_the_environment_is_used(proxy, resources, monkeypatch, name):
    monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    outcome = await check(resources, contain="backend says hello to backend.test")
    assert outcome.ok, outcome.message
    assert proxy.requests == ["GET http://backend.test/health"]


async def test_a_proxy_without_a_scheme_is_an_http_proxy(proxy, resources, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"127.0.0.1:{proxy.port}")
    assert (await check(resources)).ok
    assert len(proxy.requests) == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NO_PROXY", "backend.test"),
        ("no_proxy", "example.org, .test"),
        ("NO_PROXY", "*"),
        ("NO_PROXY", "backend.test:80"),
    ],
)
async def test_no_proxy_bypasses_the_proxy(proxy, resources, monkeypatch, variable, value):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ProbeError) as caught:
        await check(resources)
    assert caught.value.message == "name resolution failed for host backend.test"
    assert proxy.requests == []


async def test_no_proxy_for_another_port_keeps_the_proxy(proxy, resources, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "backend.test:8080")
    assert (await check(resources)).ok
    assert len(proxy.requests) == 1


async def test_proxy_from_env_false_bypasses_the_proxy(proxy, resources, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    with pytest.raises(ProbeError) as caught:
        await check(resources, proxy_from_env=False)
    assert caught.value.message == "name resolution failed for host backend.test"
    assert proxy.requests == []


async def test_loopback_is_never_proxied_from_the_environment(
    proxy, resources, monkeypatch, web_server
):
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="direct")

    base = await web_server(scenarios.web_app({"GET /": hello}))
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    assert (await check(resources, f"{base}/", contain="direct")).ok
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # what a user may write anyway
    assert (await check(resources, f"{base}/", contain="direct")).ok
    assert proxy.requests == []


async def test_the_probes_own_proxy_wins_and_ignores_no_proxy(proxy, resources, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # would be refused
    monkeypatch.setenv("NO_PROXY", "backend.test")
    assert (await check(resources, proxy=f"http://127.0.0.1:{proxy.port}")).ok
    assert proxy.requests == ["GET http://backend.test/health"]


async def test_https_proxy_is_not_used_for_http_urls(proxy, resources, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    with pytest.raises(ProbeError):
        await check(resources)
    assert proxy.requests == []


async def test_an_invalid_proxy_in_the_environment_fails_the_check_clearly(resources, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "ftp://user:secret@127.0.0.1:21")
    with pytest.raises(ProbeError) as caught:
        await check(resources)
    assert caught.value.message.startswith("proxy error: HTTP_PROXY from the environment: ")
    assert "secret" not in caught.value.message


def test_probes_that_route_alike_share_one_client(resources, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    a = HTTPProber(HTTPSpec(name="a", url="http://backend.test/a"), resources)
    b = HTTPProber(HTTPSpec(name="b", url="http://127.0.0.1/b"), resources)
    c = HTTPProber(HTTPSpec(name="c", url="http://backend.test/", proxy_from_env=False), resources)
    assert a.client is b.client
    assert c.client is not a.client


@pytest.mark.parametrize(
    ("no_proxy", "url", "proxied"),
    [
        ("", "https://api.example.com/", True),
        ("example.com", "https://api.example.com/", False),
        ("example.com", "https://example.com/", False),
        (".example.com", "https://example.com/", True),
        ("*.example.com", "https://api.example.com/", False),
        ("10.0.0.0/8", "https://10.1.2.3/", False),
        ("10.0.0.0/8", "https://11.1.2.3/", True),
        ("10.1.2.3", "https://10.1.2.3:8443/", False),
        ("10.1.2.3:443", "https://10.1.2.3:8443/", True),
        ("[2001:db8::1]:443", "https://[2001:db8::1]/", False),
        ("", "https://localhost:8443/", False),
        ("", "https://[::1]/", False),
    ],
)
def test_no_proxy_rules_are_gos(no_proxy, url, proxied):
    route = ProxyRoute.from_environment(
        {"HTTPS_PROXY": "http://proxy.lan:3128", "NO_PROXY": no_proxy}
    )
    assert (route.proxy_for(httpx.URL(url)) is not None) == proxied
