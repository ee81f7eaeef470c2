"""Fixtures every prober test module uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from probe.probers.base import SharedResources


@pytest.fixture
async def resources() -> AsyncIterator[SharedResources]:
    """The shared clients and TLS contexts a test's probers use, closed at its end."""
    shared = SharedResources()
    yield shared
    await shared.aclose()


@pytest.fixture
def bad_ca_file(tmp_path: Path) -> Path:
    """A CA file that is no certificate: probers load it on first use, not at start-up."""
    path = tmp_path / "ca.pem"
    path.write_text("not a certificate\n")
    return path


_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP probes honour HTTP_PROXY & co.: a proxy set where the tests run must not
    reroute them (the tests of that behaviour set their own)."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
