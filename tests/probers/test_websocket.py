"""The websocket prober against a real WebSocket server (websockets' own asyncio server, plain
and TLS with a trustme CA): ping-pong, a message and its reply, a refused upgrade (HTTP 403),
a port that never answers the handshake, a server that closes at once, a wrong reply."""

from __future__ import annotations

import asyncio
import http
import os
import ssl
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from probe.assembly import load_config
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError
from probe.probers.base import SharedResources
from probe.probers.websocket import WebSocketProber, WebSocketSpec
from tests.support import probers as scenarios
from tests.support.cli import REPO, spawn_probe

TOKEN = "Bearer s3cret-t0ken"


async def handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else "/"
    if path == "/close":
        return  # the server closes (1000) right after the upgrade
    if path == "/mute":
        await ws.wait_closed()  # pongs (the library's) but never a reply
        return
    async for message in ws:
        if path == "/whoami":
            auth = ws.request.headers.get("Authorization") if ws.request else None
            await ws.send("welcome" if auth == TOKEN else "who are you?")
        else:
            await ws.send(f"echo: {message}")


def refuse(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/forbidden":
        return connection.respond(http.HTTPStatus.FORBIDDEN, "no\n")
    return None


@pytest.fixture
async def ws_server() -> AsyncIterator[Callable[..., Any]]:
    servers: list[Server] = []

    async def start(ssl_context: ssl.SSLContext | None = None) -> str:
        server = await serve(
            handler, "127.0.0.1", 0, process_request=refuse, ssl=ssl_context, compression=None
        )
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"{'wss' if ssl_context else 'ws'}://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def make(resources: SharedResources, url: str, **keys: Any) -> WebSocketProber:
    keys.setdefault("name", "ws")
    keys.setdefault("timeout", "2s")
    if "host" in keys:  # the shared scenarios give host:port
        url = f"ws://{keys.pop('host')}/echo"
    return WebSocketProber(WebSocketSpec(url=url, **keys), resources)


async def test_ping_pong_is_up(ws_server, resources):
    base = await ws_server()
    ctx = CheckContext()
    outcome = await make(resources, f"{base}/echo").check(ctx)
    assert outcome.ok, outcome.message
    assert outcome.message.startswith("upgraded; pong in ")
    assert ctx.http_status == 101
    assert ctx.facts["IP"] == "127.0.0.1"
    assert ctx.phase == "ping"


async def test_send_and_judge_the_reply(ws_server, resources):
    base = await ws_server()
    good = make(resources, f"{base}/echo", send="hello", contain="echo: hel")
    ctx = CheckContext()
    outcome = await good.check(ctx)
    assert outcome.ok and outcome.message == "upgraded; reply of 11 bytes"
    assert ctx.facts["BODY"] == "echo: hello"
    regex = make(resources, f"{base}/echo", send="hi", regex=True, contain=r"^echo: h\w$")
    assert (await regex.check(CheckContext())).ok
    for keys, message in [
        ({"contain": "ok"}, 'reply does not contain "ok"'),
        ({"not_contain": "echo"}, 'reply contains "echo"'),
        ({"regex": True, "contain": "^ok$"}, 'reply does not match "^ok$"'),
    ]:
        wrong = make(resources, f"{base}/echo", send="hello", **keys)
        result = (await run_check(wrong)).result
        assert result.status is Status.DOWN
        assert result.message == message


async def test_conditions_read_status_and_body(ws_server, resources):
    base = await ws_server()
    up = make(
        resources,
        f"{base}/echo",
        send="x",
        conditions=["[STATUS] == 101", "[BODY] == pat(echo:*)", "[RESPONSE_TIME] < 10s"],
    )
    assert (await run_check(up)).result.status is Status.UP
    refused = make(resources, f"{base}/forbidden", conditions=["[STATUS] == 403"])
    result = (await run_check(refused)).result
    assert result.status is Status.DOWN
    assert result.http_status == 403


async def test_refused_upgrade(ws_server, resources):
    base = await ws_server()
    error = await scenarios.failure(make(resources, f"{base}/forbidden"))
    assert error.message == "the server refused the WebSocket upgrade: HTTP 403"


async def test_plain_http_server_is_not_upgraded(web_server, resources):
    base = await web_server(scenarios.web_app({}))
    url = base.replace("http://", "ws://") + "/"
    error = await scenarios.failure(make(resources, url))
    assert error.message == "the server refused the WebSocket upgrade: HTTP 404"


async def test_server_closing_at_once(ws_server, raw_server, resources):
    base = await ws_server()
    error = await scenarios.failure(make(resources, f"{base}/close"))
    assert error.message == "connection closed by the server during ping (code 1000)"
    error = await scenarios.failure(make(resources, f"{base}/close", send="x"))
    assert error.message in (
        "connection closed by the server during send (code 1000)",
        "connection closed by the server during waiting for the reply (code 1000)",
    )

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await raw_server(hang_up)
    error = await scenarios.failure(make(resources, f"ws://{server.address}/"))
    assert error.message in (
        "connection closed by the server during WebSocket handshake",
        "connection reset by peer",
    )


async def test_silent_reply_and_handshake_time_out(ws_server, resources, open_fds):
    base = await ws_server()
    mute = make(resources, f"{base}/mute", send="x", timeout="300ms")
    result = (await run_check(mute)).result
    assert result.message == "timeout after 300ms during waiting for the reply"
    upstream = base.removeprefix("ws://")
    echo = partial(make, resources, "")
    await scenarios.assert_silent_port_times_out(
        upstream, echo, "WebSocket handshake", open_fds=open_fds
    )


async def test_refused_and_outage(ws_server, resources, closed_port):
    error = await scenarios.failure(make(resources, f"ws://127.0.0.1:{closed_port}/"))
    assert error.message == "connection refused"
    base = await ws_server()
    await scenarios.assert_outage_and_recovery(
        base.removeprefix("ws://"),
        partial(make, resources, ""),
        {
            "connection reset by peer",
            "connection closed by the server during WebSocket handshake",
        },
    )


class ConnectProxy:
    """An HTTP CONNECT proxy that tunnels every request to `upstream` (whatever it names),
    or answers `refuse` (a status line) instead. Loopback only."""

    def __init__(self, upstream: str, refuse: str | None = None) -> None:
        self.upstream = upstream
        self.refuse = refuse
        self.tunnels = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"CONNECT ")
        if self.refuse is not None:
            writer.write(f"HTTP/1.1 {self.refuse}\r\nContent-Length: 0\r\n\r\n".encode())
            writer.close()
            return
        host, port = self.upstream.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self.tunnels += 1
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_through_an_http_proxy(ws_server, raw_server, resources, closed_port):
    base = await ws_server()
    tunnel = ConnectProxy(base.removeprefix("ws://"))
    proxy = await raw_server(tunnel.handle)
    # The URL's own port is closed: only the proxy reaches the server.
    url = f"ws://127.0.0.1:{closed_port}/echo"
    ctx = CheckContext()
    outcome = await make(resources, url, proxy=f"http://{proxy.address}").check(ctx)
    assert outcome.ok, outcome.message
    assert tunnel.tunnels == 1
    assert outcome.details["proxy"] == f"http://{proxy.address}"
    refusing = await raw_server(ConnectProxy("", refuse="407 Proxy Authentication Required").handle)
    error = await scenarios.failure(make(resources, url, proxy=f"http://u:pw@{refusing.address}"))
    assert error.message == "proxy: proxy rejected connection: HTTP 407"
    assert "pw" not in repr(error.details)


