"""The host prober against a real OpenSSH server (a private sshd on loopback, as for the ssh
prober: tests/support/sshd.py), reading this machine's own CPU, memory, disk and load.

The readings are whatever this machine has, so the thresholds force the outcome: a tiny one
(0.0001: memory and / are never empty) makes a resource over; 1.0 keeps memory and disk
under (neither is ever 100% here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from probe import assembly, cli
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError
from probe.probers._ssh import SSHEndpoint
from probe.probers.base import SharedResources
from probe.probers.host import HostProber, HostSpec, Threshold, parse_readings
from tests.support import probers as scenarios
from tests.support.daemons import free_port, require_binary
from tests.support.sshd import SSH_PASSWORD, SSH_USER, PrivateSSHD

WRONG = "not-the-password-7"
# Load averages never trip here: the machine's load is not what these tests are about.
CALM_LOAD = {"m1": 1000.0, "m5": 1000.0, "m15": 1000.0}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateSSHD]:
    require_binary("sshd", "openssh-server")
    directory = tmp_path_factory.mktemp("host")
    with PrivateSSHD(directory / "sshd", authorized=[]) as server:
        (directory / "known_hosts").write_text(server.known_hosts_line())
        yield server


def make(sshd: PrivateSSHD, resources: SharedResources, **keys: Any) -> HostProber:
    keys.setdefault("name", "box")
    keys.setdefault("host", f"{SSH_USER}@{sshd.address}")
    keys.setdefault("password", SSH_PASSWORD)
    keys.setdefault("known_hosts", sshd.directory.parent / "known_hosts")
    keys.setdefault("timeout", "5s")
    threshold = dict(keys.pop("threshold", {}))
    threshold.setdefault("load", CALM_LOAD)
    return HostProber(HostSpec(threshold=threshold, **keys), resources)


@pytest.fixture
def mk(sshd: PrivateSSHD, resources: SharedResources) -> Callable[..., HostProber]:
    return partial(make, sshd, resources)


async def test_under_the_thresholds(mk: Callable[..., HostProber]) -> None:
    prober = mk(threshold={"mem": 1.0, "disk": 1.0, "cpu": 1.0})
    run = await run_check(prober)
    result = run.result
    details = result.details
    assert 0.0 < details["mem"] < 1.0
    assert 0.0 < details["disks"]["/"] < 1.0
    assert 0.0 <= details["cpu"] <= 1.0
    assert details["cpus"] >= 1
    if details["cpu"] >= 1.0:
        # Every CPU busy for the whole 0.2 s sample (a loaded machine): cpu is over, alone.
        assert result.message.startswith("over threshold: cpu 100.0% >= 100%")
        return
    assert result.status is Status.UP, result.message
    assert result.message.startswith("cpu ")
    assert f"disk / {details['disks']['/'] * 100:.1f}%" in result.message
    assert prober.endpoint == f"{SSH_USER}@{prober.spec.address()}"


async def test_over_the_thresholds_names_each_resource(mk: Callable[..., HostProber]) -> None:
    prober = mk(threshold={"mem": 0.0001, "disk": 0.0001, "cpu": 1.0}, disks=["/", "/tmp"])
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    message = result.message
    assert message.startswith("over threshold: ")
    assert f"mem {result.details['mem'] * 100:.1f}% >= 0.01%" in message
    for mount in ("/", "/tmp"):
        assert f"disk {mount} {result.details['disks'][mount] * 100:.1f}% >= 0.01%" in message


async def test_the_load_per_cpu(mk: Callable[..., HostProber]) -> None:
    # A negative load average cannot be; 0 means the default (0.8): a threshold of ~0 trips
    # only when the load is not 0, which /proc/loadavg over 15 minutes of tests never is.
    prober = mk(threshold={"mem": 1.0, "disk": 1.0, "load": {"M15": 0.000001}})
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert "load m15 " in result.message and "per CPU > 0.00" in result.message


async def test_conditions_read_the_figures(mk: Callable[..., HostProber]) -> None:
    prober = mk(
        threshold={"mem": 1.0, "disk": 1.0, "cpu": 1.0},
        conditions=["[MEM] < 0.000001"],
    )
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert "[MEM]" in result.message


async def test_a_missing_disk(mk: Callable[..., HostProber]) -> None:
    result = (await run_check(mk(disks=["/", "/no/such/mount"]))).result
    assert result.status is Status.DOWN
    assert result.message == "cannot read disk /no/such/mount: no such file or directory"


async def test_wrong_password(mk: Callable[..., HostProber]) -> None:
    await scenarios.assert_authentication_failure(mk(password=WRONG), SSH_USER, WRONG, SSH_PASSWORD)


async def test_refused_and_silent(
    mk: Callable[..., HostProber], sshd: PrivateSSHD, open_fds: Callable[[], int]
) -> None:
    result = (await run_check(mk(host=f"{SSH_USER}@127.0.0.1:{free_port()}"))).result
    assert result.message == "connection refused"

    def through(host: str, **keys: Any) -> HostProber:
        return mk(host=f"{SSH_USER}@{host}", insecure=True, **keys)

    await scenarios.assert_silent_port_times_out(
        sshd.address, through, "handshake", open_fds=open_fds
    )


async def test_through_a_bastion(mk: Callable[..., HostProber], sshd: PrivateSSHD) -> None:
    jump = SSHEndpoint(host=f"{SSH_USER}@{sshd.address}", password=SSH_PASSWORD, insecure=True)
    result = (await run_check(mk(bastion=jump, threshold={"mem": 0.0001, "cpu": 1.0}))).result
    assert result.status is Status.DOWN
    assert f"mem {result.details['mem'] * 100:.1f}% >= 0.01%" in result.message


async def test_no_descriptor_leak(
    mk: Callable[..., HostProber], open_fds: Callable[[], int]
) -> None:
    # Each check waits out the 0.2 s CPU sample: 10 rounds keep this quick (a descriptor
    # kept per check would show as 10).
    prober = mk(threshold={"mem": 1.0, "disk": 1.0, "cpu": 1.0})
    await run_check(prober)
    before = open_fds()
    for _ in range(10):
        await run_check(prober)
    assert open_fds() <= before + 2


def test_parse_readings() -> None:
    text = (
        "cpu cpu 100 0 100 800 0 0 0 0 0 0\n"
        "cpu cpu 150 0 150 900 0 0 0 0 0 0\n"
        "mem MemTotal: 1000 kB MemAvailable: 250 kB\n"
        "load 1.00 2.00 4.00 1/100 99\n"
        "cpus 2\n"
        "disk / /dev/sda1 1000 900 100 90% /\n"
    )
    readings = parse_readings(text, ["/"])
    assert readings.cpu == 0.5
    assert readings.mem == 0.75
    assert readings.disks == {"/": 0.9}
    assert readings.load == {"m1": 0.5, "m5": 1.0, "m15": 2.0}
    with pytest.raises(ValueError, match="no memory figures"):
        parse_readings(text.replace("MemAvailable", "X"), ["/"])


def test_thresholds_default_as_in_easeprobe() -> None:
    assert Threshold().limits() == {
        "cpu": 0.8,
        "mem": 0.8,
        "disk": 0.95,
        "m1": 0.8,
        "m5": 0.8,
        "m15": 0.8,
    }
    assert Threshold(cpu=0.5, load={"M5": 2}).limits()["m5"] == 2
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Threshold(cpu=80)
    with pytest.raises(ValidationError, match="unknown load average"):
        Threshold(load={"m2": 1})


MANUAL = """\
host:
  bastion:
    aws:
      host: ubuntu@example.com
      key: /path/to/bastion.pem
  servers:
    - name : aws server
      bastion: aws
      host: ubuntu@172.20.2.202:22
      key: /path/to/server.pem
      disks:
        - /
        - /data
      threshold:
        cpu: 0.80
        mem: 0.70
        disk: 0.90
        load:
          m1: 0.5
          m5: 0.9
          m15: 0.9
    - name : My VPS
      host: user@example.com:22
      key: /Users/user/.ssh/id_rsa
