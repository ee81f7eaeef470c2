"""probe.probers._net.resolve: lookups shared while they run, and /etc/hosts names answered
without a resolver thread. The resolver itself is the system's: here getaddrinfo is replaced
by a slow counting one, since what is tested is our sharing, not the system's lookup (the
fault suite runs the real resolver against a silent DNS server in a namespace)."""

from __future__ import annotations

import asyncio
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
