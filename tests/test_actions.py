"""The application layer in process: what each command's function returns or raises, without
the CLI around it (tests/test_cli*.py pin what the CLI prints of it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from probe import actions
from probe.assembly import load_config
from probe.config import Config
from probe.core.result import Status

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def config_of(tmp_path: Path, body: str) -> Config:
    path = tmp_path / "probes.yaml"
    path.write_text(f"settings:\n  store: {{path: '{tmp_path / 'probe.db'}'}}\n{body}")
    return load_config(path)


PROBES = """\
http:
  - {name: web, url: "http://127.0.0.1:9/"}
  - {name: api, url: "http://127.0.0.1:9/", success_code: [[200, 204]]}
tcp:
  - {name: db, host: "127.0.0.1:9", enabled: false}
"""


def test_check_summary_counts_kinds_and_success_codes(tmp_path: Path) -> None:
    summary = actions.check_summary(config_of(tmp_path, PROBES))
    assert summary.probes == 3
    assert summary.probe_kinds == {"http": 2, "tcp": 1}
    assert summary.disabled == 1
    assert (summary.notifiers, summary.notifier_kinds) == (0, {})
    assert summary.http_default_codes == 1
    assert sum(summary.http_own_codes.values()) == 1
    assert summary.store == tmp_path / "probe.db"


def test_sla_table_without_a_store_has_every_probe_without_data(tmp_path: Path) -> None:
    table = actions.sla_table(config_of(tmp_path, PROBES), "24h", now=NOW)
    assert table.window == "24h"
    assert table.end == NOW.timestamp() and table.start == NOW.timestamp() - 86400
    assert [row["name"] for row in table.rows] == ["web", "api", "db"]
    assert all(row["sla"] is None for row in table.rows)
    assert not (tmp_path / "probe.db").exists()  # reading made no store


def test_sla_table_refuses_an_unknown_window(tmp_path: Path) -> None:
    with pytest.raises(actions.RequestError, match="unknown SLA window"):
        actions.sla_table(config_of(tmp_path, PROBES), "fortnight")


async def test_check_once_returns_results_in_config_order(tmp_path: Path) -> None:
    seen: list[str] = []
    results = await actions.check_once(
        config_of(tmp_path, PROBES), on_done=lambda r: seen.append(r.name)
    )
    assert [r.name for r in results] == ["web", "api"]  # the disabled probe is not checked
    assert sorted(seen) == ["api", "web"]
    assert all(r.status is Status.DOWN for r in results)  # nothing listens on port 9


async def test_write_report_without_a_store_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(actions.UnavailableError, match="no store at"):
        await actions.write_report(config_of(tmp_path, PROBES), tmp_path / "index.html")
    assert not (tmp_path / "index.html").exists()


async def test_notify_test_refuses_what_the_config_lacks(tmp_path: Path) -> None:
    with pytest.raises(actions.RequestError, match="has no notifiers"):
        await actions.notify_test(config_of(tmp_path, PROBES))
    with_log = config_of(tmp_path, PROBES + 'notify:\n  log:\n    - {name: local, file: "-"}\n')
    with pytest.raises(
        actions.RequestError, match=r"no notifier named 'other' \(configured: local\)"
    ):
        await actions.notify_test(with_log, "other")
