"""The ssh prober against a real OpenSSH server.

A private sshd (Debian's openssh-server, tests/support/sshd.py) runs on a free loopback port
with a host key of its own; the user probe-ssh logs in by password or by key. The same server
is the bastion (jump host) of the bastion tests: it forwards a TCP channel to itself. Outages
and silent ports go through a TCPProxy, never touching the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from probe import assembly, cli
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError
from probe.probers._ssh import SSHEndpoint
from probe.probers.base import SharedResources
from probe.probers.ssh import SSHProber, SSHSpec
from tests.support import probers as scenarios
from tests.support.daemons import free_port, require_binary
from tests.support.probers import failure
from tests.support.sshd import SSH_PASSWORD, SSH_USER, PrivateSSHD, make_key

PASSPHRASE = "pass-phrase-5ecret"
WRONG = "not-the-password-9"


class Server:
    """The private sshd, the key files and a known_hosts file holding its host key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = directory / "id_ed25519"
        self.stranger = directory / "stranger"  # a key the server does not know
        make_key(self.stranger)
        self.sshd = PrivateSSHD(
            directory / "sshd", authorized=[make_key(self.key, passphrase=PASSPHRASE)]
        )
        self.known_hosts = directory / "known_hosts"

    @property
    def address(self) -> str:
        return self.sshd.address


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_binary("sshd", "openssh-server")
    found = Server(tmp_path_factory.mktemp("ssh"))
    with found.sshd:
        found.known_hosts.write_text(found.sshd.known_hosts_line())
        yield found


def make(server: Server, resources: SharedResources, **keys: Any) -> SSHProber:
    keys.setdefault("name", "ssh")
    keys.setdefault("host", server.address)
    keys.setdefault("username", SSH_USER)
    if "key" not in keys:
        keys.setdefault("password", SSH_PASSWORD)
    keys.setdefault("known_hosts", server.known_hosts)
    keys.setdefault("cmd", "echo ok")
    keys.setdefault("timeout", "5s")
    return SSHProber(SSHSpec(**keys), resources)


@pytest.fixture
def mk(server: Server, resources: SharedResources) -> Callable[..., SSHProber]:
    return partial(make, server, resources)


# --- up ---------------------------------------------------------------------------------------


async def test_password_login_runs_the_command(mk: Callable[..., SSHProber]) -> None:
    prober = mk(cmd="echo", args=["hello world", "$HOME"], contain="hello world $HOME")
    run = await run_check(prober)
    assert run.result.status is Status.UP, run.result.message
    assert run.result.message == "exit status 0"
    # args are words, quoted: `$HOME` reaches echo as written.
    assert prober.endpoint == f"{SSH_USER}@{prober.spec.address()} echo 'hello world' '$HOME'"
    assert SSH_PASSWORD not in prober.endpoint
    assert SSH_PASSWORD not in repr(prober.spec)


async def test_key_login_with_a_passphrase(mk: Callable[..., SSHProber], server: Server) -> None:
    prober = mk(key=server.key, passphrase=PASSPHRASE, cmd="id -un", contain=SSH_USER)
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    assert outcome.details["output"].strip() == SSH_USER
    assert PASSPHRASE not in repr(prober.spec)


async def test_the_shell_runs_cmd_and_env_is_exported(mk: Callable[..., SSHProber]) -> None:
    # EaseProbe's `cmd: "ps -ef | grep kafka"`: the remote shell reads cmd.
    prober = mk(
        cmd='echo "$GREETING" | tr a-z A-Z',
        env=["GREETING=hello", "API_TOKEN=tok-1234567"],
        contain="HELLO",
        with_output=True,
    )
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    assert outcome.message == "exit status 0; output: HELLO"


# --- down: what the command says --------------------------------------------------------------


async def test_a_non_zero_exit_is_down_with_stderr(mk: Callable[..., SSHProber]) -> None:
    result = (
        await run_check(mk(cmd="echo out; echo 'it broke' >&2; echo more >&2; exit 1"))
    ).result
    assert result.status is Status.DOWN
    assert result.message == "exit status 1: it broke"


