"""probe.probers._net.resolve: lookups shared while they run, and /etc/hosts names answered
without a resolver thread. The resolver itself is the system's: here getaddrinfo is replaced
by a slow counting one, since what is tested is our sharing, not the system's lookup (the
fault suite runs the real resolver against a silent DNS server in a namespace)."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from probe.errors import ProbeError
from probe.probers import _net


class SlowResolver:
    """A blocking getaddrinfo that takes `delay` and counts its calls."""

    def __init__(self, delay: float, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        with self.lock:
            self.calls.append(host)
        time.sleep(self.delay)
        if self.fail:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.9", port))]


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> SlowResolver:
    resolver = SlowResolver(0.3)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


async def test_concurrent_lookups_of_one_name_share_one_call(slow: SlowResolver) -> None:
    answers = await asyncio.gather(*(_net.resolve("svc.test", 80) for _ in range(50)))
    assert slow.calls == ["svc.test"]
    assert all(a == [(socket.AF_INET, ("127.0.0.9", 80))] for a in answers)
    await _net.resolve("svc.test", 80)  # after it ended, a new lookup (nothing is cached)
    assert slow.calls == ["svc.test", "svc.test"]


async def test_a_cancelled_caller_does_not_cancel_the_others(slow: SlowResolver) -> None:
    first = asyncio.create_task(_net.resolve("svc.test", 443))
    second = asyncio.create_task(_net.resolve("svc.test", 443))
    await asyncio.sleep(0.05)
    first.cancel()
    assert await second == [(socket.AF_INET, ("127.0.0.9", 443))]
    assert first.cancelled()
    assert slow.calls == ["svc.test"]


async def test_a_failure_reaches_every_caller_and_is_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = SlowResolver(0.1, fail=True)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    results = await asyncio.gather(
        *(_net.resolve("down.test", 80) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ProbeError) for r in results)
    assert str(results[0]) == "name resolution failed for host down.test"
    assert resolver.calls == ["down.test"]
    assert not _net._LOOKUPS


async def test_each_caller_has_its_own_timeout_and_a_lookup_nobody_awaits_fails_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every check gives up before the lookup ends (at its own timeout); the lookup goes on and
    # fails with nobody waiting: its error is retrieved, so asyncio reports nothing lost.
    resolver = SlowResolver(0.3, fail=True)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    gave_up: list[float] = []

    async def give_up_after(timeout: float) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(timeout):
                await _net.resolve("gone.test", 80)
        gave_up.append(timeout)

    try:
        await asyncio.gather(give_up_after(0.1), give_up_after(0.05))
        assert gave_up == [0.05, 0.1]
        assert resolver.calls == ["gone.test"]
        async with asyncio.timeout(5):
            while _net._LOOKUPS:  # the shared lookup ends on its own
                await asyncio.sleep(0.02)
        await asyncio.sleep(0)
        gc.collect()
        assert reported == []
    finally:
        loop.set_exception_handler(None)


async def test_hosts_file_names_need_no_resolver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: SlowResolver
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "127.0.0.1 localhost db.local  # comment\n::1 localhost ip6-localhost\n"
        "fe80::1%eth0 zoned\nnot-an-ip nothing\n"
    )
    monkeypatch.setattr(_net, "_HOSTS", _net._HostsFile(str(hosts)))
    assert await _net.resolve("LOCALHOST", 5) == [
        (socket.AF_INET, ("127.0.0.1", 5)),
        (socket.AF_INET6, ("::1", 5, 0, 0)),
    ]
    assert await _net.resolve("db.local.", 6) == [(socket.AF_INET, ("127.0.0.1", 6))]
    assert slow.calls == []
    await _net.resolve("zoned", 7)  # left to the resolver
    assert slow.calls == ["zoned"]
    # A changed file is read again (its mtime looked at once a second at most).
    hosts.write_text("127.0.0.2 db.local\n")
    future = time.time() + 5
    os.utime(hosts, (future, future))
    _net._HOSTS._looked = 0.0
    assert await _net.resolve("db.local", 6) == [(socket.AF_INET, ("127.0.0.2", 6))]


async def test_a_hosts_file_past_the_limit_is_read_up_to_the_last_whole_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: SlowResolver
) -> None:
    hosts = tmp_path / "hosts"
    first = "127.0.0.1 first.local\n"
    hosts.write_text(first + "10.0.0.5 db-replica.local\n")
    monkeypatch.setattr(_net, "_HOSTS_FILE_LIMIT", len(first) + 11)  # "10.0.0.5 db|-replica"
    monkeypatch.setattr(_net, "_HOSTS", _net._HostsFile(str(hosts)))
    assert await _net.resolve("first.local", 1) == [(socket.AF_INET, ("127.0.0.1", 1))]
    assert _net._HOSTS.addresses("db", 1) == []  # not the cut line read as a shorter name
    await _net.resolve("db-replica.local", 1)  # past the limit: the resolver's
    assert slow.calls == ["db-replica.local"]
