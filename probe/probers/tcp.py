"""TCP probes: up when a TCP connection to `host` can be opened.

The connection is closed as soon as it is established; nothing is sent. Each address the name
resolves to is tried in turn, as a client would, and the first that accepts makes the probe up.
"""

from __future__ import annotations

import asyncio
import socket
from typing import ClassVar

from pydantic import field_validator

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._net import (
    Address,
    describe_os_error,
    format_address,
    redact_url,
    resolve,
    set_nolinger,
    split_host_port,
)
from probe.probers.base import Prober, SharedResources

__all__ = ["TCPProber", "TCPSpec"]


class TCPSpec(ProbeSpec):
    """A `tcp:` entry: `host` is `host:port`, `[v6addr]:port` or a URL with a port."""

    kind: ClassVar[str] = "tcp"
    # EaseProbe can reach TCP services through a SOCKS5 proxy; we do not (yet).
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset({"proxy"})

    host: str
    # Close with a reset (SO_LINGER 0), leaving no TIME_WAIT behind (EaseProbe's key).
    nolinger: bool = False

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        split_host_port(value)
        return value.strip()

    def endpoint(self) -> str:
        return redact_url(self.host) if "://" in self.host else self.host


class TCPProber(Prober[TCPSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = TCPSpec

    def __init__(self, spec: TCPSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._host, self._port = split_host_port(spec.host)

    async def check(self, ctx: CheckContext) -> Outcome:
        ctx.phase = "resolve"
        addresses = await resolve(self._host, self._port)
        ctx.phase = "connect"
        failure: OSError | None = None
        for family, sockaddr in addresses:
            peer = format_address(sockaddr)
            ctx.details["peer"] = peer
            try:
                await _connect((family, sockaddr), nolinger=self.spec.nolinger)
            except OSError as exc:
                failure = exc
                continue
            return Outcome(ok=True, message=f"connected to {peer}", details={"peer": peer})
        assert failure is not None  # resolve() never returns an empty list
        raise ProbeError(_describe(failure), **ctx.details)


async def _connect(address: Address, *, nolinger: bool = False) -> None:
    """Open a TCP connection to `address` and close it at once, on every path."""
    family, sockaddr = address
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if nolinger:
            set_nolinger(sock)
        sock.setblocking(False)
        await loop.sock_connect(sock, sockaddr)
    finally:
        # Runs on cancellation too (the scheduler's hard timeout), so no descriptor leaks.
        sock.close()


def _describe(exc: OSError) -> str:
    """The one place TCP connection errors become messages."""
    return describe_os_error(exc) or f"connect failed: {exc}"