async def test_output_checks(mk: Callable[..., SSHProber]) -> None:
    cases = {
        'output does not contain "PONG"': {"contain": "PONG"},
        'output contains "ok"': {"not_contain": "ok"},
        r'output does not match "^\d+$"': {"contain": r"^\d+$", "regex": True},
    }
    for message, keys in cases.items():
        result = (await run_check(mk(**keys))).result
        assert result.status is Status.DOWN
        assert result.message == message
    assert (await run_check(mk(cmd="echo 42", contain=r"^\d+$", regex=True))).result.status is (
        Status.UP
    )


async def test_a_condition_on_the_exit_code_judges_it(mk: Callable[..., SSHProber]) -> None:
    prober = mk(cmd="echo three; exit 3", conditions=["[EXIT_CODE] == 3", '[OUTPUT] == "three\n"'])
    result = (await run_check(prober)).result
    assert result.status is Status.UP, result.message


async def test_env_secrets_are_masked_in_what_is_shown(mk: Callable[..., SSHProber]) -> None:
    secret = "s3cr3t-value-42"
    prober = mk(cmd="echo $API_TOKEN; exit 2", env=[f"API_TOKEN={secret}"], with_output=True)
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    scenarios.assert_no_secret(result, prober, secret, SSH_PASSWORD)
    assert "***" in result.details["output"]


# --- down: authentication ---------------------------------------------------------------------


async def test_wrong_password(mk: Callable[..., SSHProber]) -> None:
    await scenarios.assert_authentication_failure(mk(password=WRONG), SSH_USER, WRONG, SSH_PASSWORD)


async def test_a_key_the_server_does_not_know(mk: Callable[..., SSHProber], server: Server) -> None:
    await scenarios.assert_authentication_failure(mk(key=server.stranger), SSH_USER)


async def test_wrong_or_missing_passphrase(mk: Callable[..., SSHProber], server: Server) -> None:
    error = await failure(mk(key=server.key, passphrase=WRONG))
    assert error.message == f"cannot decrypt the private key {server.key}: wrong passphrase"
    scenarios.assert_no_secret(error, mk(key=server.key, passphrase=WRONG), WRONG, PASSPHRASE)
    error = await failure(mk(key=server.key))
    assert error.message == f"the private key {server.key} is encrypted: `passphrase` is required"
    error = await failure(mk(key=server.directory / "missing"))
    assert error.message.startswith(f"cannot read the private key {server.directory / 'missing'}")


# --- host keys --------------------------------------------------------------------------------


