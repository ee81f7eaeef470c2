"""TCP probes: up when a TCP connection to `host` can be opened.

The connection is closed as soon as it is established; nothing is sent. The addresses the name
resolves to are raced as a client would (Happy Eyeballs, `_connect`): the first that accepts
makes the probe up.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import field_validator

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._connect import NOLINGER, connect_tcp
from probe.probers._net import describe_os_error, redact_url, split_host_port
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
        options = (NOLINGER,) if self.spec.nolinger else ()
        try:
            sock = await connect_tcp(self._host, self._port, ctx, options=options)
        except OSError as exc:
            raise ProbeError(_describe(exc), **ctx.details) from None
        sock.close()  # connected is all a TCP probe asks
        peer = ctx.details["peer"]
        return Outcome(ok=True, message=f"connected to {peer}", details={"peer": peer})


def _describe(exc: OSError) -> str:
    """The one place TCP connection errors become messages."""
    return describe_os_error(exc) or f"connect failed: {exc}"
