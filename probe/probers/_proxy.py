"""Which proxy, if any, a request goes through: a probe's `proxy:`, or the environment's
HTTP_PROXY / HTTPS_PROXY / NO_PROXY as Go's net/http reads them (EaseProbe's behaviour).

Go's rules, kept here so configs behave as they did under EaseProbe:
- HTTP_PROXY is for http:// URLs, HTTPS_PROXY for https:// ones (no fallback between them);
  the upper-case name wins over the lower-case one; an empty value is unset; a value without
  a scheme is an http:// proxy.
- NO_PROXY is a comma-separated list of IP addresses, CIDR ranges, and domain names (which
  match the name and its subdomains; with a leading "." or "*.", subdomains only), each with
  an optional `:port`; `*` alone exempts everything.
- Requests to `localhost` and loopback addresses never go through a proxy from the
  environment.

A route is hashable: it is part of the key of the shared HTTP clients, so probes whose
requests go the same ways share one client, and the environment is read once per client.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

__all__ = ["DIRECT", "ProxyRoute", "invalid_proxy"]

_SCHEMES = ("http", "https", "socks5", "socks5h")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def invalid_proxy(value: str) -> str | None:
    """Why `value` is not a usable proxy URL, or None. Never repeats the value (it may carry
    credentials)."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        return "not a valid URL"
    if url.scheme not in _SCHEMES:
        return "the scheme must be " + ", ".join(f"{s}://" for s in _SCHEMES)
    if not url.host:
        return "no host"
    if url.port is not None and not 1 <= url.port <= 65535:
        return f"port {url.port} is not in 1-65535"
    return None


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    """The proxy of http:// and of https:// requests (None: direct), and the NO_PROXY
    entries that exempt a host (only for a route taken from the environment)."""

    http: str | None = None
    https: str | None = None
    no_proxy: tuple[str, ...] = ()
    from_env: bool = False

    @classmethod
    def fixed(cls, proxy: str | None) -> ProxyRoute:
        """A probe's own `proxy:`: every request goes through it, NO_PROXY does not apply."""
        return cls(http=proxy, https=proxy)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProxyRoute:
        env = os.environ if environ is None else environ
        proxies: dict[str, str | None] = {}
        for scheme in ("http", "https"):
            value = _lookup(env, f"{scheme.upper()}_PROXY")
            if value and "://" not in value:
                value = f"http://{value}"  # Go's reading of "proxy.lan:3128"
            proxies[scheme] = value or None
        no_proxy = _lookup(env, "NO_PROXY")
        entries = tuple(e.strip().lower() for e in no_proxy.split(",") if e.strip())
        return cls(proxies["http"], proxies["https"], entries, from_env=True)

    @property
    def direct(self) -> bool:
        return self.http is None and self.https is None

    def proxy_for(self, url: httpx.URL) -> str | None:
        """The proxy URL a request to `url` goes through, None to go direct."""
        proxy = self.https if url.scheme == "https" else self.http
        if proxy is None or not self.from_env:
            return proxy
        host = url.host.lower()
        port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
        if _is_loopback(host) or any(_exempts(entry, host, port) for entry in self.no_proxy):
            return None
        return proxy


DIRECT = ProxyRoute()


def _lookup(env: Mapping[str, str], name: str) -> str:
    """The variable's value, upper case first as Go does; "" when unset."""
    for candidate in (name, name.lower()):
        value = env.get(candidate, "").strip()
        if value:
            return value
    return ""


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def _exempts(entry: str, host: str, port: int) -> bool:
    """Whether one NO_PROXY entry exempts `host:port`."""
    if entry == "*":
        return True
    try:  # a CIDR range (never with a port)
        network = ipaddress.ip_network(entry, strict=False) if "/" in entry else None
    except ValueError:
        network = None
    if network is not None:
        ip = _ip(host)
        return ip is not None and ip in network
    name, entry_port = _split_port(entry)
    if entry_port is not None and entry_port != port:
        return False
    entry_ip, ip = _ip(name), _ip(host)
    if entry_ip is not None or ip is not None:
        return entry_ip is not None and entry_ip == ip
    if name.startswith("*."):
        name = name[1:]
    if name.startswith("."):
        return host.endswith(name)
    return host == name or host.endswith("." + name)


def _split_port(entry: str) -> tuple[str, int | None]:
    """`name:port`, `[v6]:port`, `1.2.3.4:port` or a bare name or address."""
    if entry.startswith("["):
        head, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return head, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        head, _, port = entry.partition(":")
        return head, int(port) if port.isdigit() else None
    return entry, None