async def test_an_unknown_host_key_is_refused_by_default(
    server: Server, resources: SharedResources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts there
    keys = {"name": "ssh", "host": server.address, "username": SSH_USER, "cmd": "true"}
    prober = SSHProber(SSHSpec(password=SSH_PASSWORD, **keys), resources)
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == (
        f"the host key of {server.address} is not in ~/.ssh/known_hosts "
        "(add it, or set insecure: true)"
    )
    # Accepted with the opt-out, and when ~/.ssh/known_hosts holds it.
    insecure = SSHProber(SSHSpec(password=SSH_PASSWORD, insecure=True, **keys), resources)
    assert (await run_check(insecure)).result.status is Status.UP
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text(server.sshd.known_hosts_line())
    assert (await run_check(prober)).result.status is Status.UP


async def test_another_host_key_is_refused(mk: Callable[..., SSHProber], server: Server) -> None:
    other = server.directory / "other_known_hosts"
    impostor = make_key(server.directory / "impostor")
    other.write_text(f"[127.0.0.1]:{server.sshd.port} {impostor.export_public_key().decode()}")
    result = (await run_check(mk(known_hosts=other))).result
    assert result.status is Status.DOWN
    assert result.message == (
        f"the host key of {server.address} is not in {other} (add it, or set insecure: true)"
    )


# --- down: the network ------------------------------------------------------------------------


async def test_refused(mk: Callable[..., SSHProber]) -> None:
    result = (await run_check(mk(host=f"127.0.0.1:{free_port()}"))).result
    assert result.status is Status.DOWN
    assert result.message == "connection refused"


async def test_silent_port_times_out(
    mk: Callable[..., SSHProber], server: Server, open_fds: Callable[[], int]
) -> None:
    await scenarios.assert_silent_port_times_out(
        server.address, partial(mk, insecure=True), "handshake", open_fds=open_fds
    )


async def test_outage_and_recovery(mk: Callable[..., SSHProber], server: Server) -> None:
    await scenarios.assert_outage_and_recovery(
        server.address,
        partial(mk, insecure=True),
        {"connection reset by peer", f"connection closed by {server.address}"},
    )


async def test_a_slow_command_is_cut_by_the_timeout(mk: Callable[..., SSHProber]) -> None:
    run = await scenarios.timed_run(mk(cmd="sleep 30", timeout="1s"), within=3.0)
    assert run.straggler is None
    assert run.result.message == "timeout after 1s during running the command"


async def test_cancelled_checks_leave_no_descriptor(
    mk: Callable[..., SSHProber], open_fds: Callable[[], int]
) -> None:
    prober = mk(cmd="sleep 30")
    assert (await run_check(mk())).result.status is Status.UP
    before = open_fds()
    for after in (0.01, 0.05, 0.2, 0.5):
        await scenarios.cancelled(prober, after)
    await scenarios.settle(open_fds, before)


async def test_no_descriptor_leak(
    mk: Callable[..., SSHProber], server: Server, open_fds: Callable[[], int]
) -> None:
    # An SSH login costs both ends a key exchange and sshd a fork (~50 ms): 25 rounds, not
    # 1,000, to stay quick; a descriptor kept per check shows as 25 all the same.
    await scenarios.assert_no_descriptor_leak(mk(), open_fds, rounds=25)
    failing = [mk(password=WRONG), mk(host=f"127.0.0.1:{free_port()}"), mk(cmd="exit 1")]

    async def down(prober: SSHProber) -> None:
        assert (await run_check(prober)).result.status is Status.DOWN

    before = open_fds()
    for _ in range(5):
        await asyncio.gather(*(down(p) for p in failing))
    await scenarios.settle(open_fds, before + 2)


# --- bastion ----------------------------------------------------------------------------------


def bastion(server: Server, **keys: Any) -> SSHEndpoint:
    keys.setdefault("host", f"{SSH_USER}@{server.address}")
    keys.setdefault("password", SSH_PASSWORD)
    keys.setdefault("known_hosts", server.known_hosts)
    return SSHEndpoint(**keys)


async def test_through_a_bastion(mk: Callable[..., SSHProber], server: Server) -> None:
    prober = mk(bastion=bastion(server), key=server.key, passphrase=PASSPHRASE)
    run = await run_check(prober)
    assert run.result.status is Status.UP, run.result.message
    assert run.result.details["bastion_peer"] == server.address


async def test_bastion_failures(mk: Callable[..., SSHProber], server: Server) -> None:
    cases = {
        f'bastion: authentication failed for user "{SSH_USER}"': mk(
            bastion=bastion(server, password=WRONG)
        ),
        "bastion: connection refused": mk(
            bastion=bastion(server, host=f"{SSH_USER}@127.0.0.1:{free_port()}")
        ),
    }
    for message, prober in cases.items():
        result = (await run_check(prober)).result
        assert result.status is Status.DOWN
        assert result.message == message
        scenarios.assert_no_secret(result, prober, WRONG, SSH_PASSWORD)
    port = free_port()
    result = (await run_check(mk(host=f"127.0.0.1:{port}", bastion=bastion(server)))).result
    assert (
        result.message == f"the bastion could not connect to 127.0.0.1:{port}: connection refused"
    )


async def test_a_silent_bastion_times_out(mk: Callable[..., SSHProber], server: Server) -> None:
    async with scenarios.proxy_to(server.address) as proxy:
        proxy.stall()
        jump = bastion(server, host=f"{SSH_USER}@{proxy.address}", insecure=True)
        run = await scenarios.timed_run(mk(bastion=jump, timeout="1s"), within=3.0)
    assert run.straggler is None
    assert run.result.message == "timeout after 1s during bastion handshake"


# --- config -----------------------------------------------------------------------------------

MANUAL = """\
ssh:
  bastion:
    aws:
      host: aws.basition.com:22
      username: ubuntu
      key: /path/to/aws/basion/key.pem
    gcp:
      host: ubuntu@gcp.basition.com:22
      key: /path/to/gcp/basion/key.pem
  servers:
    - name: Redis (AWS)
      bastion: aws
      host: 172.20.2.202:22
      username: ubuntu
      password: xxxxx
      key: /path/to/private.key
      passphrase: xxxxxxx
      cmd: "redis-cli"
      args:
        - "-h"
        - "127.0.0.1"
        - "ping"
      env:
        - "REDISCLI_AUTH=abc123"
      contain : "PONG"
      not_contain: "failure"
      regex: false
    - name:  Kafka (GCP)
      bastion: gcp
      host: 172.10.1.100:22
      username: ubuntu
      key: /path/to/private.key
      cmd: "ps -ef | grep kafka"
"""


def test_probe_check_accepts_the_easeprobe_manual_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(MANUAL)
    # `probe check` in this process (its exit status and output, as the command gives them).
    assert cli.main(["check", "-c", str(path)]) == 0
    assert "OK" in capsys.readouterr().out
    config = assembly.load_config(path, environ={})
    redis, kafka = config.probes
    assert isinstance(redis, SSHSpec) and isinstance(kafka, SSHSpec)
    assert redis.bastion is not None and redis.bastion.login() == ("ubuntu", "aws.basition.com", 22)
    assert kafka.bastion is not None and kafka.bastion.shown() == "ubuntu@gcp.basition.com:22"
    assert redis.endpoint() == "ubuntu@172.20.2.202:22 redis-cli -h 127.0.0.1 ping"
    assert "xxxxx" not in repr(redis)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "ssh:\n  servers:\n    - {name: a, host: 'u@h', password: p, cmd: x, colour: red}\n",
            'probes.yaml:3:51: ssh.servers[0].colour: unknown key "colour"',
        ),
        (
            "ssh:\n  servers:\n    - {name: a, host: 'u@h', password: p, cmd: x, bastion: b}\n",
            'probes.yaml:3:60: ssh.servers[0].bastion: unknown bastion "b" '
            "(known: the section has no `bastion:` map)",
        ),
        (
            "ssh:\n  bastion:\n    b: {host: 'h:22', username: u}\n  servers: []\n",
            "probes.yaml:3:8: ssh.bastion.b: password or key is required (as in EaseProbe)",
        ),
        (
            "ssh:\n  servers:\n    - {name: a, host: 'h:22', password: p, cmd: x}\n",
            'probes.yaml:3:7: ssh.servers[0]: a username is required: `username:` or "user@host"',
        ),
        (
            "ssh:\n  jump: {}\n  servers: []\n",
            'probes.yaml:2:3: ssh.jump: unknown key "jump" (known: servers, bastion)',
        ),
    ],
)
def test_config_errors_are_located(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        assembly.load_config(path, environ={})
    assert [line.replace(str(tmp_path) + "/", "") for line in str(info.value).splitlines()] == [
        expected
    ]


def test_host_forms() -> None:
    keys: dict[str, Any] = {"name": "a", "password": "p", "cmd": "x"}
    assert SSHSpec(host="u@h", **keys).login() == ("u", "h", 22)
    assert SSHSpec(host="h:2222", username="v", **keys).login() == ("v", "h", 2222)
    assert SSHSpec(host="w@[::1]:22", username="v", **keys).login() == ("w", "::1", 22)
    with pytest.raises(ValidationError):
        SSHSpec(host="u@::1", **keys)
