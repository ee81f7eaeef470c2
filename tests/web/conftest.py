"""The store every web test reads: the probes of test_server.py with hours of history."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from probe.store import Store
from tests.store.helpers import Clock
from tests.web.test_server import fill


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[Store]:
    s = Store.open(tmp_path / "probe.db", clock=Clock())
    await s.start()
    await fill(s)
    yield s
    await s.close()
