"""Ping probes (EaseProbe's `ping:` section): ICMP echo requests to `host`, up while no more
than `lost` of them go unanswered.

`count` echo requests (EaseProbe's default 3) are sent `packet_interval` apart (1s, as ping(8)
and EaseProbe's pinger); each waits for its reply before the next is sent. The waits share
what the check's `timeout` leaves after the pauses (four fifths of it, so the check reports
its losses before the scheduler's timeout strikes): a reply later than that counts as lost.

`privileged: false` (EaseProbe's default) uses the kernel's datagram ICMP sockets, which Linux
allows only to the groups in `net.ipv4.ping_group_range`; `privileged: true` uses a raw socket
(root or CAP_NET_RAW). A socket we may not open is a down check saying which setting to
change. IPv4 and IPv6 alike: the address family is the host's (resolved with the one bounded
resolver, `_net.resolve`; the first address the system prefers is pinged).

icmplib builds, sends and parses the packets (`ICMPv4Socket`/`ICMPv6Socket` wrapped in its
`AsyncSocket`). We drive the exchange ourselves rather than through `async_ping`, which
swallows why a packet failed (a send refused by the kernel, an ICMP "destination unreachable"
from a router): those are what a down check should say.

EaseProbe's semantics: down when the loss, in percent, is more than `lost` x 100 (`lost: 0`, the
default, tolerates no loss; `lost: 0.5` tolerates half). Messages:
`3/3 replies from 127.0.0.1, rtt min/avg/max 0.041/0.052/0.060 ms`,
`1 of 3 packets lost (33%), more than lost: 0 allows`, `no reply from 192.0.2.1 (3 sent)`,
`unprivileged ping is not allowed here (net.ipv4.ping_group_range); use privileged: true`.

Conditions read `[PACKET_LOSS]` (percent), `[PACKETS_SENT]`, `[PACKETS_RECEIVED]` and, when a
reply came, `[RTT_MIN]`, `[RTT_AVG]`, `[RTT_MAX]` (milliseconds).
"""

from __future__ import annotations

import asyncio
import socket
from typing import ClassVar

from icmplib import (
    AsyncSocket,
    ICMPError,
    ICMPLibError,
    ICMPRequest,
    ICMPv4Socket,
    ICMPv6Socket,
    SocketPermissionError,
    TimeoutExceeded,
)
from icmplib.utils import unique_identifier
from pydantic import Field, field_validator, model_validator

from probe.config.models import Duration, ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._net import resolve
from probe.probers.base import Prober

__all__ = ["PingProber", "PingSpec"]

# The share of the timeout the replies may wait for, all together (the rest is margin for
# resolution and the loop, so the check says how many were lost instead of timing out).
_WAIT_SHARE = 0.8
# The shortest pause between requests: below it a "ping" becomes a flood.
_MIN_PACKET_INTERVAL = 0.01


class PingSpec(ProbeSpec):
    """A `ping:` entry: `host` (an IP address or a name), `count`, `lost`, `privileged`, and
    our `packet_interval` (the pause between requests)."""

    kind: ClassVar[str] = "ping"
    condition_placeholders: ClassVar[frozenset[str]] = frozenset(
        {"PACKET_LOSS", "PACKETS_SENT", "PACKETS_RECEIVED", "RTT_MIN", "RTT_AVG", "RTT_MAX"}
    )

    host: str
    count: int = Field(default=3, ge=1, le=100)
    lost: float = Field(default=0.0, ge=0.0, le=1.0)
    privileged: bool = False
    packet_interval: Duration = 1.0

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        host = value.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]  # [::1], as in URLs
        if not host or any(c.isspace() or c in "/@" for c in host):
            raise ValueError(f'"{value}" is not a host name or an IP address')
        if ":" in host and not _is_ipv6(host):
            raise ValueError(f'"{value}": ping takes a host without a port')
        return host

    @model_validator(mode="after")
    def _fits_the_timeout(self) -> PingSpec:
        if self.packet_interval < _MIN_PACKET_INTERVAL:
            raise ValueError(f"packet_interval must be at least {_MIN_PACKET_INTERVAL * 1000:g}ms")
        pauses = (self.count - 1) * self.packet_interval
        if pauses >= self.timeout * _WAIT_SHARE:
            raise ValueError(
                f"count {self.count} at packet_interval {self.packet_interval:g}s takes "
                f"{pauses:g}s, leaving no time for replies within the timeout "
                f"({self.timeout:g}s): lower count or packet_interval, or raise timeout"
            )
        return self

    def endpoint(self) -> str:
        return self.host


