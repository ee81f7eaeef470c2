"""Small probe specs for the loader's tests, independent of the real probers."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from probe.config.loader import SpecFactory
from probe.config.models import ConfigPath, ProbeSpec, StrictModel

__all__ = ["SECTIONS", "PortSpec", "WebSpec", "port", "web"]


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


def web(spec: ProbeSpec) -> WebSpec:
    assert isinstance(spec, WebSpec)
    return spec


def port(spec: ProbeSpec) -> PortSpec:
    assert isinstance(spec, PortSpec)
    return spec
