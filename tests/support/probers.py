"""What the prober tests share: making probers, running checks, and the scenarios every
network prober goes through against its real server.

The scenarios take a `make` callable (spec keys in, prober out: usually the test module's
own `make` with its first arguments bound by functools.partial) and put a TCPProxy between
the prober and the shared server, so that an outage or a silent port never touches the
server itself. Nothing here mocks anything: each helper runs real checks.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from pydantic import ValidationError

from probe.core.check import CheckContext, Outcome
from probe.core.result import Result, Status
from probe.core.scheduler import CheckRun, run_check
from probe.errors import ProbeError
from probe.probers.base import Prober, SharedResources
from tests.support.proxy import TCPProxy
from tests.support.services import require_service

__all__ = [
    "HTTPService",
    "Kind",
    "ServerTLS",
    "assert_a_connection_per_check",
    "assert_authentication_failure",
    "assert_config_error",
    "assert_credentials_in_the_dsn",
    "assert_no_descriptor_leak",
    "assert_no_leaks_mixing",
    "assert_no_secret",
    "assert_outage_and_recovery",
    "assert_password_hidden",
    "assert_silent_port_times_out",
    "cancelled",
    "config_error_messages",
    "fail_name_resolution",
    "failure",
    "http_service",
    "proxy_to",
    "server_tls_files",
    "settle",
    "timed_run",
    "version_of",
    "web_app",
]

Make = Callable[..., Prober[Any]]
OpenFds = Callable[[], int]


# --- making probers and running checks --------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """Makes probers of one kind: `make(resources, *positional, **keys)`, with `defaults`
    (name, driver, timeout) for the keys a test leaves out."""

    prober: type[Prober[Any]]
    spec: type[Any]
    defaults: dict[str, object]
    positional: tuple[str, ...] = field(default=())

    def make(self, resources: SharedResources, *args: object, **keys: object) -> Any:
        keys.update(zip(self.positional, args, strict=True))
        for key, value in self.defaults.items():
            keys.setdefault(key, value)
        return self.prober(self.spec(**keys), resources)

    async def check(self, resources: SharedResources, *args: object, **keys: object) -> Outcome:
        prober: Prober[Any] = self.make(resources, *args, **keys)
        return await prober.check(CheckContext())

    async def failure(
        self, resources: SharedResources, *args: object, **keys: object
    ) -> ProbeError:
        return await failure(self.make(resources, *args, **keys))


async def failure(prober: Prober[Any]) -> ProbeError:
    """The ProbeError one check of `prober` raises (the test fails if it raises none)."""
    with pytest.raises(ProbeError) as caught:
        await prober.check(CheckContext())
    return caught.value


async def cancelled(
    prober: Prober[Any], after: float, ctx: CheckContext | None = None
) -> CheckContext:
    """A check of `prober` cut off by a timeout of `after` seconds (it must not end first),
    as the scheduler cuts one off. Returns the check's context (its phase, its details)."""
    ctx = CheckContext() if ctx is None else ctx
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(after):
            await prober.check(ctx)
    return ctx


async def timed_run(prober: Prober[Any], *, within: float) -> CheckRun:
    """run_check(prober), which must end within `within` seconds."""
    started = time.monotonic()
    run = await run_check(prober)
    assert time.monotonic() - started < within
    return run


@dataclass(frozen=True)
class HTTPService:
    """A shared server the probers reach over HTTP (etcd's gateway, InfluxDB)."""

    url: str

    @property
    def address(self) -> str:
        """host:port (and any path prefix) of the URL, as a spec's `host` takes it."""
        return self.url.split("://", 1)[1].rstrip("/")


def http_service(name: str) -> HTTPService:
    """The shared service `name` (skips, or fails in CI, when it does not answer)."""
    return HTTPService(require_service(name))


def version_of(outcome: Outcome, major: str) -> str:
    """The version an ok outcome reports in its details, which starts with `major`."""
    assert outcome.ok, outcome.message
    version = outcome.details["version"]
    assert version.startswith(major)
    return str(version)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def web_app(routes: Mapping[str, Handler]) -> web.Application:
    """An aiohttp application from {"METHOD /path": handler} ("*" for every method), for
    the `web_server` fixture to serve."""
    app = web.Application()
    for route, handler in routes.items():
        method, path = route.split(" ", 1)
        app.router.add_route(method, path, handler)
    return app