"""


def test_probe_check_accepts_the_easeprobe_manual_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(MANUAL)
    # `probe check` in this process (its exit status and output, as the command gives them).
    assert cli.main(["check", "-c", str(path)]) == 0
    assert "OK" in capsys.readouterr().out
    aws, vps = assembly.load_config(path, environ={}).probes
    assert isinstance(aws, HostSpec) and isinstance(vps, HostSpec)
    assert aws.mounts() == ["/", "/data"]
    assert aws.threshold.limits()["m1"] == 0.5
    assert vps.mounts() == ["/"] and vps.threshold.limits()["disk"] == 0.95
    assert aws.bastion is not None and aws.bastion.shown() == "ubuntu@example.com:22"


def test_a_bad_threshold_is_located(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        "host:\n  servers:\n    - name: a\n      host: u@h\n      password: p\n"
        "      threshold: {cpu: 80}\n      disks: [data]\n"
    )
    with pytest.raises(ConfigError) as info:
        assembly.load_config(path, environ={})
    lines = [line.replace(str(tmp_path) + "/", "") for line in str(info.value).splitlines()]
    assert lines == [
        "probes.yaml:6:24: host.servers[0].threshold.cpu: must be at most 1.0, got 80",
        "probes.yaml:7:15: host.servers[0].disks[0]: "
        "expected an absolute path without spaces, as /data",
    ]


def test_easeprobe_ssh_keys_on_a_host_load_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        "host:\n  servers:\n    - {name: a, host: u@h, password: p, cmd: uptime, contain: up}\n"
    )
    config = assembly.load_config(path, environ={})
    assert [w.message for w in config.warnings] == [
        "accepted for EaseProbe compatibility; not used"
    ] * 2
