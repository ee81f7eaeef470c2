"""A name that does not resolve and a resolver that never answers, through the real system
resolver (getaddrinfo), with the real http and tcp probers.

The resolver this machine is configured with is not on loopback, and the tests must send
nothing beyond it: the checks run in a child process (tests/faults/dns_child.py) inside network
and mount namespaces of its own (`unshare --net --mount`, root only), where the only interface
is `lo` and /etc/resolv.conf names a DNS server of the child's on 127.0.0.1. Where that cannot
be had, the tests are skipped; they never fall back to the real resolver.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.faults import servers
from tests.faults.servers import OVERRUNS

pytestmark = pytest.mark.slow

_overruns = servers.overrun_report("DNS faults")

ROOT = Path(__file__).resolve().parents[2]
SLACK = 1.5


@pytest.fixture(scope="module")
def isolated() -> dict[str, Any]:
    """What the child saw: its JSON output."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs util-linux's unshare to isolate the resolver (no real DNS queries)")
    if os.geteuid() != 0:
        pytest.skip("needs root for network and mount namespaces (unshare --net --mount)")
    command = [unshare, "--net", "--mount", "--", sys.executable, "-m", "tests.faults.dns_child"]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        if done.returncode == 3 or "unshare" in done.stderr:
            # Refused (not isolated) or no namespaces here: never the real resolver instead.
            pytest.skip(f"cannot isolate the resolver: {done.stderr.strip()[:300]}")
        raise AssertionError(f"the DNS child failed ({done.returncode}):\n{done.stderr}")
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def figure(check: dict[str, Any], label: str) -> str:
    overrun = max(0.0, check["elapsed"] - check["timeout"])
    OVERRUNS.note(label, overrun)
    return (
        f"{label}: {check['status']} in {check['elapsed'] * 1000:.0f} ms (timeout "
        f"{check['timeout'] * 1000:.0f} ms, overrun {overrun * 1000:.1f} ms): {check['message']}"
    )


def test_a_name_that_does_not_resolve(isolated, fault_figures):
    for check in isolated["nxdomain"]:
        fault_figures.add(figure(check, f"{check['name']}: NXDOMAIN"))
        assert check["status"] == "down"
        assert check["message"] == "name resolution failed for host nx.probe.test"
        assert check["elapsed"] < check["timeout"]  # an answer, not a timeout
    assert "nx.probe.test" in isolated["queries_seen"]  # asked of our server, nobody else


def test_a_resolver_that_never_answers(isolated, fault_figures):
    for check in isolated["silent"]:
        fault_figures.add(figure(check, f"{check['name']}: resolver never answers"))
        assert check["status"] == "down"
        assert check["message"] == "timeout after 500ms during resolve"
        assert check["elapsed"] < check["timeout"] + SLACK
        assert not check["straggler"]


def test_what_a_silent_resolver_does_to_the_executor_threads(isolated, fault_figures):
    # getaddrinfo cannot be cancelled: the check ends at its timeout, the thread it ran in
    # stays blocked for the resolver's own timeout (here `timeout:1 attempts:1`; glibc's
    # default is 5 s x 2 attempts). Checks of one name share one lookup (one thread); a name
    # from /etc/hosts needs no thread, so silent lookups filling every thread cannot stall it.
    flood = isolated["flood"]
    distinct = isolated["distinct_flood"]
    meanwhile = isolated["hosts_file_name_meanwhile"]
    fault_figures.add(
        f"silent resolver: one lookup held an executor thread "
        f"{isolated['lookup_held_thread_s']:.2f} s ({isolated['lookup_error']}); "
        f"{flood['checks']} checks of one silent name at once: all down within "
        f"{flood['longest'] * 1000:.0f} ms (timeout 300 ms) on "
        f"{flood['threads'] - flood['threads_before']} new thread(s); "
        f"{distinct['checks']} silent names at once: all down within "
        f"{distinct['longest'] * 1000:.0f} ms, {distinct['threads']} threads busy; "
        f"localhost (from /etc/hosts) meanwhile: {meanwhile['message']}; a no-op executor job "
        f"then waited {isolated['noop_job_waited_s'] * 1000:.0f} ms; after: "
        f"{isolated['hosts_file_name_after']['message']}"
    )
    assert flood["down"] == flood["checks"]
    assert flood["stragglers"] == 0
    assert flood["longest"] < 0.3 + SLACK
    assert flood["threads"] - flood["threads_before"] <= 1  # one shared lookup
    assert distinct["down"] == distinct["checks"]
    assert distinct["longest"] < 0.3 + SLACK
    assert distinct["threads"] <= 64
    # The hosts file is read without a thread: localhost answers while every thread waits.
    assert meanwhile["message"] == "connection refused"
    assert isolated["hosts_file_name_after"]["message"] == "connection refused"