@pytest.fixture
def wss_files(tmp_path: Path) -> scenarios.ServerTLS:
    return scenarios.server_tls_files(tmp_path, "127.0.0.1", "localhost")


def _server_context(files: scenarios.ServerTLS, client_ca: trustme.CA | None = None) -> Any:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)
    return context


async def test_tls(ws_server, resources, wss_files):
    base = await ws_server(_server_context(wss_files))
    good = make(resources, f"{base}/echo", ca=wss_files.ca_file, send="x", contain="echo")
    assert (await good.check(CheckContext())).ok
    assert (await make(resources, f"{base}/echo", insecure=True).check(CheckContext())).ok
    other = make(resources, f"{base}/echo", ca=wss_files.other_ca_file)
    error = await scenarios.failure(other)
    assert error.message == "TLS: certificate signed by an unknown authority"
    # A TLS client speaking to a plain server.
    plain = await ws_server()
    error = await scenarios.failure(make(resources, plain.replace("ws://", "wss://") + "/"))
    assert error.message.startswith("TLS: ") or error.message in (
        "connection reset by peer",
        "connection closed by the server during WebSocket handshake",
    )


async def test_tls_contexts_are_shared_and_a_bad_ca_is_a_failed_check(
    ws_server, resources, wss_files, tmp_path
):
    bad_ca_file = tmp_path / "bad-ca.pem"
    bad_ca_file.write_text("not a certificate\n")
    base = await ws_server(_server_context(wss_files))
    first = make(resources, f"{base}/echo", ca=wss_files.ca_file)
    second = make(resources, f"{base}/other", ca=wss_files.ca_file)
    assert (await first.check(CheckContext())).ok and (await second.check(CheckContext())).ok
    assert len(resources) == 1
    error = await scenarios.failure(make(resources, f"{base}/echo", ca=bad_ca_file))
    assert error.message == "TLS: cannot load the certificates: no certificate or crl found"


