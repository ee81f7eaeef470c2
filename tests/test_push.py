"""Push monitors end to end: a real App, its real web server called over HTTP as a cron job
would, a real webhook receiver for the alerts, the real store across a restart."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from probe import actions
from probe.app import App
from probe.assembly import load_config
from probe.core.result import Result, Status
from probe.shards import ShardedScheduler
from tests.support.running_app import Targets, running, until

pytestmark = pytest.mark.slow

TOKEN = "nightly-9f3Kq2Lx7Vb4Tz8w"
OTHER = "weekly-Qm5Rt2Yp8Zc3Wn6h"
API = "api-secret-Hq7Jx2Lm"


def write_push(
    path: Path,
    targets: Targets,
    probes: list[str],
    *,
    http: str = "port: 0",
    http_probes: tuple[str, ...] = (),
    workers: int = 1,
) -> None:
    """A config of push probes (each a YAML flow mapping's inside), a webhook to `targets`'
    /hook, each alert sent at once, and the access log beside it."""
    lines = [
        "settings:",
        f"  http: {{{http}, log: {{file: {path.parent}/access.log}}}}",
        f"  store: {{path: {path.parent}/probe.db}}",
        f"  probe: {{interval: 200ms, timeout: 150ms, workers: {workers}}}",
        "  notify: {group: {wait: 0s}}",
        "push:",
        *(f"  - {{{probe}}}" for probe in probes),
        "notify:",
        f"  webhook: [{{name: hook, url: '{targets.base}/hook'}}]",
    ]
    if http_probes:
        lines.append("http:")
        lines += [f"  - {{name: {n}, url: '{targets.base}/ok/{n}'}}" for n in http_probes]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def nightly(token: str = TOKEN, every: str = "interval: 600ms, grace: 300ms") -> str:
    return f"name: nightly, token: {token}, {every}"


def alerts(targets: Targets, probe: str = "nightly") -> list[str]:
    return [a["event"] for a in targets.alerts if a["probe"] == probe]


def base(app: App) -> str:
    return f"http://127.0.0.1:{app.http_port}"


def last(app: App, name: str = "nightly") -> Result:
    result = app.tracker.now(name).last
    assert result is not None
    return result


async def test_heartbeats_silence_and_recovery_alert_once_each(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    write_push(config, targets, [nightly()], http=f"port: 0, token: {API}")

    async def body(app: App) -> None:
        async with httpx.AsyncClient(base_url=base(app)) as client:
            # No Authorization header: the push token is the credential, even with an API token.
            reply = await client.get(f"/api/v1/push/{TOKEN}")
            assert reply.status_code == 200 and reply.json() == {"status": "ok"}
            assert app.tracker.state("nightly").status is Status.UP
            assert last(app).message == "heartbeat"
            assert (await client.get("/api/v1/sla")).status_code == 401  # the API still asks

            # The job goes quiet: down after interval + grace, said so, alerted once.
            await until(lambda: app.tracker.state("nightly").status is Status.DOWN)
            assert last(app).message.startswith("no heartbeat since 20")
            assert last(app).latency is None
            # Silent on: one more down result every interval, and still one alert.
            await until(lambda: app.tracker.now("nightly").checks.get("down", 0) >= 2)
            assert alerts(targets) == ["down"]

            # The job comes back: up again, and the recovery goes out.
            assert (await client.post(f"/api/v1/push/{TOKEN}")).status_code == 200
            assert app.tracker.state("nightly").status is Status.UP
            await until(lambda: alerts(targets) == ["down", "recovery"])

            # The job says it failed, with its own message (made printable and capped).
            failed = await client.get(
                f"/api/v1/push/{TOKEN}", params={"status": "DOWN", "msg": "disk\x1b[31m full"}
            )
            assert failed.status_code == 200
            assert app.tracker.state("nightly").status is Status.DOWN
            assert last(app).message == "disk?[31m full"
            await until(lambda: alerts(targets) == ["down", "recovery", "down"])
            long = await client.get(f"/api/v1/push/{TOKEN}", params={"msg": "x" * 5000})
            assert long.status_code == 200 and len(last(app).message) == 300

            # /start, then the heartbeat: the job's duration is the latency.
            started = await client.get(f"/api/v1/push/{TOKEN}/start")
            assert started.json() == {"status": "started"}
            await asyncio.sleep(0.25)
            assert (await client.get(f"/api/v1/push/{TOKEN}")).status_code == 200
            result = last(app)
            assert result.status is Status.UP
            assert result.latency is not None and 0.25 <= result.latency < 10
            assert re.fullmatch(r"heartbeat \(ran \d+\.\d s\)", result.message)
            assert result.details["ran_s"] == pytest.approx(result.latency, abs=0.01)

            # The job's own latency (ms; `ping` as Uptime Kuma's scripts send it).
            await client.get(f"/api/v1/push/{TOKEN}", params={"latency": "123.5"})
            assert last(app).latency == pytest.approx(0.1235)
            await client.get(f"/api/v1/push/{TOKEN}", params={"ping": "7"})
            assert last(app).latency == pytest.approx(0.007)

            # The token shows nowhere: API, page, metrics (the access log: below).
            auth = {"Authorization": f"Bearer {API}"}
            for path in ("/api/v1/sla", "/api/v1/probes/nightly", "/", "/metrics"):
                shown = await client.get(path, headers=auth)
                assert shown.status_code == 200, path
                assert TOKEN not in shown.text and "nightly" in shown.text, path
            assert "push every 600ms" in (await client.get("/api/v1/sla", headers=auth)).text

        # Paths spelled otherwise reach the access log as they were sent: the token in them
        # is still a secret there.
        for target in (f"//api/v1/push/{TOKEN}", f"/api/v1/%70ush/{TOKEN}"):
            reader, writer = await asyncio.open_connection("127.0.0.1", app.http_port)
            writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            assert (await reader.read()).startswith(b"HTTP/1.1 ")
            writer.close()
            await writer.wait_closed()

    await running(config, body)
    logged = (tmp_path / "access.log").read_text()
    assert "GET /api/v1/push/*** 200" in logged and "/api/v1/push/***/start 200" in logged
    assert TOKEN not in logged


async def test_bad_calls_unknown_tokens_and_rate_limits(tmp_path: Path, targets: Targets) -> None:
    config = tmp_path / "probes.yaml"
    weekly = f"name: weekly, token: {OTHER}, interval: 1h"
    write_push(config, targets, [nightly(every="interval: 1h"), weekly])

    async def body(app: App) -> None:
        async with httpx.AsyncClient(base_url=base(app)) as client:
            url = f"/api/v1/push/{TOKEN}"
            for params, key in [
                ({"status": "maybe"}, "status"),
                ({"latency": "fast"}, "latency"),
                ({"latency": "-1"}, "latency"),
                ({"latency": "nan"}, "latency"),
            ]:
                reply = await client.get(url, params=params)
                assert reply.status_code == 400, params
                assert reply.json()["error"].startswith(f"{key}: ")
            assert app.tracker.now("nightly").last is None  # none of them counted
            assert (await client.head(url)).status_code == 405  # a HEAD is no heartbeat

            # A probe's calls beyond its bucket: 429 with Retry-After, and not recorded.
            replies = [await client.get(url) for _ in range(30)]
            codes = [r.status_code for r in replies]
            assert codes[:10] == [200] * 10 and 429 in codes
            limited = next(r for r in replies if r.status_code == 429)
            assert int(limited.headers["Retry-After"]) >= 1
            assert app.tracker.now("nightly").checks["up"] == codes.count(200)

            # Unknown tokens: one bare answer, whatever the token; then the address waits.
            for guess in ("x", TOKEN[:-1], TOKEN + "0", "nightly"):
                reply = await client.get(f"/api/v1/push/{guess}")
                assert reply.status_code == 404 and reply.json() == {"error": "not found"}
            codes = [(await client.get(f"/api/v1/push/guess{i}")).status_code for i in range(12)]
            assert codes[:6] == [404] * 6 and codes[-1] == 429
            # Only the misses wait: another job behind the same address (a proxy, a NAT)
            # still gets through while the guesses go on being refused.
            assert (await client.get(f"/api/v1/push/{OTHER}")).status_code == 200
            assert (await client.get("/api/v1/push/guess-again")).status_code == 429

    await running(config, body)
    assert TOKEN not in (tmp_path / "access.log").read_text()


async def test_workers_never_get_push_probes(tmp_path: Path, targets: Targets) -> None:
    config = tmp_path / "probes.yaml"
    write_push(config, targets, [nightly()], http_probes=("a", "b"), workers=2)

    async def body(app: App) -> None:
        scheduler = app._scheduler
        assert isinstance(scheduler, ShardedScheduler)
        assert "nightly" not in scheduler._shard_of
        assert scheduler.probe_count == 2
        await until(lambda: all(targets.hits.get(n) for n in ("a", "b")))
        async with httpx.AsyncClient(base_url=base(app)) as client:
            assert (await client.get(f"/api/v1/push/{TOKEN}")).status_code == 200
        assert app.tracker.state("nightly").status is Status.UP
        await until(lambda: app.tracker.state("nightly").status is Status.DOWN)

    await running(config, body)


async def test_a_restart_keeps_the_clock(tmp_path: Path, targets: Targets) -> None:
    config = tmp_path / "probes.yaml"
    quiet = f"name: quiet, token: {OTHER}, interval: 300ms, grace: 100ms"
    write_push(config, targets, [nightly(every="interval: 2s, grace: 500ms"), quiet])
    pushed: list[float] = []

    async def first(app: App) -> None:
        async with httpx.AsyncClient(base_url=base(app)) as client:
            assert (await client.get(f"/api/v1/push/{TOKEN}")).status_code == 200
        pushed.append(last(app).time.timestamp())
        # Never called: down once its interval and grace since the start have passed.
        await until(lambda: app.tracker.state("quiet").status is Status.DOWN)
        assert last(app, "quiet").message.startswith("no heartbeat since probe started at 20")

    await running(config, first)

    async def second(app: App) -> None:
        # Up, as the store left it; down 2.5 s after the heartbeat of the first run, not after
        # this start.
        assert app.tracker.state("nightly").status is Status.UP
        await until(lambda: app.tracker.state("nightly").status is Status.DOWN)
        down = last(app)
        when = datetime.fromisoformat(down.message.removeprefix("no heartbeat since "))
        assert when.timestamp() == pytest.approx(pushed[0], abs=0.002)
        # The clock comes back from the stored ISO time (whole milliseconds): due 2.5 s after
        # that, which is up to 1 ms before the heartbeat's exact time + 2.5 s.
        assert down.time.timestamp() >= when.timestamp() + 2.5
        assert down.time.timestamp() < started[0] + 2.5  # the clock was not reset at start
        # The never-seen probe keeps the start it was first watched from.
        watched = last(app, "quiet").details["watching_since"]
        assert watched is not None and datetime.fromisoformat(watched).timestamp() < pushed[0]

    started = [time.time()]
    await running(config, second)
    assert alerts(targets) == ["down"]
    assert alerts(targets, "quiet") == ["down"]  # its outage goes on: not alerted again

    # `probe once` judges it from the store: down, no heartbeat since the first run's.
    results = await actions.check_once(load_config(config))
    verdict = {r.name: r for r in results}["nightly"]
    assert verdict.status is Status.DOWN and verdict.message.startswith("no heartbeat since")


async def test_once_without_a_store_says_unknown(tmp_path: Path, targets: Targets) -> None:
    config = tmp_path / "probes.yaml"
    write_push(config, targets, [nightly()], http_probes=("a",))
    results = await actions.check_once(load_config(config))
    assert [(r.name, r.status) for r in results] == [("nightly", Status.UNKNOWN), ("a", Status.UP)]
    assert "checked by their jobs' calls" in results[0].message
    assert not (tmp_path / "probe.db").exists()  # once writes no store


async def test_reload_adds_and_changes_push_probes(tmp_path: Path, targets: Targets) -> None:
    config = tmp_path / "probes.yaml"
    write_push(config, targets, [nightly(every="interval: 1h")], http_probes=("a",))

    async def body(app: App) -> None:
        async with httpx.AsyncClient(base_url=base(app)) as client:
            assert (await client.get(f"/api/v1/push/{TOKEN}")).status_code == 200
            beat = last(app).time
            # Added: a second push probe; changed: nightly's token; its clock stays.
            new_token = "nightly-Rw8Px3Nv5Kb2Jd7s"
            weekly = f"name: weekly, token: {OTHER}, interval: 300ms, grace: 100ms"
            write_push(
                config,
                targets,
                [nightly(token=new_token, every="interval: 1h"), weekly],
                http_probes=("a",),
            )
            report = await app.reload("test")
            assert report.ok and report.diff is not None
            assert [s.name for s in report.diff.added] == ["weekly"]
            assert [s.name for s in report.diff.changed] == ["nightly"]
            assert (await client.get(f"/api/v1/push/{TOKEN}")).status_code == 404
            assert (await client.get(f"/api/v1/push/{OTHER}")).status_code == 200
            assert app.tracker.state("weekly").status is Status.UP
            await until(lambda: app.tracker.state("weekly").status is Status.DOWN)
            watch = app.push._watches["nightly"]
            assert watch.last_beat == pytest.approx(beat.timestamp())
            assert (await client.get(f"/api/v1/push/{new_token}")).status_code == 200
            # A push probe is never a scheduler's loop, after a reload either.
            assert app._scheduler is not None and app._scheduler.probe_count == 1
            # Removed: its token is refused at once.
            write_push(config, targets, [], http_probes=("a",))
            assert (await app.reload("test")).ok
            assert (await client.get(f"/api/v1/push/{new_token}")).status_code == 404

    await running(config, body)
