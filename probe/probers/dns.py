"""DNS probes: one query for `query` (a name) of record `type` at `server`, judged on the
response code (`rcode`, default NOERROR) and, optionally, on the answers.

EaseProbe has no DNS probe; the keys follow what Gatus and blackbox_exporter users expect:

    dns:
      - name: internal name
        query: www.example.com
        type: A                     # A, AAAA, CNAME, MX, TXT, NS, SRV, SOA, PTR
        server: "10.0.0.53:53"      # default: the first nameserver of /etc/resolv.conf
        transport: udp              # or tcp
        rcode: NOERROR
        answers:
          contain: ["10.0.0.1"]     # every one of these is among the answers
          not_contain: ["10.0.0.9"] # none of these is
          equal: ["10.0.0.1"]       # the answers are exactly these (in any order)

One check is one query (with the RD bit unless `recursion: false`); over UDP, a truncated
answer is asked again over TCP, as a resolver does. The answers judged are the records of the
queried type in the answer section (a CNAME followed to A records gives the A records), as
text: an address (A, AAAA), a name without its final dot (CNAME, NS, PTR), `10
mail.example.com` (MX), `10 5 5060 sip.example.com` (SRV: priority weight port target), the
strings joined (TXT), `mname rname serial refresh retry expire minimum` (SOA). Addresses are
compared as addresses (`fd00::1` equals `fd00:0::1`), names without regard to case.
For `type: PTR` the query may be an IP address: the reverse name is asked. A `server` given
by name is asked at the first address the name resolves to.

Conditions read `[DNS_RCODE]` (`NOERROR`, `NXDOMAIN`, ...), `[BODY]` (the answers, one per
line, in the server's order) and `[ANSWER_COUNT]`.

The query is made with dnspython's asyncio API on a socket it opens and closes itself,
cancellation included (the scheduler's timeout); its exceptions become messages in
`_describe()`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, ClassVar, Literal

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.resolver
import dns.reversename
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from probe.config.models import ProbeSpec, StrictModel
from probe.core.check import CheckContext, Outcome
from probe.durations import format_duration
from probe.errors import ProbeError
from probe.probers._net import describe_os_error, format_address, plain_error, resolve
from probe.probers.base import Prober, SharedResources
from probe.text import printable

__all__ = ["RECORD_TYPES", "DNSProber", "DNSSpec"]

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "SOA", "PTR")
RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "SOA", "PTR"]

DEFAULT_PORT = 53
# How many answers a message lists before "...".
_SHOWN_ANSWERS = 5
# `[v6]:port`, or `host:port` (one colon), or a bare host / bare IPv6 address.
_BRACKETED = re.compile(r"\[([^\]]+)\](?::(\d+))?")


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def split_server(text: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port`, `host` or a bare IPv6 address -> (host, port); ValueError
    with a message fit for the config otherwise."""
    text = text.strip()
    port_text: str | None = None
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed is not None:
        host, port_text = bracketed.group(1), bracketed.group(2)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a name, an IPv4 address or a bare IPv6 address (no port)
    if not host or any(c in host for c in " /@\\\t\r\n"):
        raise ValueError(f'"{printable(text, 60)}" is not a DNS server (host or host:port)')
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f'"{printable(text, 60)}" is not an IPv6 address') from None
    port = DEFAULT_PORT
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f'"{printable(text, 60)}": the port must be 1-65535')
        port = int(port_text)
    return host, port


def _name_key(text: str) -> str:
    """A name-holding answer compared without case and without final dots."""
    return " ".join(token.rstrip(".") for token in text.lower().split())


def answer_key(rtype: str, text: str) -> str:
    """What an answer (or an expected one) is compared by, for records of type `rtype`.
    ValueError when an expected A/AAAA answer is no address of that kind."""
    if rtype == "A":
        return str(ipaddress.IPv4Address(text.strip()))
    if rtype == "AAAA":
        return str(ipaddress.IPv6Address(text.strip()))
    if rtype == "TXT":
        return text
    return _name_key(text)


class DNSAnswers(StrictModel):
    """`answers:` expectations, each a list of answer texts (see the module's doc)."""

    contain: list[str] = Field(default_factory=list)
    not_contain: list[str] = Field(default_factory=list)
    equal: list[str] | None = None