def _is_ipv6(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    except OSError:
        return False
    return True


class PingProber(Prober[PingSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = PingSpec

    async def check(self, ctx: CheckContext) -> Outcome:
        spec = self.spec
        loop = asyncio.get_running_loop()
        started = loop.time()
        ctx.phase = "resolve"
        family, sockaddr = (await resolve(spec.host, 0))[0]
        address = str(sockaddr[0])
        ctx.facts["IP"] = address
        ctx.details["address"] = address
        ctx.details["mode"] = "raw" if spec.privileged else "datagram"

        ctx.phase = "ping"
        budget = spec.timeout * _WAIT_SHARE - (loop.time() - started)
        wait = (budget - (spec.count - 1) * spec.packet_interval) / spec.count
        socket_type = ICMPv6Socket if family == socket.AF_INET6 else ICMPv4Socket
        try:
            icmp = socket_type(None, spec.privileged)
        except ICMPLibError as exc:
            raise ProbeError(self._socket_problem(exc), **ctx.details) from None
        rtts: list[float] = []
        sent = 0
        problem = ""  # the last reason a packet failed that is not silence
        with AsyncSocket(icmp) as sock:
            ident = unique_identifier()
            for sequence in range(spec.count):
                if sequence:
                    await asyncio.sleep(spec.packet_interval)
                request = ICMPRequest(destination=address, id=ident, sequence=sequence)
                try:
                    sock.send(request)
                except ICMPLibError as exc:
                    problem = _lowered(str(exc))
                    continue
                sent += 1
                try:
                    reply = await sock.receive(request, max(wait, 0.001))
                    reply.raise_for_status()
                except TimeoutExceeded:
                    continue
                except ICMPError as exc:  # unreachable, time exceeded: answered, not by host
                    problem = _lowered(str(exc))
                    continue
                except ICMPLibError as exc:
                    problem = _lowered(str(exc))
                    continue
                rtts.append((reply.time - request.time) * 1000)
        return self._judge(ctx, address, sent, rtts, problem)

    def _judge(
        self, ctx: CheckContext, address: str, sent: int, rtts: list[float], problem: str
    ) -> Outcome:
        count = self.spec.count
        received = len(rtts)
        # A request the kernel refused to send is lost as much as one never answered.
        loss = (count - received) * 100.0 / count
        facts = ctx.facts
        facts["PACKETS_SENT"] = sent
        facts["PACKETS_RECEIVED"] = received
        facts["PACKET_LOSS"] = loss
        details = dict(ctx.details)
        details.update(sent=sent, received=received, loss=round(loss, 1))
        rtt = ""
        if rtts:
            low, mean, high = min(rtts), sum(rtts) / received, max(rtts)
            facts.update(RTT_MIN=low, RTT_AVG=mean, RTT_MAX=high)
            details.update(rtt_min_ms=round(low, 3), rtt_avg_ms=round(mean, 3))
            details["rtt_max_ms"] = round(high, 3)
            rtt = f"rtt min/avg/max {low:.3f}/{mean:.3f}/{high:.3f} ms"
        if not rtts:
            if sent == 0:
                raise ProbeError(f"cannot send to {address}: {problem}", **details)
            why = f": {problem}" if problem else ""
            raise ProbeError(f"no reply from {address}{why} ({sent} sent)", **details)
        if loss > self.spec.lost * 100:
            lost = count - received
            why = f" ({problem})" if problem else ""
            message = (
                f"{lost} of {count} packets lost ({loss:.0f}%){why}, "
                f"more than lost: {self.spec.lost:g} allows; {rtt}"
            )
            return Outcome(ok=False, message=message, details=details)
        message = f"{received}/{count} replies from {address}, {rtt}"
        if received < count:
            message += f" ({loss:.0f}% lost, within lost: {self.spec.lost:g})"
        return Outcome(ok=True, message=message, details=details)

    def _socket_problem(self, exc: ICMPLibError) -> str:
        """Why the ICMP socket could not be opened, saying what to change."""
        if isinstance(exc, SocketPermissionError):
            if self.spec.privileged:
                return "privileged ping needs root or CAP_NET_RAW; use privileged: false"
            return (
                "unprivileged ping is not allowed here (net.ipv4.ping_group_range excludes "
                "this group); use privileged: true or widen the range"
            )
        return f"cannot open an ICMP socket: {_lowered(str(exc))}"


def _lowered(text: str) -> str:
    """icmplib's sentence-case messages, as the rest of ours read ("destination host
    unreachable")."""
    return text[:1].lower() + text[1:].rstrip(".") if text else "unknown error"