def config_error_messages(spec_type: type[Any], **keys: object) -> str:
    """What the config loader shows for an invalid spec: its errors' messages, never the input
    (pydantic's own str() repeats the input, and a DSN may hold a password)."""
    with pytest.raises(ValidationError) as caught:
        spec_type(**keys)
    return " ".join(error["msg"] for error in caught.value.errors())


def fail_name_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every name lookup on the running loop fail as an unknown name would, so that
    nothing is asked of a DNS server (even for `.invalid`)."""

    async def no_such_name(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_name)


def assert_config_error(
    spec_type: type[Any], keys: dict[str, object], needle: str, **fixed: object
) -> None:
    """The spec `fixed` + `keys` is refused with `needle` in what the loader shows, which
    never repeats the password of a DSN ("pw" in the tests' tables)."""
    messages = config_error_messages(spec_type, **fixed, **keys)
    assert needle in messages
    assert "pw" not in messages
    assert "pw" not in messages.replace("password", "")


# --- secrets ----------------------------------------------------------------------------------


def assert_no_secret(
    what: Result | Outcome | ProbeError, prober: Prober[Any], *secrets: str
) -> None:
    """None of `secrets` in the message or details of a result, outcome or error, nor in the
    prober's endpoint."""
    texts = [str(what.message), repr(what.details), prober.endpoint]
    for secret in secrets:
        for text in texts:
            assert secret not in text


async def assert_authentication_failure(prober: Prober[Any], user: str, *secrets: str) -> None:
    """A check raises 'authentication failed for user "<user>"', and the scheduler records the
    same as DOWN; neither, nor the endpoint, shows any of `secrets`."""
    expected = f'authentication failed for user "{user}"'
    error = await failure(prober)
    assert error.message == expected
    assert_no_secret(error, prober, *secrets)
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == expected
    assert_no_secret(result, prober, *secrets)


async def assert_credentials_in_the_dsn(
    make: Make, address: str, user: str, password: str, wrong: str
) -> None:
    """With the right password in an http:// DSN the check is ok and the endpoint shows no
    credentials; with a wrong one, an authentication failure that shows neither password."""
    good = make(dsn=f"http://{user}:{password}@{address}")
    assert (await good.check(CheckContext())).ok
    assert good.endpoint == f"http://{address}"
    bad = make(dsn=f"http://{user}:{wrong}@{address}")
    await assert_authentication_failure(bad, user, wrong, password)


async def assert_password_hidden(prober: Prober[Any], password: str) -> None:
    """A prober whose password is wrong: neither its spec's repr nor its endpoint, nor the
    error a check raises or the result the scheduler records (DOWN), shows the password."""
    assert password not in repr(prober.spec)
    error = await failure(prober)
    assert_no_secret(error, prober, password)
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert_no_secret(result, prober, password)


# --- outages and silent ports (through a TCPProxy) --------------------------------------------


def proxy_to(upstream: str) -> TCPProxy:
    """A TCPProxy (not started: use `async with`) to `host:port`."""
    host, port = upstream.rsplit(":", 1)
    return TCPProxy(host, int(port))


async def assert_outage_and_recovery(
    upstream: str, make: Make, down_messages: Collection[str], *, timeout: str = "2s"
) -> None:
    """Through a proxy: UP, DOWN with one of `down_messages` once the proxy cuts every
    connection, UP again once it forwards again. `make(host=..., timeout=...)`."""
    async with proxy_to(upstream) as proxy:
        prober = make(host=proxy.address, timeout=timeout)
        up = (await run_check(prober)).result
        assert up.status is Status.UP, up.message
        proxy.cut()
        down = (await run_check(prober)).result
        assert down.status is Status.DOWN
        assert down.message in down_messages
        proxy.restore()
        up = (await run_check(prober)).result
        assert up.status is Status.UP, up.message


async def assert_silent_port_times_out(
    upstream: str,
    make: Make,
    phase: str,
    *,
    timeout: str = "1s",
    within: float = 2.0,
    open_fds: OpenFds | None = None,
) -> Result:
    """Through a proxy that accepts and never speaks: the check is DOWN with "timeout after
    <timeout> during <phase>" within `within` seconds, and leaves no straggler; with
    `open_fds`, no descriptor stays open once the proxy is gone. Returns the result."""
    async with proxy_to(upstream) as proxy:
        proxy.stall()
        prober = make(host=proxy.address, timeout=timeout)
        before = open_fds() if open_fds is not None else 0
        run = await timed_run(prober, within=within)
        assert run.straggler is None
        assert run.result.status is Status.DOWN
        assert run.result.message == f"timeout after {timeout} during {phase}"
    if open_fds is not None:
        await asyncio.sleep(0.05)
        assert open_fds() <= before
    return run.result


async def assert_a_connection_per_check(upstream: str, make: Make, checks: int = 3) -> None:
    """`checks` healthy checks through a proxy open `checks` connections: none is kept."""
    async with proxy_to(upstream) as proxy:
        prober = make(host=proxy.address)
        for _ in range(checks):
            assert (await prober.check(CheckContext())).ok
        assert proxy.connections == checks


# --- descriptors ------------------------------------------------------------------------------


async def settle(
    open_fds: OpenFds, limit: int, *, rounds: int = 100, collect: bool = False
) -> None:
    """Wait (bounded) until at most `limit` descriptors are open: a transport closes its
    socket on the loop iteration after it is aborted, and servers in this process close their
    side a moment after the prober closes its own. With `collect`, garbage is collected on
    every round."""
    count = open_fds()
    for _ in range(rounds):
        if collect:
            gc.collect()
        count = open_fds()
        if count <= limit:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} descriptors open, expected at most {limit}")