class DNSSpec(ProbeSpec):
    """A `dns:` entry (see the module's doc)."""

    kind: ClassVar[str] = "dns"
    condition_placeholders: ClassVar[frozenset[str]] = frozenset(
        {"DNS_RCODE", "BODY", "ANSWER_COUNT"}
    )

    query: str = Field(min_length=1)
    # Declared before `answers`, whose validator reads it.
    type: Annotated[RecordType, BeforeValidator(_upper)] = "A"
    server: str | None = None
    transport: Literal["udp", "tcp"] = "udp"
    rcode: Annotated[str, BeforeValidator(_upper)] = "NOERROR"
    recursion: bool = True
    answers: DNSAnswers | None = None

    @field_validator("query")
    @classmethod
    def _valid_query(cls, value: str) -> str:
        value = value.strip()
        try:
            ipaddress.ip_address(value)
            return value  # an address: a PTR query asks its reverse name (checked below)
        except ValueError:
            pass
        try:
            dns.name.from_text(value)
        except dns.exception.DNSException as exc:
            raise ValueError(f'"{printable(value, 60)}" is not a DNS name: {exc}') from None
        return value

    @field_validator("server")
    @classmethod
    def _valid_server(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        split_server(value)
        return value.strip()

    @field_validator("rcode")
    @classmethod
    def _valid_rcode(cls, value: str) -> str:
        if value not in dns.rcode.Rcode.__members__:
            known = ", ".join(list(dns.rcode.Rcode.__members__)[:11])
            raise ValueError(f'unknown rcode "{printable(value, 30)}" (known: {known}, ...)')
        return value

    @field_validator("answers")
    @classmethod
    def _valid_answers(cls, value: DNSAnswers | None, info: ValidationInfo) -> DNSAnswers | None:
        rtype = info.data.get("type")
        if value is None or rtype is None:
            return value
        for key in ("contain", "not_contain", "equal"):
            for text in getattr(value, key) or ():
                try:
                    answer_key(rtype, text)
                except ValueError:
                    raise ValueError(
                        f'{key}: "{printable(text, 60)}" is not an {rtype} record\'s address'
                    ) from None
        return value

    @model_validator(mode="after")
    def _ptr_for_addresses(self) -> DNSSpec:
        if self.type != "PTR":
            try:
                ipaddress.ip_address(self.query)
            except ValueError:
                return self
            raise ValueError(
                f"query is an IP address: ask its name with type: PTR, not {self.type}"
            )
        return self

    def query_name(self) -> dns.name.Name:
        """The name asked: `query`, or its reverse name for a PTR query of an address."""
        try:
            ipaddress.ip_address(self.query)
        except ValueError:
            return dns.name.from_text(self.query)
        return dns.reversename.from_address(self.query)

    def endpoint(self) -> str:
        where = f" @{self.server}" if self.server is not None else ""
        return f"{self.query} {self.type}{where}"


class DNSProber(Prober[DNSSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = DNSSpec

    def __init__(self, spec: DNSSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._rtype = dns.rdatatype.from_text(spec.type)
        self._qname = spec.query_name()
        self._expected_rcode = dns.rcode.from_text(spec.rcode)
        self._server = split_server(spec.server) if spec.server is not None else None
        answers = spec.answers
        self._contain = _keys(spec.type, answers.contain if answers else ())
        self._not_contain = _keys(spec.type, answers.not_contain if answers else ())
        self._equal = (
            None
            if answers is None or answers.equal is None
            else frozenset(_keys(spec.type, answers.equal))
        )

    def _where(self) -> tuple[str, int]:
        """The server: `server`, else the first nameserver of the system's configuration
        (read once; a machine without one is a failed check, not a config error)."""
        if self._server is None:
            try:
                nameservers = dns.resolver.Resolver(configure=True).nameservers
            except (dns.exception.DNSException, OSError) as exc:
                raise ProbeError(
                    f"no DNS server: set server (the system has none: {exc})"
                ) from None
            plain = [str(ns) for ns in nameservers if _is_ip(str(ns))]
            if not plain:
                raise ProbeError("no DNS server: set server (the system has none)")
            self._server = (plain[0], DEFAULT_PORT)
        return self._server

    async def check(self, ctx: CheckContext) -> Outcome:
        host, port = self._where()
        ctx.phase = "resolve"
        family, sockaddr = (await resolve(host, port))[0]
        address = str(sockaddr[0])
        peer = format_address(sockaddr)
        ctx.details.update(server=peer, transport=self.spec.transport)
        ctx.facts["IP"] = address
        query = dns.message.make_query(self._qname, self._rtype)
        if not self.spec.recursion:
            query.flags &= ~dns.flags.RD
        ctx.phase = "query"
        timeout = self.spec.timeout
        try:
            if self.spec.transport == "tcp":
                response = await dns.asyncquery.tcp(query, address, timeout=timeout, port=port)
            else:
                response, used_tcp = await dns.asyncquery.udp_with_fallback(
                    query, address, timeout=timeout, port=port
                )
                if used_tcp:
                    ctx.details["truncated_over_udp"] = True
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            raise ProbeError(_describe(exc, timeout, ctx.phase), **ctx.details) from None
        return self._judge(response, ctx, peer, family)

    def _judge(
        self, response: dns.message.Message, ctx: CheckContext, peer: str, family: int
    ) -> Outcome:
        rcode = dns.rcode.to_text(response.rcode())
        answers = _answer_texts(response, self._rtype)
        ctx.facts.update(DNS_RCODE=rcode, BODY="\n".join(answers), ANSWER_COUNT=len(answers))
        details = {**ctx.details, "rcode": rcode, "answers": answers}
        if family == socket.AF_INET6:
            details["family"] = "ipv6"
        shown = _show(answers)
        if response.rcode() != self._expected_rcode:
            return Outcome(False, f"rcode {rcode}, expected {self.spec.rcode}", details)
        problem = self._wrong_answers(answers)
        if problem is not None:
            return Outcome(False, problem, details)
        if not answers:
            return Outcome(True, f"{rcode}, no {self.spec.type} answer from {peer}", details)
        count = "1 answer" if len(answers) == 1 else f"{len(answers)} answers"
        return Outcome(True, f"{rcode}, {count} from {peer}: {shown}", details)

    def _wrong_answers(self, answers: Sequence[str]) -> str | None:
        keys = {answer_key(self.spec.type, text) for text in answers}
        got = f"(got {_show(answers)})" if answers else "(got no answer)"
        for key, text in self._contain:
            if key not in keys:
                return f'answers lack "{printable(text, 60)}" {got}'
        for key, text in self._not_contain:
            if key in keys:
                return f'answers include "{printable(text, 60)}" {got}'
        if self._equal is not None and keys != {key for key, _ in self._equal}:
            wanted = _show([text for _, text in sorted(self._equal)]) or "no answer"
            return f"answers differ from {wanted} {got}"
        return None


def _keys(rtype: str, texts: Iterable[str]) -> list[tuple[str, str]]:
    return [(answer_key(rtype, text), text) for text in texts]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _show(answers: Sequence[str]) -> str:
    listed = [printable(text, 60) for text in answers[:_SHOWN_ANSWERS]]
    more = ", ..." if len(answers) > _SHOWN_ANSWERS else ""
    return ", ".join(listed) + more


def _name(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True)


def _rdata_text(rdata: Any) -> str:
    """One answer as text (see the module's doc), typed by record so names lose their dot."""
    rtype = rdata.rdtype
    if rtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(rdata.address)
    if rtype in (dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR):
        return _name(rdata.target)
    if rtype == dns.rdatatype.MX:
        return f"{rdata.preference} {_name(rdata.exchange)}"
    if rtype == dns.rdatatype.SRV:
        return f"{rdata.priority} {rdata.weight} {rdata.port} {_name(rdata.target)}"
    if rtype == dns.rdatatype.TXT:
        return "".join(part.decode("utf-8", "replace") for part in rdata.strings)
    if rtype == dns.rdatatype.SOA:
        return (
            f"{_name(rdata.mname)} {_name(rdata.rname)} {rdata.serial} {rdata.refresh}"
            f" {rdata.retry} {rdata.expire} {rdata.minimum}"
        )
    return str(rdata.to_text())


def _answer_texts(response: dns.message.Message, rtype: dns.rdatatype.RdataType) -> list[str]:
    return [
        _rdata_text(rdata) for rrset in response.answer if rrset.rdtype == rtype for rdata in rrset
    ]


def _describe(exc: BaseException, timeout: float, phase: str) -> str:
    """The one place dnspython's and the OS's errors become messages."""
    if isinstance(exc, dns.exception.Timeout):
        # The scheduler's own words for its timeout, which this one matches.
        return f"timeout after {format_duration(timeout)} during {phase}"
    if isinstance(exc, EOFError):
        return f"connection closed by the server during {phase}"
    if isinstance(exc, dns.query.UnexpectedSource):
        return "the answer came from another address than the server's"
    if isinstance(exc, dns.query.BadResponse):
        return "the server's answer does not match the query"
    if isinstance(exc, dns.message.Truncated):
        return "the answer was truncated"
    if isinstance(exc, dns.exception.FormError | dns.exception.SyntaxError):
        return f"the server sent a malformed answer: {plain_error(exc, 80)}"
    known = describe_os_error(exc)
    if known is not None:
        return known
    return f"DNS error: {plain_error(exc)}"
