"""A private dnsmasq answering a small zone of the tests' own, on a free 127.0.0.1 port.

Started with `--no-resolv --no-hosts` and no `--server`: it answers only from the records
given on its command line and never forwards a query anywhere (a name outside its zone is
REFUSED). `--local=/probe.test/` makes an unknown name of the zone NXDOMAIN. A missing binary
skips the test, or fails it when PROBE_TEST_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from tests.support.daemons import _Daemon, free_port, require_binary

__all__ = ["ZONE", "PrivateDnsmasq"]

# The zone (dnsmasq options) every test reads: two A records and one AAAA on www, a CNAME to
# it, TXT, MX, SRV, the PTR dnsmasq derives from the host record, and a TXT too big for UDP.
ZONE = (
    "--local=/probe.test/",
    "--host-record=www.probe.test,10.0.0.1,fd00::1",
    "--host-record=www.probe.test,10.0.0.2",
    "--cname=alias.probe.test,www.probe.test",
    "--txt-record=probe.test,v=spf1 -all",
    "--mx-host=probe.test,mail.probe.test,10",
    "--srv-host=_sip._tcp.probe.test,sip.probe.test,5060,10,5",
    # Three 200-character strings: more than a 512-byte UDP answer holds (truncated).
    "--txt-record=big.probe.test," + ",".join(c * 200 for c in "abc"),
)


class PrivateDnsmasq(_Daemon):
    name = "dnsmasq"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _pick_ports(self) -> None:
        self.port = free_port()

    def _ports(self) -> list[int]:
        return [self.port]  # it answers DNS over TCP on the same port: polled so

    def _ready(self) -> bool:
        return True

    def _command(self) -> list[str]:
        dnsmasq = require_binary("dnsmasq", "dnsmasq-base")
        return [
            dnsmasq,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--pid-file=",
            # It would drop to the user "nobody" as root; the test's own user is enough.
            f"--user={getpass.getuser()}",
            "--log-facility=-",
            *ZONE,
        ]
