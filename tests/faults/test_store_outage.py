"""The store's disk fills up, or its file system turns read-only, while `probe run` runs.

Promises checked with a real `probe run` (tests run as root; they skip, saying why, where
mounting is not allowed):

- the failure is logged loudly, once per outage (not once per retry), saying what is held in
  memory and its bound;
- probing goes on, and an alert raised meanwhile still reaches its webhook (the outbox row
  cannot be written: the dispatcher sends anyway);
- /healthz says "degraded" while writes fail and "ok" again once they work;
- once the disk has room again, everything held is written: the raw results of the outage,
  its rollups, the state and transition of the probe that went down, the outbox row (as
  delivered).

Disk full: the store is on a small tmpfs, filled by a ballast file, then the ballast goes.
Read-only: a tmpfs cannot be remounted read-only while probe holds its store open for writing
(the kernel refuses with EBUSY), and neither can any file system. What does turn a file system
read-only under a running program is the kernel itself after a disk error (ext4's
errors=remount-ro), so the store is put on an ext4 image on a loop device and the error is
triggered through /sys/fs/ext4/<dev>/trigger_fs_error. Such a file system stays read-only until
it is unmounted and checked, which needs probe stopped; so that test checks the outage, the
stop, and that a restart after the repair finds everything committed before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from probe.store.batch import MAX_PENDING_RESULTS
from tests.faults.conftest import FaultFigures
from tests.faults.test_crash import Hook, Server, poll, query, start_probe

PROBES = 5
OUTAGE_LINE = "cannot be written:"


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


@contextlib.contextmanager
def mounted(kind: str, source: str, target: Path, options: str) -> Iterator[None]:
    target.mkdir(parents=True, exist_ok=True)
    done = run("mount", "-t", kind, "-o", options, source, str(target))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {kind} here (needs root and CAP_SYS_ADMIN): {done.stderr}")
    try:
        yield
    finally:
        if run("umount", str(target)).returncode != 0:
            run("umount", "-l", str(target))


class Target:
    """Answers GET /<probe>: 200, or 503 for the probes in `failing`; counts the answers."""

    def __init__(self) -> None:
        self.answered: Counter[str] = Counter()
        self.failing: set[str] = set()

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            self.answered[name] += 1
            return web.Response(status=503 if name in self.failing else 200, text="x")

        app = web.Application()
        app.router.add_get("/{name}", handle)
        return app


@pytest.fixture
async def running(
    tmp_path: Path,
) -> AsyncIterator[tuple[Target, Hook, list[Server]]]:
    target = Target()
    hook = Hook()
    servers = [Server(target.app()), Server(hook.app())]
    for server in servers:
        await server.start()
    yield target, hook, servers
    for server in servers:
        await server.stop()


def write_config(path: Path, store: Path, target: str, hook: str) -> None:
    probes = "\n".join(
        f'  - {{name: p{i}, url: "{target}/p{i}", interval: 100ms}}' for i in range(PROBES)
    )
    path.write_text(
        f"""
settings:
  probe: {{timeout: 90ms}}
  store: {{path: "{store}"}}
  http: {{port: 0}}
  notify: {{group: {{wait: 0s}}}}
http:
{probes}
notify:
  webhook:
    - {{name: hook, url: "{hook}/hook"}}
"""
    )


async def health(log: Path) -> str:
    port = re.search(r"serving http://127\.0\.0\.1:(\d+)/", log.read_text())
    assert port is not None, log.read_text()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port[1]}/healthz") as response,
    ):
        data: dict[str, Any] = await response.json()
        return str(data["status"])


async def until_health(log: Path, status: str) -> None:
    end = asyncio.get_running_loop().time() + 60
    while (seen := await health(log)) != status:
        assert asyncio.get_running_loop().time() < end, f"/healthz still says {seen!r}"
        await asyncio.sleep(0.1)


def outage_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if OUTAGE_LINE in line]


def fill(folder: Path) -> Path:
    """A ballast file taking every free byte of `folder`'s file system."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return ballast


async def probing_goes_on(target: Target, seconds: float) -> None:
    before = dict(target.answered)
    await asyncio.sleep(seconds)
    for i in range(PROBES):
        assert target.answered[f"p{i}"] > before.get(f"p{i}", 0), f"p{i} not checked"