async def test_tls_client_certificate(ws_server, resources, wss_files, tmp_path):
    client_ca = trustme.CA()
    client = client_ca.issue_cert("probe-client")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    base = await ws_server(_server_context(wss_files, client_ca))
    keys: dict[str, Any] = {"ca": wss_files.ca_file}
    mtls = make(
        resources, f"{base}/echo", cert=tmp_path / "client.pem", key=tmp_path / "client.key", **keys
    )
    assert (await mtls.check(CheckContext())).ok
    error = await scenarios.failure(make(resources, f"{base}/echo", **keys))
    assert error.message.startswith("TLS: ") or error.message in (
        "connection reset by peer",
        "connection closed by the server during WebSocket handshake",
    )


async def test_headers_reach_the_server_and_secrets_stay_out(ws_server, resources):
    base = await ws_server()
    url = base.replace("ws://", "ws://probe:pa55word@") + "/whoami"
    good = make(resources, url, headers={"Authorization": TOKEN}, send="hi", contain="welcome")
    outcome = await good.check(CheckContext())
    assert outcome.ok
    assert good.endpoint == f"{base}/whoami"
    scenarios.assert_no_secret(outcome, good, "pa55word", "s3cret-t0ken")
    bad = make(
        resources, url, headers={"Authorization": "Bearer wr0ng"}, send="hi", contain="welcome"
    )
    result = (await run_check(bad)).result
    assert result.status is Status.DOWN
    scenarios.assert_no_secret(result, bad, "pa55word", "wr0ng", "s3cret-t0ken")
    refused = make(
        resources, url.replace("/whoami", "/forbidden"), headers={"Authorization": TOKEN}
    )
    error = await scenarios.failure(refused)
    scenarios.assert_no_secret(error, refused, "pa55word", "s3cret-t0ken")


async def test_no_descriptor_leak_over_1000_checks(ws_server, resources, open_fds):
    base = await ws_server()
    prober = make(resources, f"{base}/echo")
    await scenarios.assert_no_descriptor_leak(prober, open_fds, rounds=1000, pause=0.1)
    refused = make(resources, f"{base}/forbidden")
    await scenarios.assert_no_descriptor_leak(
        refused, open_fds, status=Status.DOWN, rounds=100, pause=0.1
    )


async def test_cancelled_checks_leave_nothing_open(ws_server, resources, open_fds):
    base = await ws_server()
    mute = make(resources, f"{base}/mute", send="x", timeout="5s")
    assert (await make(resources, f"{base}/echo").check(CheckContext())).ok
    before = open_fds()
    for _ in range(20):
        await scenarios.cancelled(mute, 0.05)
    await scenarios.settle(open_fds, before)


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"url": "http://127.0.0.1/"}, 'the scheme must be "ws" or "wss"'),
        ({"url": "ws:///path"}, "needs a host"),
        ({"url": "ws://127.0.0.1:99999/"}, "the port must be 1-65535"),
        ({"proxy": "ftp://127.0.0.1:21"}, "the scheme must be"),
        ({"regex": True, "contain": "("}, "invalid regular expression"),
        ({"headers": {"Bad Name": "x"}}, "not a valid header line"),
        ({"cert": "/nonexistent/cert.pem", "key": "/nonexistent/key.pem"}, "file not found"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_spec(keys, needle):
    keys.setdefault("url", "ws://127.0.0.1:1/")
    with pytest.raises(ValidationError) as caught:
        WebSocketSpec(name="w", **keys)
    assert needle in str(caught.value)


EASEPROBE_EXAMPLE = """\
websocket:
  - name: websocket.org
    url: wss://echo.websocket.org:443
    timeout: 5s
    interval: 30s
    headers:
      Authorization: "Basic dXNlcm5hbWU6cGFzc3dvcmQ="
    proxy: http://127.0.0.1:3128
"""


async def test_probe_check_accepts_the_easeprobe_example(tmp_path: Path):
    # `probe check` only loads and validates: nothing is connected to.
    path = tmp_path / "probes.yaml"
    path.write_text(EASEPROBE_EXAMPLE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await spawn_probe("check", "-c", str(path), cwd=tmp_path, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "websocket" in out.decode()
    assert "dXNlcm5hbWU6cGFzc3dvcmQ" not in out.decode() + err.decode()


def test_easeprobe_example_loads_and_errors_are_located(tmp_path: Path):
    # EaseProbe's form: url, headers, proxy (socks5 needs python-socks: an http proxy here).
    path = tmp_path / "probes.yaml"
    path.write_text(EASEPROBE_EXAMPLE)
    (spec,) = load_config(path, environ={}).probes
    assert isinstance(spec, WebSocketSpec) and spec.kind == "websocket"
    assert spec.endpoint() == "wss://echo.websocket.org:443"
    path.write_text("websocket:\n  - name: w\n    url: https://example.com/\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value).startswith(f"{path}:3:10: websocket[0].url:")
