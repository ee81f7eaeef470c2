"""Small probe specs for the loader's tests, independent of the real probers; notifiers are the
real kinds (their spec models import no service library), and the EaseProbe names refused are
the real ones, as probe.assembly passes them (`KINDS`: the loader's arguments)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from probe.assembly import notifier_spec_factories
from probe.config import NotifierSpecFactory, SpecFactory
from probe.config.models import ConfigPath, ProbeSpec, StrictModel
from probe.notify import UNSUPPORTED_NOTIFIERS
from probe.probers._client import ClientSpec

__all__ = [
    "DRIVERS",
    "KINDS",
    "NOTIFIERS",
    "SECTIONS",
    "CacheSpec",
    "DocDBSpec",
    "PortSpec",
    "WebSpec",
    "port",
    "web",
]


class BasicAuth(StrictModel):
    username: str
    password: str


class WebSpec(ProbeSpec):
    kind: ClassVar[str] = "http"
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset({"proxy"})

    url: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    username: str | None = None
    password: str | None = None
    auth: BasicAuth | None = None
    ca: ConfigPath | None = None
    success_code: list[tuple[int, int]] = Field(default_factory=lambda: [(200, 399)])

    def endpoint(self) -> str:
        return self.url


class PortSpec(ProbeSpec):
    kind: ClassVar[str] = "tcp"

    host: str

    def endpoint(self) -> str:
        return self.host


SECTIONS: dict[str, SpecFactory] = {"http": lambda: WebSpec, "tcp": lambda: PortSpec}


class DocDBSpec(ClientSpec):
    """A `client:` driver of the tests' own, with a DSN form (as postgres has)."""

    kind: ClassVar[str] = "docdb"
    dsn_schemes: ClassVar[tuple[str, ...]] = ("docdb",)


class CacheSpec(ClientSpec):
    """A second driver, without a DSN form (as etcd has)."""

    kind: ClassVar[str] = "cache"
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset({"legacy"})


DRIVERS: dict[str, SpecFactory] = {"docdb": lambda: DocDBSpec, "cache": lambda: CacheSpec}

NOTIFIERS: dict[str, NotifierSpecFactory] = notifier_spec_factories()

# The loader's tests test how an unsupported section is refused, not which ones are: a fixed
# set, so that a kind implemented later (as ssh, websocket) does not change them.
TEST_UNSUPPORTED_SECTIONS = {
    "ssh": "EaseProbe's ssh probes are not supported",
    "websocket": "EaseProbe's websocket probes are not supported",
}

# Likewise for drivers: the mongo and kafka drivers were once refused, and stay the examples.
TEST_UNSUPPORTED_DRIVERS = {
    "mongo": "EaseProbe's mongo driver is not supported",
    "kafka": "EaseProbe's kafka driver is not supported",
}

KINDS: dict[str, Any] = {
    "sections": SECTIONS,
    "notifiers": NOTIFIERS,
    "unsupported_sections": TEST_UNSUPPORTED_SECTIONS,
    "unsupported_drivers": TEST_UNSUPPORTED_DRIVERS,
    "unsupported_notifiers": UNSUPPORTED_NOTIFIERS,
}


def web(spec: ProbeSpec) -> WebSpec:
    assert isinstance(spec, WebSpec)
    return spec


def port(spec: ProbeSpec) -> PortSpec:
    assert isinstance(spec, PortSpec)
    return spec
