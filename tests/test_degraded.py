"""Degraded, for real: a running App, a target that answers 203 (within the success codes, but
not what the `degraded` condition asks), two webhooks on two channels: the degraded message goes
to `degraded_channels`, the down alert to the probe's own channel; the page shows it yellow."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from probe.app import App
from probe.core.result import Status
from tests.support.running_app import Targets, running, until, write

pytestmark = pytest.mark.slow


async def test_degraded_goes_to_its_own_channel_and_counts_as_up(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    probes = {
        "api": "channels: [ops], degraded: ['[STATUS] == 200'], degraded_channels: [perf]",
    }
    notify = (
        "webhook:\n"
        f"  - {{name: ops, url: '{targets.base}/hook-ops', channels: [ops]}}\n"
        f"  - {{name: perf, url: '{targets.base}/hook-perf', channels: [perf]}}"
    )
    write(config, targets, probes, notify=notify, settings="notify: {group: {wait: 0s}}")

    def seen() -> list[tuple[str, str, str]]:
        return [(a["path"], a["event"], a["status"]) for a in targets.alerts]

    async def body(app: App) -> None:
        await until(lambda: len(targets.hits.get("api", [])) >= 1)
        targets.statuses["api"] = 203
        await until(lambda: len(targets.alerts) >= 1)
        assert seen() == [("/hook-perf", "degraded", "degraded")]
        assert targets.alerts[0]["message"] == "degraded: [STATUS] (203) == 200"
        assert app.tracker.state("api").status is Status.UP
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}") as http:
            item = (await http.get("/api/v1/probes/api")).json()
            assert (item["status"], item["degraded"]) == ("up", "[STATUS] (203) == 200")
            page = (await http.get("/")).text
            assert 'class="st st-degraded"' in page
        targets.failing.add("api")
        await until(lambda: len(targets.alerts) >= 2)
        targets.failing.clear()
        targets.statuses.clear()
        await until(lambda: len(targets.alerts) >= 3)

    await running(config, body)
    assert seen() == [
        ("/hook-perf", "degraded", "degraded"),
        ("/hook-ops", "down", "down"),
        ("/hook-ops", "recovery", "up"),
    ]


def test_a_degraded_condition_reading_what_the_kind_cannot_fill_is_located(tmp_path: Path):
    from probe.assembly import load_config
    from probe.errors import ConfigError

    path = tmp_path / "probes.yaml"
    path.write_text("tcp:\n  - {name: a, host: 'h:1', degraded: ['[STATUS] == 200']}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert "tcp[0].degraded[0]" in str(problem) and "STATUS" in str(problem)
