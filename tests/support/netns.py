"""Ping checks run inside a network namespace of the test's own, for what the machine's own
network must not be changed for: a loopback that answers no echo request (loss), and a
`net.ipv4.ping_group_range` that lets root's group use unprivileged ICMP.

`in_new_netns(scenario)` runs this module as a script under `unshare --net` (root only: the
tests run as root here): the namespace starts with only `lo`, down; the script brings it up,
writes the namespace's own sysctls (they are per namespace, so the machine's stay as they
are), runs the scenario's checks with `run_check` and prints their results as JSON. The
namespace ends with the process: nothing to clean up. Nothing leaves loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import services_required

__all__ = ["in_new_netns"]

REPO = Path(__file__).resolve().parents[2]


def in_new_netns(scenario: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The results (status, message, details) of `scenario`'s checks, run in a new network
    namespace; skips (fails under PROBE_TEST_REQUIRE_SERVICES=1) where none can be made."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None or os.geteuid() != 0:
        reason = "a network namespace needs root, unshare (util-linux) and ip (iproute2)"
        if services_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [unshare, "--net", sys.executable, "-m", "tests.support.netns", scenario],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"{scenario} failed in its namespace:\n{done.stderr.decode()}")
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


# --- inside the namespace ------------------------------------------------------------------


def _sysctl(name: str, value: str) -> None:
    Path("/proc/sys", *name.split(".")).write_text(value)


def _silence_echo(on: bool) -> None:
    """The kernel answers no echo request in this namespace (IPv4 and IPv6)."""
    _sysctl("net.ipv4.icmp_echo_ignore_all", "1" if on else "0")
    _sysctl("net.ipv6.icmp.echo_ignore_all", "1" if on else "0")


async def _run(scenario: str) -> list[dict[str, Any]]:
    from probe.core.scheduler import run_check
    from probe.probers.base import SharedResources
    from probe.probers.ping import PingProber, PingSpec

    def prober(**keys: Any) -> PingProber:
        return PingProber(PingSpec(name=scenario, **keys), SharedResources())

    if scenario == "unprivileged":
        _sysctl("net.ipv4.ping_group_range", f"{os.getgid()} {os.getgid()}")
        probers = [prober(host=host, packet_interval="50ms") for host in ("127.0.0.1", "::1")]
    elif scenario == "silent":
        _silence_echo(True)
        probers = [
            prober(host=host, privileged=True, count=2, packet_interval="100ms", timeout="1s")
            for host in ("127.0.0.123", "::1")
        ]
    elif scenario == "partial":
        # Two requests 1s apart; echo is silenced 0.5s in: the first is answered, the
        # second is not (half a second of margin either way).
        keys: dict[str, Any] = {"host": "127.0.0.1", "privileged": True, "count": 2}
        keys["timeout"] = "3s"  # 0.7s for each reply: the lost one ends the check soon
        probers = [prober(**keys), prober(**keys, lost=0.5)]

        async def silence_later() -> None:
            await asyncio.sleep(0.5)
            _silence_echo(True)

        runs = await asyncio.gather(*(run_check(p) for p in probers), silence_later())
        return [_shown(run.result) for run in runs[:2]]
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    return [_shown((await run_check(p)).result) for p in probers]


def _shown(result: Any) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "message": result.message,
        "details": dict(result.details),
        "latency": result.latency,
    }


if __name__ == "__main__":
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(json.dumps(asyncio.run(_run(sys.argv[1]))))