async def assert_no_descriptor_leak(
    prober: Prober[Any],
    open_fds: OpenFds,
    *,
    status: Status = Status.UP,
    message: str | None = None,
    rounds: int = 200,
    slack: int = 2,
    pause: float = 0.0,
) -> None:
    """`rounds` checks of `prober`, each ending `status` (and `message`), leave at most
    `slack` more descriptors open than after the first (which builds the shared clients);
    counted `pause` seconds after the last."""

    async def one() -> None:
        result = (await run_check(prober)).result
        assert result.status is status, result.message
        if message is not None:
            assert result.message == message

    await one()
    before = open_fds()
    for _ in range(rounds):
        await one()
    if pause:
        await asyncio.sleep(pause)
    assert open_fds() <= before + slack


async def assert_no_leaks_mixing(
    open_fds: OpenFds,
    good: Prober[Any],
    failing: Sequence[Prober[Any] | Callable[[], Awaitable[object]]],
    *,
    every: int,
    rounds: int = 200,
    slack: int = 2,
) -> None:
    """`rounds` checks: in every `every`, one of each of `failing` (a prober whose check must
    raise a ProbeError, or a call that asserts its own failure), the rest healthy checks of
    `good`. Afterwards at most `slack` more descriptors are open than after the first healthy
    check."""
    assert (await good.check(CheckContext())).ok  # builds the shared clients first
    before = open_fds()
    for i in range(rounds):
        if i % every < len(failing):
            bad = failing[i % every]
            await (failure(bad) if isinstance(bad, Prober) else bad())
        else:
            assert (await good.check(CheckContext())).ok
    gc.collect()
    await settle(open_fds, before + slack)


# --- TLS material -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerTLS:
    cert: Path
    key: Path
    ca_file: Path  # the CA that signed `cert`
    other_ca_file: Path  # a CA that did not


def server_tls_files(directory: Path, *hosts: str) -> ServerTLS:
    """A certificate for `hosts` from a CA of our own, and another CA's certificate."""
    ca = trustme.CA()
    leaf = ca.issue_cert(*hosts)
    files = ServerTLS(
        directory / "cert.pem", directory / "key.pem", directory / "ca.pem", directory / "other.pem"
    )
    leaf.cert_chain_pems[0].write_to_path(str(files.cert))
    leaf.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca_file))
    trustme.CA().cert_pem.write_to_path(str(files.other_ca_file))
    return files
