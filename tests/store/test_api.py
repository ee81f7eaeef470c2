"""The store's public surface and the imports it must never make (docs/ARCHITECTURE.md,
"the store")."""

from __future__ import annotations

import json
import subprocess
import sys

import probe.store
from probe.store import (
    base,
    batch,
    columns,
    errors,
    outbox,
    queries,
    rollups,
    schema,
    sla,
    sqlite,
    writer,
)


def test_public_names() -> None:
    assert sorted(probe.store.__all__) == sorted(
        [
            "BUCKETS_MS",
            "DEFAULT_RETENTION",
            "ROLLUP_RETENTION",
            "SCHEMA_VERSION",
            "WINDOWS",
            "HourRollup",
            "ResultStore",
            "SLAFigures",
            "Store",
            "figures_from_rollups",
            "parse_window",
            "percentile_from_histogram",
            "window_bounds",
        ]
    )
    modules = (probe.store, base, batch, columns, errors, outbox, queries, rollups, schema)
    for module in (*modules, sla, sqlite, writer):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_store_imports_no_probers_notifiers_or_web() -> None:
    code = (
        "import json, sys, probe.store; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "('probe.probers', 'probe.notify', 'probe.web', 'probe.app', 'probe.cli')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