@pytest.mark.slow
async def test_disk_full_while_running(
    tmp_path: Path, running: tuple[Target, Hook, list[Server]], fault_figures: FaultFigures
) -> None:
    target, hook, (target_server, hook_server) = running
    folder = tmp_path / "small"
    db = folder / "probe.db"
    log = tmp_path / "probe.log"
    config = tmp_path / "probes.yaml"
    write_config(config, db, target_server.base, hook_server.base)
    with mounted("tmpfs", "tmpfs", folder, "size=4m"):
        proc = await start_probe(config, log)
        try:
            await poll(
                lambda: db.exists() and query(db, "SELECT COUNT(*) FROM results")[0][0] > 0,
                "results stored",
            )
            assert await health(log) == "ok"
            ballast = await asyncio.to_thread(fill, folder)
            await poll(lambda: len(outage_lines(log)) > 0, "the outage logged")
            (line,) = outage_lines(log)
            assert "ERROR" in line and "disk full" in line
            assert f"held in memory (bounded at {MAX_PENDING_RESULTS} raw results" in line
            assert "probing and alerting continue" in line
            assert await health(log) == "degraded"

            # An alert raised now still goes out, though its outbox row cannot be written.
            target.failing.add("p0")
            await poll(lambda: any(n["probe"] == "p0" for n in hook.accepted), "the alert sent")
            # Only p0's: on a loaded machine a healthy probe may miss its 90 ms timeout and
            # alert too, which is right, and not what this test is about.
            alert = [n for n in hook.accepted if n["probe"] == "p0"][-1]
            assert alert["event"] == "down"
            await probing_goes_on(target, 2.0)  # a few retries, all failing: one line still
            assert len(outage_lines(log)) == 1
            assert await health(log) == "degraded"
            held_from = max(t for (t,) in query(db, "SELECT MAX(time) FROM results"))

            ballast.unlink()
            emptied = asyncio.get_running_loop().time()
            await until_health(log, "ok")
            healthy = asyncio.get_running_loop().time() - emptied
            again = re.search(r"can be written again after (\S+): (\d+) results", log.read_text())
            assert again is not None
            fault_figures.add(
                f"disk full for {again[1]} ({PROBES} probes at 100 ms): 1 ERROR line,"
                f" {again[2]} results held then written; /healthz ok {healthy:.1f}s after the"
                " disk had room (the writer's retry backs off up to 30 s)"
            )
            await probing_goes_on(target, 0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        assert proc.returncode == 0, log.read_text()
        assert query(db, "PRAGMA integrity_check") == [("ok",)]

        # Everything held through the outage was written: results, rollups, state, transition.
        results = dict(query(db, "SELECT probe, COUNT(*) FROM results GROUP BY probe"))
        hourly = dict(
            query(
                db, "SELECT probe, SUM(checks_up + checks_down) FROM rollups_hourly GROUP BY probe"
            )
        )
        assert hourly == results
        for i in range(PROBES):
            # A graceful stop lets checks in flight finish and writes them: nothing is missing.
            assert results[f"p{i}"] == target.answered[f"p{i}"]
        during = query(
            db, f"SELECT COUNT(*) FROM results WHERE probe = 'p0' AND time > {held_from}"
        )[0][0]
        assert during > 10
        assert query(db, "SELECT status FROM probe_state WHERE probe = 'p0'") == [("down",)]
        assert query(db, "SELECT current FROM transitions WHERE probe = 'p0'")[-1] == ("down",)
        rows = query(db, "SELECT id, state FROM outbox")
        assert (f"{alert['id']}:hook", "delivered") in rows
        assert {state for _, state in rows} == {"delivered"}
        assert len(hook.accepted) == len(rows)


def ext4_device(folder: Path) -> str:
    source = run("findmnt", "-n", "-o", "SOURCE", str(folder)).stdout.strip()
    return Path(source).name


@pytest.mark.slow
async def test_file_system_turns_read_only_while_running(
    tmp_path: Path, running: tuple[Target, Hook, list[Server]]
) -> None:
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed")
    target, hook, (target_server, hook_server) = running
    image = tmp_path / "ext4.img"
    with image.open("wb") as f:
        f.truncate(32 << 20)
    made = run("mkfs.ext4", "-q", "-F", str(image))
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "disk"
    db = folder / "probe.db"
    log = tmp_path / "probe.log"
    config = tmp_path / "probes.yaml"
    write_config(config, db, target_server.base, hook_server.base)
    with mounted("ext4", str(image), folder, "loop,errors=remount-ro"):
        trigger = Path("/sys/fs/ext4") / ext4_device(folder) / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"{trigger} is missing: no way to make ext4 turn read-only here")
        proc = await start_probe(config, log)
        try:
            # An alert before the file system fails: its outbox row is synced at its commit,
            # so the kernel's abort of the file system (like a power cut) cannot lose it.
            target.failing.add("p0")
            await poll(lambda: len(hook.accepted) == 1, "the first alert sent")
            await poll(
                lambda: query(db, "SELECT state FROM outbox") == [("delivered",)],
                "the first alert recorded",
            )
            trigger.write_text("the fault suite: the store's file system turns read-only\n")
            await poll(lambda: len(outage_lines(log)) > 0, "the outage logged")
            (line,) = outage_lines(log)
            assert "ERROR" in line and "the file system is read-only" in line
            assert f"bounded at {MAX_PENDING_RESULTS} raw results" in line
            assert "probing and alerting continue" in line
            assert await health(log) == "degraded"
            # An alert raised now still goes out, though its outbox row cannot be written.
            target.failing.add("p1")
            await poll(lambda: len(hook.accepted) == 2, "the second alert sent")
            await probing_goes_on(target, 2.0)
            assert len(outage_lines(log)) == 1
            assert await health(log) == "degraded"
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        # Stopping cannot write what is held: it says how much, and exits 3 (the store's
        # error), as a stop that could not save its results should.
        assert proc.returncode == 3, log.read_text()
        text = log.read_text()
        assert re.search(r"closed with \d+ observations not written: the file system is", text)
        assert text.rstrip().endswith("the file system is read-only")
    assert [(n["probe"], n["event"]) for n in hook.accepted] == [("p0", "down"), ("p1", "down")]
    # The repair an administrator makes: check the file system, mount it again.
    fixed = run("e2fsck", "-f", "-y", str(image))
    assert fixed.returncode in (0, 1), fixed.stdout + fixed.stderr
    with mounted("ext4", str(image), folder, "loop"):
        assert query(db, "PRAGMA integrity_check") == [("ok",)]
        # What the abort kept is consistent, and holds the first alert's row.
        results = dict(query(db, "SELECT probe, COUNT(*) FROM results GROUP BY probe"))
        hourly = dict(
            query(
                db, "SELECT probe, SUM(checks_up + checks_down) FROM rollups_hourly GROUP BY probe"
            )
        )
        assert hourly == results
        first = f"{hook.accepted[0]['id']}:hook"
        assert query(db, "SELECT id, state FROM outbox") == [(first, "delivered")]
