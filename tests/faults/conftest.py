"""The fault suite: every test under tests/faults/ is marked `faults` (run it alone with
`pytest -m faults`). Each test makes something misbehave on purpose on loopback (a server that
never answers, a connection cut through tests/support/proxy.py, a kill -9, a read-only store,
a reload) and checks that probe keeps its promises through it."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(_HERE):
            item.add_marker(pytest.mark.faults)
