"""Shared fixtures: real local servers on loopback, TLS material, descriptor counting.

Every server listens on 127.0.0.1 (or ::1) on a port the OS picks, and is stopped when the
test ends. Nothing here sends traffic anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import socket
import ssl
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from tests.support.daemons import require_binary
from tests.support.running_app import targets as targets  # the fixture: HTTP targets + a webhook
from tests.support.schema import watch_loads
from tests.support.services import require_service

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# -- markers (pyproject.toml registers them; `make test-fast` leaves these tests out) -------
#
# `service` is given here, from what a test uses: a test is a service test when its function,
# its fixtures (every one it gets, directly or through other fixtures) or its parameters reach
# require_service (a shared PostgreSQL, MariaDB, Redis, Mosquitto, etcd or InfluxDB) or
# require_binary (a private daemon: every Private* server in tests/support starts through it).
# "Reach" follows the names their code uses through the tests' own functions, classes and
# module-level values (tests/support included), so a new test that gets a service the usual
# way is marked without anyone remembering to. It errs towards marking: a test given an
# object that could reach a service counts. `browser` (tests/web/test_chromium.py)
# and `slow` are written on the modules and tests themselves, except in the modules that do
# not import pytest, listed in SLOW_HERE (a name there that no longer exists is an error).
SERVICE_ENTRY_POINTS = (require_service, require_binary)

# `slow`: a third of a second or more in `pytest --durations` (timeouts waited out, `probe`
# subprocesses, a store filled with history). The threshold keeps `make test-fast` under a
# minute on a loaded two-CPU machine.
SLOW_HERE: dict[str, frozenset[str] | None] = {  # module -> test names (None: all of them)
    "tests/test_app.py": None,
    "tests/notify/test_outbox.py": frozenset(
        {
            "test_api_down_longer_than_the_quick_retries_then_up_delivers_once",
            "test_max_age_drops_with_a_log_line_and_a_metric",
            "test_a_pending_row_older_than_max_age_is_dropped_at_start",
            "test_stop_leaves_sends_past_the_grace_pending_and_a_restart_delivers_them",
        }
    ),
}


def _in_tests(obj: object) -> bool:
    return str(getattr(obj, "__module__", None) or "").startswith("tests.")


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def _reaches(roots: Iterable[object], targets: tuple[object, ...]) -> bool:
    """Whether any of `roots` is, or uses, one of `targets` (see the comment above)."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None:
            continue
        seen.add(id(obj))
        if any(obj is target for target in targets):
            return True
        if isinstance(obj, staticmethod | classmethod | types.MethodType):
            stack.append(obj.__func__)
        elif isinstance(obj, property):
            stack.extend((obj.fget, obj.fset, obj.fdel))
        elif isinstance(obj, functools.partial):
            stack.extend((obj.func, *obj.args, *obj.keywords.values()))
        elif inspect.isfunction(obj):
            if not _in_tests(obj):
                continue
            scope = obj.__globals__
            stack.extend(scope[name] for name in _code_names(obj.__code__) if name in scope)
            stack.extend(cell.cell_contents for cell in obj.__closure__ or () if _has(cell))
            stack.extend(obj.__defaults__ or ())
            wrapped = getattr(obj, "__wrapped__", None)
            if wrapped is not None:
                stack.append(wrapped)
        elif inspect.isclass(obj):
            if _in_tests(obj):
                stack.extend(base for base in obj.__mro__ if _in_tests(base))
                stack.extend(vars(obj).values())
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif _in_tests(type(obj)):
            stack.append(type(obj))
    return False


def _has(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True


def _what_it_uses(item: pytest.Item) -> list[object]:
    """The test's function, the functions of all its fixtures, and its parameters."""
    roots: list[object] = [getattr(item, "obj", None)]
    info = getattr(item, "_fixtureinfo", None)
    if info is not None:
        for definitions in info.name2fixturedefs.values():
            roots.extend(definition.func for definition in definitions)
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        roots.extend(callspec.params.values())
    return roots


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow_seen: set[tuple[str, str]] = set()
    for item in items:
        if item.get_closest_marker("service") is None and _reaches(
            _what_it_uses(item), SERVICE_ENTRY_POINTS
        ):
            item.add_marker(pytest.mark.service)
        module = item.nodeid.split("::", 1)[0]
        if module in SLOW_HERE:
            name = getattr(item, "originalname", item.name)
            names = SLOW_HERE[module]
            if names is None or name in names:
                item.add_marker(pytest.mark.slow)
                slow_seen.add((module, name))
    collected = {item.nodeid.split("::", 1)[0] for item in items}
    for module, names in SLOW_HERE.items():
        gone = {name for name in names or () if (module, name) not in slow_seen}
        if module in collected and gone:
            raise pytest.UsageError(f"tests/conftest.py SLOW_HERE: no {sorted(gone)} in {module}")


@pytest.fixture(autouse=True)
def _configs_match_the_schema() -> Iterator[None]:
    """Every config a test loads with the real probers must also pass `probe schema`."""
    with watch_loads() as refused:
        yield
    assert not refused, "loaded, but refused by `probe schema`:\n" + "\n".join(refused)


class RawServer:
    """A TCP server running `handler` per connection, for peers that misbehave on purpose.

    `connections` counts accepted connections; at stop, handlers still running are cancelled
    and their connections closed.
    """

    def __init__(self, handler: StreamHandler) -> None:
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.host = ""
        self.port = 0
        self.connections = 0

    @property
    def address(self) -> str:
        """`host:port`, with brackets for IPv6."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def start(self, host: str, ssl_context: ssl.SSLContext | None) -> None:
        self._server = await asyncio.start_server(self._serve, host, 0, ssl=ssl_context)
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: what these servers exist to provoke
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    """`await raw_server(handler, host="127.0.0.1", ssl_context=None) -> RawServer`."""
    servers: list[RawServer] = []

    async def start(
        handler: StreamHandler,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> RawServer:
        server = RawServer(handler)
        await server.start(host, ssl_context)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def web_server() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """`await web_server(app, host="127.0.0.1", ssl_context=None) -> base URL` (aiohttp.web)."""
    runners: list[web.AppRunner] = []

    async def start(
        app: web.Application,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> str:
        # A short shutdown timeout: a handler still streaming must not hold up the teardown.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: bound but not listening, so it stays refused and
    no other process can take it during the test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A private certificate authority for test servers."""
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_ca_file(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


def server_ssl_context(
    leaf: trustme.LeafCert, *, client_ca: trustme.CA | None = None
) -> ssl.SSLContext:
    """A server-side context presenting `leaf`; with `client_ca`, client certificates signed
    by it are required (mutual TLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)
    return context


@pytest.fixture(name="server_ssl_context")
def server_ssl_context_fixture() -> Callable[..., ssl.SSLContext]:
    return server_ssl_context


@pytest.fixture
def open_fds() -> Callable[[], int]:
    """The number of file descriptors this process has open (Linux); skips elsewhere."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    return lambda: len(os.listdir("/proc/self/fd"))


def has_ipv6_loopback() -> bool:
    """Whether ::1 can be bound here (containers often lack IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def ipv6_loopback() -> str:
    """`::1`, or a skip when this machine has no IPv6 loopback."""
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")
    return "::1"
