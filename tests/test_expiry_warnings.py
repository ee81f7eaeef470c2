"""Certificate expiry warnings, for real: a running App checking a local TLS server whose
certificate expires in five days, a webhook receiver (tests/support/running_app.py), and a
second run on the same store: one warning, for the 7-day threshold, never repeated."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from probe.app import App
from probe.assembly import load_config
from probe.errors import ConfigError
from tests.conftest import server_ssl_context
from tests.support.running_app import Targets, running, until

pytestmark = pytest.mark.slow


async def test_one_warning_per_threshold_crossed_and_none_after_a_restart(
    tmp_path: Path, targets: Targets, raw_server, tls_ca: trustme.CA, tls_ca_file: Path
) -> None:
    leaf = tls_ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=5))
    context: ssl.SSLContext = server_ssl_context(leaf)

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)

    server = await raw_server(hold, ssl_context=context)
    config = tmp_path / "probes.yaml"
    config.write_text(
        "settings:\n"
        "  http: {port: 0}\n"
        f"  store: {{path: {tmp_path}/probe.db}}\n"
        "  probe: {interval: 200ms, timeout: 150ms}\n"
        "tls:\n"
        f"  - name: cert\n"
        f"    host: {server.address}\n"
        f"    root_ca_pem_path: {tls_ca_file}\n"
        "    alert_expire_before: 1h\n"
        "    expiry_warnings: [720h, 168h, 24h]\n"
        "notify:\n"
        f"  webhook:\n  - {{name: hook, url: '{targets.base}/hook'}}\n"
    )

    async def body(app: App) -> None:
        await until(lambda: len(targets.alerts) >= 1)
        await asyncio.sleep(0.8)  # four more checks: nothing more

    await running(config, body)
    assert [(a["probe"], a["event"]) for a in targets.alerts] == [("cert", "expiry")]
    warning = targets.alerts[0]
    # 5 days less the moments since the certificate was made: "4d 23h" or, rounded, "5d".
    assert warning["title"] in (
        "cert: certificate expires in 4d 23h",
        "cert: certificate expires in 5d",
    )
    assert "within the 7d warning" in warning["message"]

    async def again(app: App) -> None:
        await until(lambda: app.tracker.state("cert").last_time is not None)
        await asyncio.sleep(0.6)

    await running(config, again)
    assert len(targets.alerts) == 1  # the threshold sent was kept in the store


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("http:\n  - {name: a, url: 'http://h/', expiry_warnings: [24h]}", "needs an https://"),
        ("tls:\n  - {name: a, host: 'h:443', expiry_warnings: [24h, 1d]}", "listed twice"),
        ("tls:\n  - {name: a, host: 'h:443', expiry_warnings: [0s]}", "an expiry warning"),
        ("tcp:\n  - {name: a, host: 'h:1', expiry_warnings: [24h]}", "expiry_warnings"),
    ],
)
def test_bad_expiry_warnings_are_located_errors(tmp_path: Path, entry: str, words: str):
    path = tmp_path / "probes.yaml"
    path.write_text(entry + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert words in str(problem) and ":2:" in str(problem), str(problem)


def test_https_thresholds_load_largest_first(tmp_path: Path):
    path = tmp_path / "probes.yaml"
    path.write_text("http:\n  - {name: a, url: 'https://h/', expiry_warnings: [1d, 30d, 7d]}\n")
    (spec,) = load_config(path, environ={}).probes
    assert spec.expiry_warning_thresholds() == (30 * 86400.0, 7 * 86400.0, 86400.0)
