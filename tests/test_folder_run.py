"""A folder of config files end to end: `probe check -c DIR` as a user runs it, and a real
App run from a folder that reloads when a file is added, changed or removed (the watch,
POST /-/reload and SIGHUP)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from probe.app import App
from tests.support.cli import PROBE
from tests.support.running_app import Targets, running, until


async def probe_cmd(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *PROBE,
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def put(path: Path, text: str) -> None:
    """Written whole, then moved in place (the temporary name is no config file's): the
    watch never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


async def test_check_prints_each_file_then_the_totals(tmp_path: Path) -> None:
    folder = tmp_path / "conf.d"
    put(folder / "00-settings.yaml", "settings:\n  probe: {interval: 30s}\n")
    put(
        folder / "10-web.yaml",
        "http:\n  - {name: a, url: 'http://127.0.0.1:1/'}\n"
        "  - {name: b, url: 'http://127.0.0.1:1/'}\n"
        "notify:\n  log:\n    - {name: ops, file: ops.log}\n",
    )
    put(folder / "20-db.yml", "tcp:\n  - {name: c, host: '127.0.0.1:1'}\n")
    put(folder / "notes.txt", "not config\n")
    code, out, err = await probe_cmd("check", "-c", "conf.d", cwd=tmp_path)
    assert code == 0, err
    assert out.splitlines()[:6] == [
        "conf.d: OK",
        "  00-settings.yaml: 0 probes, 0 notifiers",
        "  10-web.yaml: 2 probes, 1 notifier",
        "  20-db.yml: 1 probe, 0 notifiers",
        "  probes: 3 (http: 2, tcp: 1)",
        "  notifiers: 1 (log: 1)",
    ]
    assert f"  store: {folder}/data/probe.db" in out.splitlines()
    # $PROBE_CONFIG may name the folder too.
    env = {**os.environ, "PROBE_CONFIG": str(folder)}
    code, out, err = await probe_cmd("check", cwd=tmp_path, env=env)
    assert code == 0 and out.startswith(f"{folder}: OK\n"), err


async def test_check_locates_each_problem_in_its_file(tmp_path: Path) -> None:
    folder = tmp_path / "conf.d"
    put(folder / "a.yaml", "http:\n  - name: api\n    url: http://127.0.0.1:1/\n")
    put(folder / "b.yaml", "tcp:\n  - name: db\n    host: 127.0.0.1:1\n  - name: api\n")
    code, out, err = await probe_cmd("check", "-c", "conf.d", cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "conf.d/b.yaml:4:5: tcp[1].host: missing required key",
        'conf.d/b.yaml:4:11: tcp[1].name: duplicate probe name "api" (first at conf.d/a.yaml:2:11)',
    ]
    code, _out, err = await probe_cmd("check", "-c", "empty.d", cwd=tmp_path)
    assert code == 2 and "empty.d: cannot read config: No such file or directory" in err
    (tmp_path / "empty.d").mkdir()
    code, _out, err = await probe_cmd("check", "-c", "empty.d", cwd=tmp_path)
    assert code == 2 and "empty.d: no config files in the folder" in err and "Trace" not in err


def settings(folder: Path, *, watch: bool) -> str:
    reload = "\n  reload: {watch: true, every: 100ms}" if watch else ""
    return (
        "settings:\n"
        "  http: {port: 0}\n"
        f"  store: {{path: {folder.parent}/probe.db}}\n"
        f"  probe: {{interval: 200ms, timeout: 150ms}}{reload}\n"
    )


def probes(targets: Targets, *names: str, extra: str = "") -> str:
    more = f", {extra}" if extra else ""
    lines = [f"  - {{name: {n}, url: '{targets.base}/ok/{n}'{more}}}" for n in names]
    return "http:\n" + "\n".join(lines) + "\n"


def settings_and_a(tmp_path: Path, targets: Targets, *, watch: bool) -> Path:
    """A folder of two files: the settings, and probe `a`."""
    folder = tmp_path / "conf.d"
    put(folder / "00-settings.yaml", settings(folder, watch=watch))
    put(folder / "10-a.yaml", probes(targets, "a"))
    return folder


def changes(app: App) -> tuple[list[str], list[str], list[str]]:
    report = app.last_reload
    assert report is not None and report.ok and report.diff is not None, report
    diff = report.diff
    return [s.name for s in diff.added], [s.name for s in diff.changed], diff.removed


@pytest.mark.slow
async def test_the_watch_reloads_a_folder_when_a_file_comes_changes_or_goes(
    tmp_path: Path, targets: Targets
) -> None:
    folder = settings_and_a(tmp_path, targets, watch=True)

    async def body(app: App) -> None:
        await until(lambda: len(targets.hits.get("a", [])) >= 1)
        put(folder / "notes.txt", "not config")  # the folder changed, its config did not
        await asyncio.sleep(0.5)
        assert app.last_reload is None
        put(folder / "20-b.yaml", probes(targets, "b"))
        await until(lambda: app.last_reload is not None)
        assert app.last_reload is not None and app.last_reload.trigger == "file change"
        assert changes(app) == (["b"], [], [])
        await until(lambda: len(targets.hits.get("b", [])) >= 1)
        added = app.last_reload
        put(folder / "10-a.yaml", probes(targets, "a", extra="timeout: 120ms"))
        await until(lambda: app.last_reload is not added)
        assert changes(app) == ([], ["a"], [])
        changed = app.last_reload
        (folder / "20-b.yaml").unlink()
        await until(lambda: app.last_reload is not changed)
        assert changes(app) == ([], [], ["b"])
        assert app.config.path == folder
        assert [f.path.name for f in app.config.files] == ["00-settings.yaml", "10-a.yaml"]

    await running(folder, body)


@pytest.mark.slow
async def test_sighup_and_post_reload_read_the_folder_again(
    tmp_path: Path, targets: Targets
) -> None:
    folder = settings_and_a(tmp_path, targets, watch=False)

    async def body(app: App) -> None:
        base = f"http://127.0.0.1:{app.http_port}"
        put(folder / "20-b.yaml", probes(targets, "b", "a"))
        async with httpx.AsyncClient(base_url=base) as http:
            refused = await http.post("/-/reload")
        assert refused.status_code == 422
        assert refused.json()["errors"] == [
            f'{folder}/20-b.yaml:3:12: http[1].name: duplicate probe name "a" '
            f"(first at {folder}/10-a.yaml:2:12)"
        ]
        put(folder / "20-b.yaml", probes(targets, "b"))
        async with httpx.AsyncClient(base_url=base) as http:
            applied = await http.post("/-/reload")
        assert applied.status_code == 200 and applied.json()["changes"]["added"] == ["b"]
        await until(lambda: len(targets.hits.get("b", [])) >= 1)
        posted = app.last_reload
        (folder / "20-b.yaml").rename(folder / "20-b.yaml.off")
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: app.last_reload is not posted)
        assert changes(app) == ([], [], ["b"])

    await running(folder, body)


@pytest.mark.slow
async def test_a_file_new_to_the_folder_is_watched_before_a_reload_takes_it(
    tmp_path: Path, targets: Targets
) -> None:
    """A new file that does not load is refused; fixing it (nothing else changes) reloads."""
    folder = settings_and_a(tmp_path, targets, watch=True)

    async def body(app: App) -> None:
        await until(lambda: len(targets.hits.get("a", [])) >= 1)
        put(folder / "30-c.yaml", "http:\n  - {name: c, url: [\n")  # half written
        await until(lambda: app.last_reload is not None)
        refused = app.last_reload
        assert refused is not None and not refused.ok
        put(folder / "30-c.yaml", probes(targets, "c"))
        await until(lambda: app.last_reload is not refused)
        assert changes(app) == (["c"], [], [])

    await running(folder, body)


async def test_an_empty_config_path_is_refused_not_the_working_directory(tmp_path: Path) -> None:
    put(tmp_path / "compose.yaml", "services: {}\n")  # a YAML file that is no probe config
    code, out, err = await probe_cmd("check", "-c", "", cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.strip() == "-c: an empty path (an unset variable?); name a config file or folder"
