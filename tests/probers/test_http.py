from __future__ import annotations

import asyncio
import base64
import gc
import importlib.util
import socket
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import httpcore
import httpx
import pytest
import trustme
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.core.tracker import Policy, StatusTracker
from probe.errors import ProbeError
from probe.metrics import SeriesLabels, probe_metrics
from probe.probers._net import redact_url
from probe.probers.base import SharedResources
from probe.probers.http import USER_AGENT, HTTPProber, HTTPSpec, _describe
from tests.support import probers as scenarios
from tests.support.probers import Kind

MB = 1024 * 1024


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]


@dataclass
class Site:
    url: str
    seen: list[Seen] = field(default_factory=list)
    streamed: list[int] = field(default_factory=list)


def make_app(site: Site) -> web.Application:
    async def record(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else ("", 0)
        site.seen.append(
            Seen(
                request.method,
                request.path_qs,
                dict(request.headers),
                await request.read(),
                peer,
            )
        )
        return web.Response(text="hello, all ok")

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"this is {code}")

    async def text(request: web.Request) -> web.Response:
        return web.Response(text=request.query["body"])

    async def gzipped(request: web.Request) -> web.Response:
        response = web.Response(text="compressed hello " * 100)
        response.enable_compression(web.ContentCoding.gzip)
        return response

    async def redirect(request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left == 0:
            return web.Response(text="arrived")
        raise web.HTTPFound(f"/redirect/{left - 1}")

    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def cookie(request: web.Request) -> web.Response:
        response = web.Response(text="here is a cookie")
        response.set_cookie("session", "abc")
        return response

    async def endless(request: web.Request) -> web.StreamResponse:
        # 100 MB of "a", written as fast as the client takes it; counts what got out.
        response = web.StreamResponse()
        response.content_length = 100 * MB
        await response.prepare(request)
        chunk = b"a" * 65536
        sent = 0
        try:
            while sent < 100 * MB:
                await response.write(chunk)
                sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the prober stopped reading and hung up, as it should
        finally:
            site.streamed.append(sent)
        return response

    return scenarios.web_app(
        {
            "* /record": record,
            "GET /status/{code}": status,
            "GET /text": text,
            "GET /gzip": gzipped,
            "GET /redirect/{left}": redirect,
            "GET /elsewhere": elsewhere,
            "GET /cookie": cookie,
            "GET /endless": endless,
        }
    )


@pytest.fixture
async def site(web_server) -> Site:
    site = Site(url="")
    site.url = await web_server(make_app(site))
    return site


# make(resources, url, **keys), and check() and failure() with the same arguments
HTTP = Kind(HTTPProber, HTTPSpec, {"name": "web", "timeout": "5s"}, positional=("url",))
make, check, failure = HTTP.make, HTTP.check, HTTP.failure


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def failure_after(raw_server, resources: SharedResources, reply: bytes) -> ProbeError:
    """The error of a check against a server that reads the request, writes `reply` and
    closes the connection."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    server = await raw_server(answer)
    return await failure(resources, f"http://{server.address}/")


# --- status and body ----------------------------------------------------------------------


async def test_200_is_up(site, resources):
    outcome = await check(resources, f"{site.url}/record")
    assert outcome.ok
    assert outcome.message == "status 200"
    details = outcome.details
    assert details["status_code"] == 200
    assert details["http_version"] == "HTTP/1.1"
    assert details["content_length"] == len("hello, all ok")
    assert details["redirects"] == 0
    assert details["truncated"] is False
    assert details["url"] == f"{site.url}/record"
    assert details["peer"] == site.url.removeprefix("http://")
    assert details["ttfb_ms"] >= 0


async def test_503_is_down_with_the_reason(site, resources):
    outcome = await check(resources, f"{site.url}/status/503")
    assert not outcome.ok
    assert outcome.message == "status 503 not in 200-399"
    assert outcome.details["status_code"] == 503


@pytest.mark.parametrize(
    ("code", "ranges", "ok", "message"),
    [
        (204, [[200, 200]], False, "status 204 not in 200"),
        (503, [[500, 503]], True, "status 503"),
        (404, [[200, 299], [500, 500]], False, "status 404 not in 200-299, 500"),
        (418, [[200, 299], [400, 499]], True, "status 418"),
        (302, None, True, "status 302"),  # no Location: judged, not followed
        # EaseProbe's documented default range, and a range past the real codes.
        (404, [[0, 499]], True, "status 404"),
        (503, [[0, 499]], False, "status 503 not in 0-499"),
        (599, [[500, 999]], True, "status 599"),
    ],
)
async def test_success_code_ranges(site, resources, code, ranges, ok, message):
    keys = {} if ranges is None else {"success_code": ranges}
    outcome = await check(resources, f"{site.url}/status/{code}", **keys)
    assert (outcome.ok, outcome.message) == (ok, message)


@pytest.mark.parametrize(
    ("body", "keys", "ok", "message"),
    [
        ("all ok", {"contain": "ok"}, True, "status 200"),
        ("all bad", {"contain": "ok"}, False, 'body does not contain "ok"'),
        ("an error", {"not_contain": "error"}, False, 'body contains "error"'),
        ("fine", {"not_contain": "error"}, True, "status 200"),
        ("a.b", {"contain": "a.b", "not_contain": "x+"}, True, "status 200"),
        ("axb", {"contain": "a.b"}, False, 'body does not contain "a.b"'),
        ("axb", {"contain": "a.b", "regex": True}, True, "status 200"),
        ("v=12", {"contain": r"v=\d+$", "regex": True}, True, "status 200"),
        ("v=ab", {"contain": r"v=\d+", "regex": True}, False, r'body does not match "v=\d+"'),
        ("ERR 5", {"not_contain": r"ERR \d", "regex": True}, False, r'body matches "ERR \d"'),
        ("ok", {"contain": "", "not_contain": ""}, True, "status 200"),  # EaseProbe's "unset"
    ],
)
async def test_contain_and_not_contain(site, resources, body, keys, ok, message):
    url = str(httpx.URL(f"{site.url}/text", params={"body": body}))
    outcome = await check(resources, url, **keys)
    assert (outcome.ok, outcome.message) == (ok, message)


async def test_compressed_body_is_judged_decoded(site, resources):
    outcome = await check(resources, f"{site.url}/gzip", contain="compressed hello")
    assert outcome.ok
    assert outcome.details["content_length"] == len("compressed hello " * 100)


async def test_request_reaches_the_server_as_configured(site, resources):
    outcome = await check(
        resources,
        f"{site.url}/record?a=1",
        method="post",
        body='{"ping": true}',
        content_encoding="application/json",
        headers={"X-Trace": "t-1", "Host": "svc.test"},
        username="alice",
        password="open sesame",
    )
    assert outcome.ok
    (seen,) = site.seen
    assert seen.method == "POST"
    assert seen.path == "/record?a=1"
    assert seen.body == b'{"ping": true}'
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["X-Trace"] == "t-1"
    assert seen.headers["Host"] == "svc.test"
    assert seen.headers["Authorization"] == "Basic " + base64.b64encode(
        b"alice:open sesame"
    ).decode("ascii")
    assert seen.headers["User-Agent"] == USER_AGENT
    assert seen.headers["Connection"] == "close"


async def test_user_agent_can_be_replaced(site, resources):
    await check(resources, f"{site.url}/record", headers={"user-agent": "mine/1"})
    assert site.seen[0].headers["User-Agent"] == "mine/1"


# --- redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "keys", "ok", "message"),
    [
        (3, {}, True, "status 200"),
        (10, {}, True, "status 200"),
        (11, {}, False, "too many redirects (more than 10)"),
        (2, {"limit_redirects": True, "max_redirects": 2}, True, "status 200"),
        (
            3,
            {"limit_redirects": True, "max_redirects": 2},
            False,
            "too many redirects (more than 2)",
        ),
        (
            1,
            {"limit_redirects": True, "max_redirects": 0},
            False,
            "too many redirects (more than 0)",
        ),
        # max_redirects alone does not limit (EaseProbe: only with limit_redirects).
        (3, {"max_redirects": 2}, True, "status 200"),
    ],
)
async def test_redirects(site, resources, hops, keys, ok, message):
    outcome = await check(resources, f"{site.url}/redirect/{hops}", **keys)
    assert (outcome.ok, outcome.message) == (ok, message)
    if ok:
        assert outcome.details["redirects"] == hops
        assert outcome.details["url"] == f"{site.url}/redirect/0"
    else:
        assert outcome.details["status_code"] == 302


async def test_redirect_to_another_origin_drops_the_password(web_server, resources):
    first, second = Site(url=""), Site(url="")
    first.url = await web_server(make_app(first))
    second.url = await web_server(make_app(second))
    target = str(httpx.URL(f"{first.url}/elsewhere", params={"to": f"{second.url}/record"}))
    outcome = await check(resources, target, username="alice", password="pw")
    assert outcome.ok
    (seen,) = second.seen
    assert "Authorization" not in seen.headers


# --- body limit -----------------------------------------------------------------------------


async def test_body_limit_stops_reading_and_judges_what_was_read(site, resources):
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await check(
        resources, f"{site.url}/endless", max_body="64KiB", contain="aaa", timeout="10s"
    )
    assert loop.time() - started < 10  # not 100 MB at loopback speed through Python
    assert outcome.ok
    assert outcome.details["truncated"] is True
    assert outcome.details["content_length"] == 64 * 1024
    for _ in range(100):  # the server notices the hang-up a moment later
        if site.streamed:
            break
        await asyncio.sleep(0.02)
    assert site.streamed and site.streamed[0] < 50 * MB


async def test_truncated_body_says_so_when_text_is_missing(site, resources):
    outcome = await check(resources, f"{site.url}/endless", max_body=1000, contain="b")
    assert not outcome.ok
    assert outcome.message == 'body does not contain "b" (in the first 1000 bytes)'


@pytest.mark.parametrize(
    ("text", "size"),
    [(12, 12), ("512KB", 512_000), ("1MiB", MB), ("2 mb", 2_000_000), ("3k", 3000), ("10B", 10)],
)
def test_max_body_sizes(text, size):
    assert HTTPSpec(name="w", url="http://127.0.0.1/", max_body=text).max_body == size


# --- peers that misbehave -------------------------------------------------------------------


async def test_hard_timeout_while_waiting_for_the_response(raw_server, resources):
    hung_up = asyncio.Event()

    async def never_answer(reader, writer):
        await read_request(reader)
        await reader.read()  # returns at EOF: the prober closed its side
        hung_up.set()

    server = await raw_server(never_answer)
    ctx = CheckContext()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):  # what the scheduler does
            await make(resources, f"http://{server.address}/").check(ctx)
    assert loop.time() - started < 0.3 + 1
    assert ctx.phase == "waiting for the response"
    assert ctx.details["peer"] == server.address
    async with asyncio.timeout(2):
        await hung_up.wait()


@pytest.mark.slow
async def test_own_timeout_gives_a_clear_message(raw_server, resources):
    async def never_answer(reader, writer):
        await read_request(reader)
        await reader.read()

    server = await raw_server(never_answer)
    error = await failure(resources, f"http://{server.address}/", timeout="300ms")
    assert error.message == "timeout after 300ms during waiting for the response"


@pytest.mark.parametrize(
    ("head", "trickle", "phase"),
    [
        (b"", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "waiting for the response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"x" * 1000, "reading the body"),
    ],
)
@pytest.mark.slow
async def test_byte_by_byte_server_is_cut_by_the_hard_timeout(
    raw_server, resources, head, trickle, phase
):
    async def drip(reader, writer):
        await read_request(reader)
        writer.write(head)
        for byte in trickle:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    server = await raw_server(drip)
    ctx = CheckContext()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await make(resources, f"http://{server.address}/").check(ctx)
    assert loop.time() - started < 0.5 + 1
    assert ctx.phase == phase


async def test_connection_reset(raw_server, resources):
    async def reset(reader, writer):
        await read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await raw_server(reset)
    error = await failure(resources, f"http://{server.address}/")
    assert error.message == "connection reset by peer"


async def test_server_closes_without_answering(raw_server, resources):
    error = await failure_after(raw_server, resources, b"")
    assert error.message == "server closed the connection without answering"


async def test_server_closes_in_the_middle_of_the_body(raw_server, resources):
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"
    error = await failure_after(raw_server, resources, half)
    assert error.message == "server closed the connection before the body was complete"


async def test_garbage_instead_of_http(raw_server, resources):
    error = await failure_after(raw_server, resources, b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    assert error.message.startswith("invalid HTTP response")


async def test_connection_refused(closed_port, resources):
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, f"http://127.0.0.1:{closed_port}/").check(ctx)
    assert caught.value.message == "connection refused"
    assert caught.value.details["peer"] == f"127.0.0.1:{closed_port}"
    assert ctx.phase == "connect"


async def test_name_that_does_not_resolve(monkeypatch, resources):
    scenarios.fail_name_resolution(monkeypatch)
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, "https://status.invalid/health").check(ctx)
    assert caught.value.message == "name resolution failed for host status.invalid"
    assert ctx.phase == "resolve"


async def test_http_proxy_is_used(raw_server, resources):
    request_lines: list[bytes] = []

    async def proxy(reader, writer):
        head = await read_request(reader)
        request_lines.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nvia proxy")
        await writer.drain()

    server = await raw_server(proxy)
    # backend.test is never resolved here: the proxy gets the absolute URL.
    outcome = await check(
        resources,
        "http://backend.test/health",
        proxy=f"http://pal:proxy-pw@{server.address}",
        contain="via proxy",
    )
    assert outcome.ok
    (head,) = request_lines
    assert head.startswith(b"GET http://backend.test/health HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic " + base64.b64encode(b"pal:proxy-pw") in head


# --- TLS ------------------------------------------------------------------------------------


@dataclass
class Certs:
    good: trustme.LeafCert
    expired: trustme.LeafCert
    wrong_host: trustme.LeafCert
    self_signed: trustme.LeafCert
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def certs(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Certs:
    now = datetime.now(UTC)
    folder = tmp_path_factory.mktemp("certs")
    client = tls_ca.issue_cert("client.test")
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    # A CA's own certificate is self-signed: served as a leaf, nothing vouches for it.
    lone = trustme.CA()
    self_signed = trustme.LeafCert(
        private_key_pem=lone.private_key_pem.bytes(),
        server_cert_pem=lone.cert_pem.bytes(),
        chain_to_ca=[],
    )
    return Certs(
        good=tls_ca.issue_cert("127.0.0.1", "localhost"),
        expired=tls_ca.issue_cert(
            "127.0.0.1", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
        ),
        wrong_host=tls_ca.issue_cert("other.test"),
        self_signed=self_signed,
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
    )


async def tls_site(web_server, server_ssl_context, leaf, **context_keys) -> str:
    site = Site(url="")
    site.url = await web_server(
        make_app(site), ssl_context=server_ssl_context(leaf, **context_keys)
    )
    return site.url


async def test_tls_with_a_trusted_ca(web_server, server_ssl_context, certs, tls_ca_file, resources):
    url = await tls_site(web_server, server_ssl_context, certs.good)
    outcome = await check(resources, f"{url}/record", ca=str(tls_ca_file))
    assert outcome.ok
    assert outcome.details["tls_version"] in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize(
    ("leaf", "with_ca", "message"),
    [
        ("good", False, "TLS: certificate signed by an unknown authority"),
        ("expired", True, "TLS: certificate has expired"),
        ("wrong_host", True, "TLS: hostname mismatch"),
        ("self_signed", False, "TLS: self-signed certificate"),
    ],
)
async def test_bad_certificates(
    web_server, server_ssl_context, certs, tls_ca_file, resources, leaf, with_ca, message
):
    url = await tls_site(web_server, server_ssl_context, getattr(certs, leaf))
    keys = {"ca": str(tls_ca_file)} if with_ca else {}
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, f"{url}/record", **keys).check(ctx)
    assert caught.value.message == message
    assert ctx.phase == "TLS handshake"


@pytest.mark.parametrize("leaf", ["self_signed", "expired", "wrong_host"])
async def test_insecure_accepts_any_certificate(
    web_server, server_ssl_context, certs, resources, leaf
):
    url = await tls_site(web_server, server_ssl_context, getattr(certs, leaf))
    outcome = await check(resources, f"{url}/record", insecure=True)
    assert outcome.ok


async def test_mutual_tls(web_server, server_ssl_context, certs, tls_ca, tls_ca_file, resources):
    url = await tls_site(web_server, server_ssl_context, certs.good, client_ca=tls_ca)
    outcome = await check(
        resources,
        f"{url}/record",
        ca=str(tls_ca_file),
        cert=str(certs.client_cert),
        key=str(certs.client_key),
    )
    assert outcome.ok
    error = await failure(resources, f"{url}/record", ca=str(tls_ca_file))
    # Servers that send their alert say so; those that abort (asyncio's, here) reset the
    # connection, or close it before our request arrives: which one we see is a race.
    assert error.message in (
        "TLS: the server requires a client certificate",
        "connection reset by peer after the TLS handshake"
        " (does the server require a client certificate?)",
        "server closed the connection without answering after the TLS handshake"
        " (does the server require a client certificate?)",
    )


async def test_https_to_a_plain_http_server(site, resources):
    error = await failure(resources, site.url.replace("http://", "https://") + "/record")
    assert error.message == "TLS: the server did not answer with TLS (plain HTTP?)"


@pytest.mark.slow
async def test_hard_timeout_during_tls_handshake_leaves_no_socket(raw_server, resources, open_fds):
    async def silent(reader, writer):
        await reader.read()

    server = await raw_server(silent)
    prober = make(resources, f"https://{server.address}/")
    prober.client  # noqa: B018 - build the shared client (and its CA bundle) before counting
    before = open_fds()
    ctx = await scenarios.cancelled(prober, 0.3)
    assert ctx.phase == "TLS handshake"
    gc.collect()
    await scenarios.settle(open_fds, before)


# --- sharing and resources ------------------------------------------------------------------


def test_clients_are_shared_per_tls_and_proxy_setting(resources, tls_ca_file, certs):
    a = make(resources, "http://127.0.0.1:1/a")
    b = make(resources, "https://127.0.0.1:2/b", timeout="1s", contain="x")
    assert a.client is b.client
    assert len(resources) == 2  # one SSLContext, one client
    c = make(resources, "https://127.0.0.1/", ca=str(tls_ca_file))
    d = make(resources, "https://127.0.0.1/other", ca=str(tls_ca_file))
    assert c.client is d.client
    assert c.client is not a.client
    assert len(resources) == 4
    e = make(resources, "https://127.0.0.1/", insecure=True)
    mtls = make(
        resources,
        "https://127.0.0.1/",
        ca=str(tls_ca_file),
        cert=str(certs.client_cert),
        key=str(certs.client_key),
    )
    assert len({id(p.client) for p in (a, c, e, mtls)}) == 4
    proxied = make(resources, "http://127.0.0.1/", proxy="http://127.0.0.1:3128")
    assert proxied.client is not a.client
    assert len(resources) == 9  # the proxied client reuses the default SSLContext


async def test_keep_alive_is_off(site, resources):
    prober = make(resources, f"{site.url}/record")
    for _ in range(3):
        assert (await prober.check(CheckContext())).ok
    peers = {seen.peer for seen in site.seen}
    assert len(peers) == 3  # a fresh connection (a new client port) per check


async def test_cookies_are_not_carried_between_checks(site, resources):
    await check(resources, f"{site.url}/cookie")
    await check(resources, f"{site.url}/record")
    assert "Cookie" not in site.seen[0].headers


@pytest.mark.slow
async def test_no_descriptor_leaks_after_many_checks(
    site, raw_server, closed_port, resources, open_fds
):
    async def never_answer(reader, writer):
        await reader.read()

    hung = await raw_server(never_answer)
    good = make(resources, f"{site.url}/record")
    refused = make(resources, f"http://127.0.0.1:{closed_port}/")
    stuck = make(resources, f"http://{hung.address}/")
    failing = [refused, partial(scenarios.cancelled, stuck, 0.01)]
    await scenarios.assert_no_leaks_mixing(open_fds, good, failing, every=8)


# --- secrets --------------------------------------------------------------------------------

SECRETS = ("url-secret", "query-secret", "key-secret")


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text)


async def test_credentials_never_in_endpoint_messages_or_details(site, closed_port, resources):
    port = site.url.rsplit(":", 1)[1]
    url = f"http://alice:url-secret@127.0.0.1:{port}/status/401?token=query-secret&x=1"
    spec = HTTPSpec(name="s", url=url, username="bob", password="key-secret")
    assert spec.endpoint() == f"http://127.0.0.1:{port}/status/401?token=***&x=1"
    assert_no_secret(spec.endpoint(), repr(spec.password))
    outcome = await HTTPProber(spec, resources).check(CheckContext())
    assert not outcome.ok
    assert_no_secret(outcome.message, outcome.details)
    refused_url = f"http://alice:url-secret@127.0.0.1:{closed_port}/?api_key=query-secret"
    error = await failure(resources, refused_url, password="key-secret")
    assert_no_secret(error.message, error.details)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@host.test/p?q=1", "https://host.test/p?q=1"),
        ("https://host.test:8443/p?token=t&x=2#frag", "https://host.test:8443/p?token=***&x=2"),
        (
            "http://[::1]:80/?password=p&signature=s&user=u",
            "http://[::1]:80/?password=***&signature=***&user=u",
        ),
        ("http://host.test/?access%5Ftoken=t", "http://host.test/?access%5Ftoken=***"),
        ("http://host.test", "http://host.test"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


# --- config validation ----------------------------------------------------------------------


def spec_error(**keys: object) -> str:
    keys.setdefault("url", "http://127.0.0.1/")
    with pytest.raises(ValidationError) as caught:
        HTTPSpec(name="w", **keys)
    return str(caught.value)


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"url": "ftp://127.0.0.1/"}, "must start with http:// or https://"),
        ({"url": "127.0.0.1:80"}, "must start with http://"),
        ({"url": "http:///path"}, "has no host"),
        ({"method": "GE T"}, "invalid HTTP method"),
        ({"headers": {"X-A": "a\r\nInjected: 1"}}, "line breaks"),
        ({"headers": {"Bad Name": "x"}}, "invalid header name"),
        ({"success_code": [[300, 200]]}, "must not exceed"),
        ({"success_code": [[-1, 200]]}, "0-999"),
        ({"success_code": [[200, 1000]]}, "0-999"),
        ({"success_code": []}, "at least 1"),
        ({"contain": "(", "regex": True}, "invalid regular expression"),
        ({"not_contain": "[a-", "regex": True}, "invalid regular expression"),
        ({"max_body": "lots"}, "invalid size"),
        ({"max_body": 0}, "greater than or equal to 1"),
        ({"max_redirects": -1}, "greater than or equal to 0"),
        ({"proxy": "ftp://127.0.0.1:21"}, "must start with http://"),
        ({"ca": "/nonexistent/ca.pem"}, "file not found"),
        ({"eval": {"doc": "json", "expression": "x"}}, '"x" is not a variable'),
        ({"eval": {"doc": "csv", "expression": "true"}}, "'json', 'xml', 'html' or 'text'"),
        ({"timeout": 5}, "bare number"),
    ],
)
def test_invalid_specs(keys, needle):
    assert needle in spec_error(**keys)


def test_success_code_text_shows_the_ranges_as_configured():
    spec = HTTPSpec(name="w", url="http://127.0.0.1/", success_code=[[0, 499], [503, 503]])
    assert spec.success_code_text() == "0-499, 503"


def test_eval_is_acted_on_now():
    assert "eval" not in HTTPSpec.easeprobe_ignored
    spec = HTTPSpec(name="w", url="http://127.0.0.1/", eval={"doc": "HTML", "expression": "1"})
    assert spec.eval is not None and spec.eval.doc == "html"


def test_regex_off_accepts_any_text():
    spec = HTTPSpec(name="w", url="http://127.0.0.1/", contain="(")
    assert spec.contain == "("


def test_cert_and_key_go_together(certs):
    assert "cert and key go together" in spec_error(cert=str(certs.client_cert))
    assert "cert and key go together" in spec_error(key=str(certs.client_key))


def test_mismatched_key_is_a_config_error(certs, tls_ca, tmp_path):
    other = tls_ca.issue_cert("other.test")
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    message = spec_error(cert=str(certs.client_cert), key=str(tmp_path / "other.key"))
    assert "cannot load the TLS files" in message


def test_not_a_pem_file_is_a_config_error(tmp_path):
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    assert "cannot load the TLS files" in spec_error(ca=str(junk))


def test_socks_proxy_needs_socksio():
    if importlib.util.find_spec("socksio") is None:
        assert "pip install 'httpx[socks]'" in spec_error(proxy="socks5://127.0.0.1:1080")
    else:
        spec = HTTPSpec(name="w", url="http://127.0.0.1/", proxy="socks5://127.0.0.1:1080")
        assert spec.proxy == "socks5://127.0.0.1:1080"


def test_relative_tls_paths_are_relative_to_the_config(tmp_path, certs):
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "c.pem").write_bytes(certs.client_cert.read_bytes())
    (tmp_path / "tls" / "c.key").write_bytes(certs.client_key.read_bytes())
    spec = HTTPSpec.model_validate(
        {"name": "w", "url": "https://127.0.0.1/", "cert": "tls/c.pem", "key": "tls/c.key"},
        context={"base_dir": tmp_path},
    )
    assert spec.cert == tmp_path / "tls" / "c.pem"


def test_defaults():
    spec = HTTPSpec(name="w", url="http://127.0.0.1/")
    assert spec.method == "GET"
    assert spec.success_code == [(200, 399)]
    assert spec.success_code_text() == "200-399"
    assert spec.max_body == MB
    assert spec.max_redirects == 10
    assert not spec.limit_redirects
    assert HTTPSpec.kind == "http"


# --- the exception boundary -----------------------------------------------------------------

DRIVER_ERRORS = [
    httpcore.ConnectError,
    httpcore.ReadError,
    httpcore.WriteError,
    httpcore.RemoteProtocolError,
    httpcore.LocalProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectTimeout,
    httpcore.ReadTimeout,
    httpcore.WriteTimeout,
    httpcore.PoolTimeout,
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.CloseError,
    httpx.RemoteProtocolError,
    httpx.LocalProtocolError,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.DecodingError,
    httpx.ConnectTimeout,
    httpx.ReadTimeout,
    httpx.InvalidURL,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
]


@pytest.mark.parametrize("error_type", DRIVER_ERRORS, ids=lambda t: f"{t.__module__}.{t.__name__}")
def test_every_driver_error_has_a_message(error_type):
    message = _describe(error_type("boom"), "waiting for the response", 5.0)
    assert not message.startswith(error_type.__name__)
    assert message


def test_os_errors_inside_driver_errors():
    inner = ConnectionRefusedError(111, "Connection refused")
    try:
        try:
            raise OSError("All connection attempts failed") from ExceptionGroup("x", [inner])
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
    except httpcore.ConnectError as wrapped:
        assert _describe(wrapped, "connect", 5.0) == "connection refused"


# --- typed readings: the status code metrics (and conditions) read -----------------------------


@pytest.mark.parametrize(
    ("path", "keys", "code"),
    [
        ("/record", {}, 200),
        ("/status/503", {}, 503),
        ("/status/503", {"with_output": True}, 503),
        ("/redirect/2", {"limit_redirects": True, "max_redirects": 1}, 302),  # too many
    ],
)
async def test_the_judged_status_code_is_a_typed_reading(site, resources, path, keys, code):
    outcome = await check(resources, f"{site.url}{path}", **keys)
    assert outcome.http_status == code
    assert outcome.details["status_code"] == code  # what users see is unchanged


async def test_status_code_reads_0_when_no_answer_was_judged(
    site, raw_server, closed_port, resources
):
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"

    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(half)
        await writer.drain()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    cut, silent = await raw_server(cut_short), await raw_server(never_answer)
    for url, timeout in (
        (f"http://127.0.0.1:{closed_port}/", "5s"),  # refused: a ProbeError
        (f"http://{cut.address}/", "5s"),  # an answer, but no body to judge
        (f"http://{silent.address}/", "100ms"),  # a timeout
    ):
        run = await run_check(make(resources, url, timeout=timeout), cancel_grace=0.5)
        assert run.result.status is Status.DOWN, url
        assert run.result.http_status == 0, url
        assert "status_code" not in run.result.details, url
    up = await run_check(make(resources, f"{site.url}/status/204"))
    assert (up.result.http_status, up.result.cert_expiry) == (204, None)


async def test_probe_http_status_code_comes_from_real_checks(site, closed_port, resources):
    registry = CollectorRegistry()
    metrics = probe_metrics(
        registry,
        [
            SeriesLabels("web", "http", site.url, {}),
            SeriesLabels("gone", "http", f"http://127.0.0.1:{closed_port}/", {}),
        ],
    )
    tracker = StatusTracker()  # what the metrics read, as in the App
    metrics.attach(tracker)
    for name, url in (
        ("web", f"{site.url}/status/503"),
        ("gone", f"http://127.0.0.1:{closed_port}/"),
    ):
        run = await run_check(make(resources, url, name=name))
        tracker.observe(run.result, Policy(interval=60))
    samples = {
        sample.labels["name"]: sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        if family.name == "probe_http_status_code"
        for sample in family.samples
    }
    assert samples == {"web": 503.0, "gone": 0.0}
