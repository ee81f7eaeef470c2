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
