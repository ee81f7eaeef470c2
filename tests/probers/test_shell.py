"""Shell prober: real commands (sh, env, printf, sleep) run as child processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from probe.assembly import load_config
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError
from probe.probers.base import SharedResources
from probe.probers.shell import MAX_OUTPUT, ShellProber, ShellSpec, _shell_word
from tests.support.probers import failure


def make(resources: SharedResources, cmd: str, *args: str, **keys: object) -> ShellProber:
    keys.setdefault("timeout", "5s")
    return ShellProber(ShellSpec(name="sh", cmd=cmd, args=list(args), **keys), resources)


def sh(resources: SharedResources, script: str, **keys: object) -> ShellProber:
    return make(resources, "sh", "-c", script, **keys)


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie, dead and waiting for its parent to reap it,
    is not: the orphans of a killed command are reaped by init, which may take a moment)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def gone(*pids: int) -> bool:
    # Up to 5 s: on a loaded machine the killed processes can take a while to be scheduled
    # out of existence; what matters is that they go, not how fast.
    for _ in range(250):
        if not any(running(pid) for pid in pids):
            return True
        await asyncio.sleep(0.02)
    return False


def my_children() -> list[int]:
    """Processes whose parent is this one (zombies included)."""
    children = []
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[1] == me:
            children.append(int(entry))
    return children


# --- exit status and output ------------------------------------------------------------------


async def test_exit_zero_is_up(resources):
    ctx = CheckContext()
    outcome = await sh(resources, "echo hello").check(ctx)
    assert outcome.ok
    assert outcome.message == "exit status 0"
    assert outcome.details["exit_status"] == 0
    assert outcome.details["output"] == "hello\n"
    assert outcome.details["output_bytes"] == 6
    assert outcome.details["truncated"] is False
    assert outcome.details["command"] == "sh -c 'echo hello'"


async def test_nonzero_exit_is_down_with_the_last_line(resources):
    outcome = await sh(resources, "printf 'first\\n  second line  \\n\\n'; exit 3").check(
        CheckContext()
    )
    assert not outcome.ok
    assert outcome.message == "exit status 3: second line"
    assert outcome.details["exit_status"] == 3


async def test_nonzero_exit_without_output(resources):
    outcome = await sh(resources, "exit 7").check(CheckContext())
    assert outcome.message == "exit status 7"


async def test_stderr_is_combined_with_stdout(resources):
    outcome = await sh(resources, "echo out; echo oops >&2; exit 1").check(CheckContext())
    assert outcome.message == "exit status 1: oops"
    assert outcome.details["output"] == "out\noops\n"


async def test_long_last_line_is_trimmed(resources):
    outcome = await sh(resources, "printf 'x%.0s' $(seq 1 500); exit 2").check(CheckContext())
    assert outcome.message == "exit status 2: " + "x" * 197 + "..."


async def test_killed_by_a_signal(resources):
    outcome = await sh(resources, "kill -TERM $$").check(CheckContext())
    assert not outcome.ok
    assert outcome.message == "killed by SIGTERM"
    assert outcome.details["exit_status"] == -signal.SIGTERM


async def test_arguments_go_to_the_command_as_they_are(resources):
    # No shell in between: no expansion, no word splitting.
    outcome = await make(resources, "printf", "%s|", "$HOME", "a b", "*").check(CheckContext())
    assert outcome.details["output"] == "$HOME|a b|*|"


async def test_stdin_is_empty(resources):
    outcome = await make(resources, "cat").check(CheckContext())
    assert outcome.ok
    assert outcome.details["output"] == ""


# --- contain / not_contain / regex -----------------------------------------------------------


async def test_contain(resources):
    script = "echo 'status: ok (3 replicas)'"
    assert (await sh(resources, script, contain="ok (3").check(CheckContext())).ok
    outcome = await sh(resources, script, contain="degraded").check(CheckContext())
    assert not outcome.ok
    assert outcome.message == 'output does not contain "degraded"'


async def test_not_contain(resources):
    outcome = await sh(resources, "echo 'ERROR: disk full'", not_contain="ERROR").check(
        CheckContext()
    )
    assert not outcome.ok
    assert outcome.message == 'output contains "ERROR"'
    assert (await sh(resources, "echo fine", not_contain="ERROR").check(CheckContext())).ok


async def test_regex(resources):
    script = "echo 'replicas: 3/3'"
    ok = sh(resources, script, regex=True, contain=r"replicas: (\d+)/\1$")
    assert (await ok.check(CheckContext())).ok
    outcome = await sh(resources, script, regex=True, contain=r"^up").check(CheckContext())
    assert outcome.message == 'output does not match "^up"'
    outcome = await sh(resources, script, regex=True, not_contain=r"\d/\d").check(CheckContext())
    assert outcome.message == 'output matches "\\d/\\d"'
    # Without regex: the same text is literal.
    literal = sh(resources, "echo 'a.c'", contain="a.c")
    assert (await literal.check(CheckContext())).ok
    assert not (await sh(resources, "echo abc", contain="a.c").check(CheckContext())).ok


async def test_exit_status_is_judged_before_the_output(resources):
    outcome = await sh(resources, "echo ok; exit 1", contain="ok").check(CheckContext())
    assert outcome.message == "exit status 1: ok"


async def test_output_beyond_the_limit_is_drained_not_kept(resources):
    # 3 MiB of output, a marker at the very end: the command is never blocked on a full pipe,
    # only the first MiB is searched, and the last line still comes from the real end.
    script = f"head -c {3 * MAX_OUTPUT} /dev/zero | tr '\\0' a; echo; echo END-MARKER"
    prober = sh(resources, script, contain="END-MARKER")
    outcome = await prober.check(CheckContext())
    assert not outcome.ok
    assert (
        outcome.message == f'output does not contain "END-MARKER" (in the first {MAX_OUTPUT} bytes)'
    )
    assert outcome.details["truncated"] is True
    assert outcome.details["output_bytes"] == 3 * MAX_OUTPUT + len("\nEND-MARKER\n")
    assert outcome.details["output"].endswith("END-MARKER\n")
    assert len(outcome.details["output"]) <= 1000
    failing = sh(resources, script + "; exit 4")
    assert (await failing.check(CheckContext())).message == "exit status 4: END-MARKER"


# --- environment -----------------------------------------------------------------------------


# --- conditions: [EXIT_CODE] and [OUTPUT] (judged by the runner, through run_check) ----------


async def test_exit_code_condition_judges_the_exit_status(resources):
    prober = sh(resources, "echo draining; exit 3", conditions=["[EXIT_CODE] == 3"])
    result = (await run_check(prober)).result
    assert result.status is Status.UP, result.message
    assert result.message == "exit status 3"
    # Exit 0 is no longer good by itself: the condition says 3.
    prober = sh(resources, "exit 0", conditions=["[EXIT_CODE] == 3"])
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == "condition failed: [EXIT_CODE] (0) == 3"
    # A command killed by a signal has a negative code.
    prober = sh(resources, "kill -TERM $$", conditions=["[EXIT_CODE] < 0"])
    result = (await run_check(prober)).result
    assert result.status is Status.UP, result.message
    assert result.message == "killed by SIGTERM"


async def test_exit_code_condition_keeps_contain(resources):
    prober = sh(resources, "echo busy; exit 3", conditions=["[EXIT_CODE] == 3"], contain="idle")
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == 'output does not contain "idle"'


async def test_without_an_exit_code_condition_nonzero_is_down(resources):
    prober = sh(resources, "echo ready; exit 1", conditions=["[OUTPUT] == pat(*ready*)"])
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == "exit status 1: ready"
    assert "failed_conditions" not in result.details


async def test_output_condition(resources):
    script = "echo 'starting'; echo 'service ready on :8080'"
    prober = sh(resources, script, conditions=["[OUTPUT] == pat(*ready*)"])
    result = (await run_check(prober)).result
    assert result.status is Status.UP, result.message
    prober = sh(resources, script, conditions=["[OUTPUT] == pat(*stopped*)"])
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == (
        "condition failed: [OUTPUT] (starting service ready on :8080 ) == pat(*stopped*)"
    )
    ctx = CheckContext()
    prober = sh(resources, script, conditions=["len([OUTPUT]) > 10"])
    await prober.check(ctx)
    assert ctx.facts == {"EXIT_CODE": 0, "OUTPUT": "starting\nservice ready on :8080\n"}


async def test_output_fact_masks_secrets_and_is_bounded(resources):
    secret = "hunter2-s3cret"
    prober = sh(
        resources,
        f'echo "token $API_TOKEN"; head -c {2 * MAX_OUTPUT} /dev/zero | tr "\\0" a',
        env=[f"API_TOKEN={secret}"],
        conditions=["[OUTPUT] == pat(nothing*)"],
    )
    ctx = CheckContext()
    await prober.check(ctx)
    output = ctx.facts["OUTPUT"]
    assert output.startswith("token ***\n")
    assert secret not in output
    assert len(output) <= MAX_OUTPUT
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message.startswith("condition failed: [OUTPUT] (token ***")
    assert secret not in result.message


async def test_output_is_read_only_when_a_condition_asks(resources):
    ctx = CheckContext()
    await sh(resources, "echo hello").check(ctx)
    assert ctx.facts == {"EXIT_CODE": 0}


def test_shell_placeholders_at_load(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "shell:\n"
        "  - name: job\n"
        "    cmd: sh\n"
        "    conditions: ['[EXIT_CODE] == 3', '[OUTPUT] == pat(*ok*)', '[STATUS] == 200']\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert "shell[0].conditions[2]: [STATUS] is not a placeholder of shell probes" in str(problem)


async def test_env_is_added_to_this_process_environment(resources, monkeypatch):
    monkeypatch.setenv("PROBE_TEST_INHERITED", "from-parent")
    # Values of 3 characters or fewer are not masked in the output shown (see the next tests).
    outcome = await make(resources, "env", env=["A=1", "B=x=2", "A=3"]).check(CheckContext())
    lines = outcome.details["output"].splitlines()
    assert "PROBE_TEST_INHERITED=from-parent" in lines
    assert "B=x=2" in lines
    assert "A=3" in lines and "A=1" not in lines  # the later entry wins, as in Go


async def test_clean_env(resources, monkeypatch):
    monkeypatch.setenv("PROBE_TEST_INHERITED", "from-parent")
    # `env` is still found through this process's PATH, as EaseProbe does.
    outcome = await make(resources, "env", env=["ONLY=yes"], clean_env=True).check(CheckContext())
    assert outcome.ok
    assert outcome.details["output"] == "ONLY=yes\n"


async def test_env_values_never_shown(resources):
    secret = "hunter2-s3cret"
    prober = sh(
        resources,
        'echo "token is $API_TOKEN"; echo "pin $DB_PASS"; exit 1',
        env=[f"API_TOKEN={secret}", "DB_PASS=42"],
    )
    outcome = await prober.check(CheckContext())
    # DB_PASS looks like a secret: masked however short.
    assert outcome.message == "exit status 1: pin ***"
    assert secret not in repr(outcome.details)
    assert "token is ***" in outcome.details["output"]
    assert secret not in prober.endpoint and secret not in repr(prober.spec)
    contain = sh(resources, 'echo "$API_TOKEN"', env=[f"API_TOKEN={secret}"], contain=secret)
    assert (await contain.check(CheckContext())).ok
    not_contain = sh(
        resources, 'echo "$API_TOKEN"', env=[f"API_TOKEN={secret}"], not_contain=secret
    )
    outcome = await not_contain.check(CheckContext())
    assert outcome.message == 'output contains "***"'


def test_endpoint_hides_secret_looking_arguments():
    spec = ShellSpec(
        name="x",
        cmd="mysqladmin",
        args=["--password=pw1", "--token", "pw2", "ping", "https://u:pw3@db.lan/x", "-v"],
    )
    shown = spec.endpoint()
    assert shown == "mysqladmin '--password=***' --token '***' ping https://db.lan/x -v"
    assert not any(s in shown for s in ("pw1", "pw2", "pw3"))


def test_endpoint_quotes_readably():
    script = "df -P . | awk 'NR==2 { exit ($5+0 > 95) }'"
    spec = ShellSpec(name="x", cmd="sh", args=["-c", script])
    assert spec.endpoint() == "sh -c \"df -P . | awk 'NR==2 { exit (\\$5+0 > 95) }'\""


@settings(max_examples=60, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
)
def test_endpoint_words_read_back_by_sh(word):
    # What the endpoint shows is a command line: sh reads each word back as it was.
    shown = _shell_word(word)
    out = subprocess.run(
        ["/bin/sh", "-c", f"printf '%s' {shown}"], capture_output=True, check=True
    ).stdout
    assert out == word.encode("utf-8", "surrogateescape")


# --- starting failures -----------------------------------------------------------------------


def script_file(directory: Path, text: str, mode: int = 0o755) -> Path:
    """`directory`/check.sh holding `text`, with permissions `mode`."""
    path = directory / "check.sh"
    path.write_text(text)
    path.chmod(mode)
    return path


async def test_missing_command(resources):
    error = await failure(make(resources, "no-such-command-probe-test"))
    assert error.message == "command not found: no-such-command-probe-test"
    error = await failure(make(resources, "/nonexistent/check.sh"))
    assert error.message == "command not found: /nonexistent/check.sh"


async def test_not_executable(resources, tmp_path):
    script = script_file(tmp_path, "#!/bin/sh\necho hi\n", mode=0o644)
    error = await failure(make(resources, str(script)))
    assert error.message == f"cannot run {script}: permission denied"


async def test_missing_interpreter(resources, tmp_path):
    script = script_file(tmp_path, "#!/nonexistent/interpreter\necho hi\n")
    error = await failure(make(resources, str(script)))
    assert error.message == f"cannot run {script}: its interpreter was not found"


async def test_script_file_runs(resources, tmp_path):
    script = script_file(tmp_path, '#!/bin/sh\necho "args: $*"\n')
    outcome = await make(resources, str(script), "a", "b").check(CheckContext())
    assert outcome.ok
    assert outcome.details["output"] == "args: a b\n"


# --- timeouts, cancellation and what is left behind ------------------------------------------


def spawner(pids: Path) -> str:
    """A script that starts a `sleep 60` grandchild, writes both pids, and waits."""
    return f"sleep 60 & echo $$ $! > {pids}; wait"


async def read_pids(path: Path) -> tuple[int, int]:
    for _ in range(100):
        if path.exists() and path.read_text().count(" ") == 1:
            text = path.read_text().split()
            if len(text) == 2:
                return int(text[0]), int(text[1])
        await asyncio.sleep(0.01)
    raise AssertionError("the script did not write its pids")


@pytest.mark.slow
async def test_timeout_kills_the_whole_process_group(resources, tmp_path):
    pids = tmp_path / "pids"
    started = time.monotonic()
    run = await run_check(sh(resources, spawner(pids), timeout="1s"))
    assert run.result.message == "timeout after 1s during running the command"
    assert run.result.status.value == "down"
    assert time.monotonic() - started < 2.0
    assert run.straggler is None
    leader, grandchild = await read_pids(pids)
    assert await gone(leader, grandchild), "the command or its grandchild survived"
    assert leader not in my_children()  # reaped, not a zombie


@pytest.mark.slow
async def test_cancellation_kills_the_whole_process_group(resources, tmp_path):
    pids = tmp_path / "pids"
    ctx = CheckContext()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await sh(resources, spawner(pids)).check(ctx)
    assert ctx.phase == "running the command"
    leader, grandchild = await read_pids(pids)
    assert await gone(leader, grandchild)
    assert leader not in my_children()


@pytest.mark.slow
async def test_background_process_holding_the_output_is_killed(resources, tmp_path):
    pids = tmp_path / "pids"
    started = time.monotonic()
    outcome = await sh(resources, f"sleep 60 & echo $$ $! > {pids}; echo started").check(
        CheckContext()
    )
    assert time.monotonic() - started < 3.0
    assert outcome.ok
    assert outcome.details["output"] == "started\n"
    assert outcome.details["killed_background_processes"] is True
    _leader, grandchild = await read_pids(pids)
    assert await gone(grandchild)


async def test_background_process_with_its_own_output_is_left_alone(resources, tmp_path):
    # As with EaseProbe: a command may start a daemon that redirects its output.
    pids = tmp_path / "pids"
    outcome = await sh(
        resources, f"sleep 60 >/dev/null 2>&1 & echo $$ $! > {pids}; echo started"
    ).check(CheckContext())
    assert outcome.ok
    assert "killed_background_processes" not in outcome.details
    _leader, grandchild = await read_pids(pids)
    try:
        assert running(grandchild)
    finally:
        os.kill(grandchild, signal.SIGKILL)


@pytest.mark.slow
async def test_no_descriptor_or_process_leaks_after_many_checks(resources, open_fds):
    ok = make(resources, "true")
    failing = sh(resources, "echo no; exit 1")
    await ok.check(CheckContext())
    before = open_fds()
    for _ in range(200):
        assert (await ok.check(CheckContext())).ok
    for _ in range(20):
        assert not (await failing.check(CheckContext())).ok
        run = await run_check(sh(resources, "sleep 30", timeout="0.05s"))
        assert run.result.message == "timeout after 50ms during running the command"
    for _ in range(100):
        if open_fds() <= before and not my_children():
            break
        await asyncio.sleep(0.02)
    assert open_fds() <= before
    assert my_children() == []


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"cmd": ""}, "at least 1 character"),
        ({"cmd": "x", "env": ["NOVALUE"]}, 'env[0]: expected "NAME=value"'),
        ({"cmd": "x", "env": ["A=1", "=secretvalue"]}, 'env[1]: expected "NAME=value"'),
        ({"cmd": "x", "regex": True, "contain": "(unclosed"}, "invalid regular expression"),
        ({"cmd": "x", "args": "not a list"}, "valid list"),
        ({"cmd": "x", "shell": "bash"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_spec(keys, needle):
    with pytest.raises(ValidationError) as caught:
        ShellSpec(name="s", **keys)
    assert needle in str(caught.value)


def test_easeprobe_file_loads(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "shell:\n"
        "  - name: redis-cli\n"
        "    cmd: /usr/bin/redis-cli\n"
        '    args: ["-h", "127.0.0.1", "ping"]\n'
        '    env: ["REDISCLI_AUTH=${REDIS_PASSWORD}"]\n'
        "    clean_env: true\n"
        "    contain: PONG\n"
        "    not_contain: ''\n"
        "    regex: false\n"
        "    timeout: 5s\n"
    )
    cfg = load_config(path, environ={"REDIS_PASSWORD": "pw"})
    (spec,) = cfg.probes
    assert isinstance(spec, ShellSpec)
    assert spec.kind == "shell"
    assert spec.args == ["-h", "127.0.0.1", "ping"]
    assert spec.env == ["REDISCLI_AUTH=pw"]
    assert spec.clean_env and spec.contain == "PONG" and spec.not_contain is None
    assert spec.endpoint() == "/usr/bin/redis-cli -h 127.0.0.1 ping"


def test_config_error_does_not_echo_env_values(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text("shell:\n  - name: a\n    cmd: x\n    env: [hunter2]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    text = str(caught.value)
    assert text == f'{path}:4:10: shell[0].env: env[0]: expected "NAME=value"'
    assert "hunter2" not in text
