"""Running a user's command: what the shell prober and the shell notifier share.

Both run a configured command without a shell, in a session (process group) of its own so a
timeout can kill everything it started, with stdout and stderr combined; both take and validate
EaseProbe's `cmd` / `args` / `env` / `clean_env` keys the same way (`CommandSpec`), hide
configured env values (possible secrets) in the output they show, and turn a failure to start
into a short message.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shutil
import signal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from probe.text import printable

__all__ = [
    "SECRETISH",
    "CommandSpec",
    "OutputCollector",
    "SecretMasker",
    "check_args",
    "check_cmd",
    "check_env",
    "kill_group",
    "last_line",
    "output_closed",
    "release",
    "short",
    "start_failure",
    "status_text",
]

# Bytes kept from the end of the output, for the message's last line and the details.
TAIL = 4096
# Characters of the last line a failure message quotes.
LAST_LINE = 200

_ENV_NAME = re.compile(r"[^=\0]+")
# Env names that look like they carry a secret: their values are masked whatever their length.
SECRETISH = re.compile(r"pass|pwd|token|secret|key|auth|cred", re.IGNORECASE)
# Configured env values shorter than this are not masked in output (they are not secrets
# worth the noise of masking every "1" or "true").
_MASK_MIN = 4


def check_cmd(value: str) -> str:
    if "\0" in value:
        raise ValueError("the command must not contain a NUL character")
    return value


def check_args(value: list[str]) -> list[str]:
    for index, arg in enumerate(value):
        if "\0" in arg:
            raise ValueError(f"args[{index}] must not contain a NUL character")
    return value


def check_env(value: list[str]) -> list[str]:
    """EaseProbe's `env: ["NAME=value"]`. Messages name the entry, never its value."""
    for index, entry in enumerate(value):
        name, sep, text = entry.partition("=")
        if not sep or not _ENV_NAME.fullmatch(name):
            raise ValueError(f'env[{index}]: expected "NAME=value"')
        if "\0" in text:
            raise ValueError(f"env[{index}]: the value must not contain a NUL character")
    return value


class CommandSpec(BaseModel):
    """EaseProbe's keys for a command, shared by the `shell:` probe and the `shell` notifier.

    Mixed in ahead of the section's own spec class (`class ShellSpec(CommandSpec, ProbeSpec)`):
    that class's fields come first and its model_config (strict, frozen) is the one that
    applies, as if these four keys were declared in it.
    """

    cmd: Annotated[str, AfterValidator(check_cmd)] = Field(min_length=1)
    args: Annotated[list[str], AfterValidator(check_args)] = Field(default_factory=list)
    env: Annotated[list[str], AfterValidator(check_env)] = Field(default_factory=list, repr=False)
    clean_env: bool = False

    def environment(self) -> dict[str, str]:
        """The command's environment: ours unless `clean_env`, then the `env` entries (a
        later entry for the same name wins, as in Go's exec)."""
        env = {} if self.clean_env else dict(os.environ)
        for entry in self.env:
            name, _, value = entry.partition("=")
            env[name] = value
        return env

    def executable(self) -> str | None:
        """What to run: `cmd` when it names a path, else where this process's PATH finds it
        (as EaseProbe, Go's exec.Command, does, even with clean_env); None if nowhere."""
        if os.sep in self.cmd:
            return self.cmd
        return shutil.which(self.cmd)


class SecretMasker:
    """Replaces the configured env values (possible secrets) in text we show."""

    def __init__(self, env: list[str]) -> None:
        values = set()
        for entry in env:
            name, _, value = entry.partition("=")
            if value and (len(value) >= _MASK_MIN or SECRETISH.search(name)):
                values.add(value)
        # Longest first, so a value that contains another is masked whole.
        ordered = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub("***", text)


class OutputCollector(asyncio.SubprocessProtocol):
    """Receives the command's combined output as it comes, keeping the first `head_limit`
    bytes and the last TAIL (the rest is drained, not buffered), and reports when the
    process has exited and when its output is closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, head_limit: int = 0) -> None:
        self.head_limit = head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else data
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
        self.tail += chunk[-TAIL:]
        del self.tail[:-TAIL]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        # fd 0 (stdin) closing early is the command not reading it: not our concern.
        if fd == 1 and not self.closed.done():
            self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


# How long the output may stay open once the command itself has exited.
EOF_GRACE = 1.0
# How long a killed command may take to be reaped before we stop waiting for it.
REAP_GRACE = 1.0


async def output_closed(collector: OutputCollector) -> bool:
    """After the command exited: whether its output closed within EOF_GRACE. Closed, the
    command and all it started are done with it; anything still running redirected its
    output elsewhere and is left alone. Open, something it started holds it: to be killed."""
    done, _ = await asyncio.wait({collector.closed}, timeout=EOF_GRACE)
    return bool(done)


async def release(
    transport: asyncio.SubprocessTransport, collector: OutputCollector, *, kill: bool
) -> None:
    """The end of every run, on timeout and cancellation too, and nothing here can hang: the
    kill is a signal, the wait for the reaping is bounded, the transport is closed."""
    if kill:
        kill_group(transport.get_pid())
    try:
        if not collector.exited.done():
            await asyncio.wait({collector.exited}, timeout=REAP_GRACE)
    finally:
        transport.close()


def kill_group(pid: int | None) -> None:
    """SIGKILL the command's process group (its pid: it leads a session of its own)."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def status_text(status: int | None) -> str:
    if status is None:
        return "the command did not exit"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    return f"exit status {status}"


def last_line(text: str) -> str:
    """The last non-empty line of the output, trimmed to ~200 characters."""
    for line in reversed(text.splitlines()):
        line = printable(line).strip()
        if line:
            return line if len(line) <= LAST_LINE else line[: LAST_LINE - 3] + "..."
    return ""


def short(text: str) -> str:
    text = printable(text)
    return text if len(text) <= 120 else text[:117] + "..."


def start_failure(exc: OSError, cmd: str) -> tuple[str, bool]:
    """(message, transient) for a command that could not be started. Transient: the system
    is short of processes or files for a moment; anything else will fail the same way."""
    shown = short(cmd)
    if exc.errno == errno.ENOENT:
        if os.sep in cmd and os.path.exists(cmd):
            # The file is there: its interpreter (`#!` line) or loader is not.
            return f"cannot run {shown}: its interpreter was not found", False
        return f"command not found: {shown}", False
    if exc.errno == errno.EACCES:
        return f"cannot run {shown}: permission denied", False
    if exc.errno == errno.ENOEXEC:
        return f"cannot run {shown}: not an executable format (a script without #!?)", False
    if exc.errno == errno.E2BIG:
        return f"cannot run {shown}: the environment is too large", False
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return f"cannot run {shown}: too many open files", True
    if exc.errno == errno.EAGAIN:
        return f"cannot run {shown}: too many processes", True
    reason = exc.strerror or type(exc).__name__
    return f"cannot run {shown}: {reason[:1].lower()}{reason[1:]}", True
