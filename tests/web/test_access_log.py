"""settings.http.log: one line per request in a file, without secrets, rotated by size (issue 9).
Real server over loopback, real files."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from probe.config.models import HTTPAccessLogSettings
from probe.errors import StartupError
from probe.store import Store
from probe.web.data import StatusSource
from probe.web.server import create_app, start_server
from tests.store.helpers import NOW, Clock
from tests.web.test_server import PROBES

LINE = re.compile(
    r"(?P<when>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<remote>\S+) (?P<method>[A-Z]+) (?P<path>\S+)"
    r" (?P<status>\d{3}) (?P<bytes>\d+) (?P<ms>\d+\.\d)ms"
)
MB = 1024 * 1024


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store.open(tmp_path / "probe.db", clock=Clock())
    await s.start()
    yield s
    await s.close()


async def serve_and_ask(
    store: Store, settings: HTTPAccessLogSettings, requests: list[tuple[str, dict[str, str]]]
) -> list[int]:
    app = create_app(StatusSource(store, PROBES, clock=lambda: NOW), token="T0KEN-VALUE")
    runner, port = await start_server(app, "127.0.0.1", 0, access_log=settings)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            return [(await client.get(path, headers=h)).status_code for path, h in requests]
    finally:
        await runner.cleanup()  # stops the writer thread: every line is in the file


async def test_one_line_per_request_without_secrets(store: Store, tmp_path: Path) -> None:
    target = tmp_path / "logs" / "access.log"
    auth = {"Authorization": "Bearer T0KEN-VALUE"}
    statuses = await serve_and_ask(
        store,
        HTTPAccessLogSettings(file=target),
        [
            ("/api/v1/sla?token=QUERY-SECRET&name=api", auth),
            ("/api/v1/sla", {"Authorization": "Bearer wrong-guess"}),
            ("/api/v1/probes/nope", auth),
            ("/badge/api/status.svg?x=%0aFAKE 200", {}),
        ],
    )
    assert statuses == [200, 401, 404, 200]
    text = target.read_text()
    for secret in ("QUERY-SECRET", "T0KEN-VALUE", "wrong-guess", "Bearer", "FAKE"):
        assert secret not in text
    lines = text.splitlines()
    assert len(lines) == 4, text
    parsed = [LINE.fullmatch(line) for line in lines]
    assert all(parsed), lines
    rows = [m.groupdict() for m in parsed if m]
    assert [(r["method"], r["path"], r["status"]) for r in rows] == [
        ("GET", "/api/v1/sla", "200"),
        ("GET", "/api/v1/sla", "401"),
        ("GET", "/api/v1/probes/nope", "404"),
        ("GET", "/badge/api/status.svg", "200"),
    ]
    assert {r["remote"] for r in rows} == {"127.0.0.1"}
    assert int(rows[0]["bytes"]) > 10 and int(rows[3]["bytes"]) > 100


async def test_rotates_by_size_keeping_backups(store: Store, tmp_path: Path) -> None:
    target = tmp_path / "access.log"
    # Just under 1 MB already: the next few lines go past `size` and rotate the file.
    target.write_text("x" * (MB - 100) + "\n")
    Path(f"{target}.1").write_text("older\n")
    Path(f"{target}.2").write_text("oldest\n")
    settings = HTTPAccessLogSettings(file=target, size=1, backups=2)
    await serve_and_ask(store, settings, [("/healthz", {})] * 5)
    assert Path(f"{target}.1").read_text().startswith("x" * 100)
    assert Path(f"{target}.2").read_text() == "older\n"  # "oldest" is the one dropped
    assert not Path(f"{target}.3").exists()
    assert 0 < target.stat().st_size < MB
    assert all(LINE.fullmatch(line) for line in target.read_text().splitlines())


async def test_external_rotation_reopens_the_file(store: Store, tmp_path: Path) -> None:
    target = tmp_path / "access.log"
    settings = HTTPAccessLogSettings(file=target, self_rotate=False)
    app = create_app(StatusSource(store, PROBES, clock=lambda: NOW))
    runner, port = await start_server(app, "127.0.0.1", 0, access_log=settings)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await client.get("/healthz")
            for _ in range(100):  # the writer thread gets to it
                if target.exists() and target.stat().st_size:
                    break
                await asyncio.sleep(0.05)
            target.rename(tmp_path / "access.log.moved")  # what logrotate does
            await client.get("/metrics")
    finally:
        await runner.cleanup()
    assert "/healthz" in (tmp_path / "access.log.moved").read_text()
    assert "/metrics" in target.read_text()


async def test_unwritable_file_is_a_startup_error(store: Store, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    app = create_app(StatusSource(store, PROBES))
    with pytest.raises(StartupError, match=r"settings\.http\.log\.file: cannot open"):
        await start_server(
            app, "127.0.0.1", 0, access_log=HTTPAccessLogSettings(file=blocker / "access.log")
        )


async def test_probe_run_writes_the_access_log(tmp_path: Path) -> None:
    from probe.app import App
    from probe.assembly import load_config

    (tmp_path / "p.yaml").write_text(
        "settings:\n"
        "  http: {port: 0, log: {file: access.log, age: 3, compress: true}}\n"
        "  status: {path: index.html}\n"
        "tcp:\n  - {name: self, host: '127.0.0.1:1', interval: 1s, timeout: 500ms}\n"
    )
    config = load_config(tmp_path / "p.yaml")
    assert len(config.warnings) == 2  # age and compress: accepted, not used
    app = App(config, registry=None)

    async def ask_then_stop() -> None:
        while app.http_port is None:
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}") as client:
            assert (await client.get("/healthz")).status_code == 200
        app.request_stop()

    task = asyncio.create_task(ask_then_stop())
    assert await asyncio.wait_for(app.run(), 30) == 0
    await task
    (line,) = (tmp_path / "access.log").read_text().splitlines()
    match = LINE.fullmatch(line)
    assert match and match["path"] == "/healthz" and match["status"] == "200"
