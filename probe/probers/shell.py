"""Shell probes: run a command; up when it exits with status 0 and its output passes the
`contain` / `not_contain` checks.

The command runs without a shell (unless `cmd` is one, as in `cmd: sh, args: [-c, "..."]`), with
stdin from /dev/null and stdout and stderr combined, in a session (and process group) of its
own. The first 1 MiB of output is kept for the checks; more is read and thrown away, so a noisy
command neither blocks on a full pipe nor fills memory.

A check is over when the command has exited and its output is closed. On the scheduler's
timeout (or any cancellation) the whole process group is killed with SIGKILL and the command
reaped, so nothing it started is left running. When the command exits but something it left in
the background still holds the output open, that group is killed after a short grace too (a
background process that redirected its output is left alone, as with EaseProbe).

`env` values may be secrets: they never appear in messages, details or the endpoint, and are
masked (`***`) in the output shown. As in EaseProbe, `cmd` is looked up in this process's PATH
(also with `clean_env`), and relative paths are relative to the working directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shlex
import shutil
import signal
import subprocess
from typing import Any, ClassVar, NamedTuple

from pydantic import Field, ValidationInfo, field_validator

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._net import redact_url
from probe.probers.base import Prober, SharedResources

__all__ = ["MAX_OUTPUT", "ShellProber", "ShellSpec"]

MAX_OUTPUT = 1024 * 1024
"""Bytes of output kept for the contain/not_contain checks; the rest is drained unread."""

# Bytes kept from the end of the output, for the message's last line and the details.
_TAIL = 4096
# Characters of the last line a failure message quotes, and of the output in the details.
_LAST_LINE = 200
_DETAILS_OUTPUT = 1000
# How long the output may stay open once the command itself has exited.
_EOF_GRACE = 1.0
# How long a killed command may take to be reaped before the check stops waiting for it.
_REAP_GRACE = 1.0

_ENV_NAME = re.compile(r"[^=\0]+")
# Arguments and env names that look like they carry a secret (shown as ***).
_SECRETISH = re.compile(r"pass|pwd|token|secret|key|auth|cred", re.IGNORECASE)
# Configured env values shorter than this are not masked in output (they are not secrets
# worth the noise of masking every "1" or "true").
_MASK_MIN = 4


class ShellSpec(ProbeSpec):
    """A `shell:` entry: EaseProbe's keys."""

    kind: ClassVar[str] = "shell"

    cmd: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list, repr=False)
    clean_env: bool = False
    # `regex` comes before `contain`/`not_contain` so their validators can read it.
    regex: bool = False
    contain: str | None = None
    not_contain: str | None = None

    @field_validator("cmd")
    @classmethod
    def _valid_cmd(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("the command must not contain a NUL character")
        return value

    @field_validator("args")
    @classmethod
    def _valid_args(cls, value: list[str]) -> list[str]:
        for index, arg in enumerate(value):
            if "\0" in arg:
                raise ValueError(f"args[{index}] must not contain a NUL character")
        return value

    @field_validator("env")
    @classmethod
    def _valid_env(cls, value: list[str]) -> list[str]:
        # Messages name the entry, never its value: env values may be secrets.
        for index, entry in enumerate(value):
            name, sep, text = entry.partition("=")
            if not sep or not _ENV_NAME.fullmatch(name):
                raise ValueError(f'env[{index}]: expected "NAME=value"')
            if "\0" in text:
                raise ValueError(f"env[{index}]: the value must not contain a NUL character")
        return value

    @field_validator("contain", "not_contain")
    @classmethod
    def _valid_pattern(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None  # EaseProbe's "" means "no check"
        if info.data.get("regex"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    def endpoint(self) -> str:
        return _command_text(self.cmd, self.args)


def _command_text(cmd: str, args: list[str]) -> str:
    """The command line as shown, with secret-looking arguments as ***.

    `--password=x` -> `--password=***`, `--token x` -> `--token ***`, URL credentials removed.
    """
    shown: list[str] = [cmd]
    hide_next = False
    for arg in args:
        if hide_next:
            shown.append("***")
            hide_next = False
            continue
        name, sep, _value = arg.partition("=")
        if sep and _SECRETISH.search(name):
            shown.append(f"{name}=***")
        elif "://" in arg:
            shown.append(redact_url(arg))
        else:
            shown.append(arg)
            hide_next = arg.startswith("-") and bool(_SECRETISH.search(arg))
    text = shlex.join(shown)
    return text if len(text) <= 200 else text[:197] + "..."


class _Matcher(NamedTuple):
    pattern: re.Pattern[str]
    shown: str
    is_regex: bool

    @classmethod
    def build(cls, text: str | None, is_regex: bool) -> _Matcher | None:
        if text is None:
            return None
        pattern = re.compile(text if is_regex else re.escape(text))
        shown = text if len(text) <= 60 else text[:57] + "..."
        return cls(pattern, f'"{shown}"', is_regex)


class _Masker:
    """Replaces the configured env values (possible secrets) in text we show."""

    def __init__(self, env: list[str]) -> None:
        values = set()
        for entry in env:
            name, _, value = entry.partition("=")
            if value and (len(value) >= _MASK_MIN or _SECRETISH.search(name)):
                values.add(value)
        # Longest first, so a value that contains another is masked whole.
        ordered = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub("***", text)


class _Collector(asyncio.SubprocessProtocol):
    """Receives the command's combined output as it comes, keeping a bounded head and tail,
    and reports when the process has exited and when its output is closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else data
        self.total += len(chunk)
        room = self.limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
        self.tail += chunk[-_TAIL:]
        del self.tail[:-_TAIL]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1 and not self.closed.done():
            self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class ShellProber(Prober[ShellSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = ShellSpec

    def __init__(self, spec: ShellSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._contain = _Matcher.build(spec.contain, spec.regex)
        self._not_contain = _Matcher.build(spec.not_contain, spec.regex)
        self._mask = _Masker(spec.env)
        self._command = _command_text(spec.cmd, spec.args)

    def _environment(self) -> dict[str, str]:
        env = {} if self.spec.clean_env else dict(os.environ)
        for entry in self.spec.env:
            name, _, value = entry.partition("=")
            env[name] = value  # a later entry wins, as in Go's exec
        return env

    def _executable(self) -> str:
        cmd = self.spec.cmd
        if os.sep in cmd:
            return cmd
        # This process's PATH, as EaseProbe (Go's exec.Command) does, even with clean_env.
        found = shutil.which(cmd)
        if found is None:
            raise ProbeError(f"command not found: {_short(cmd)}")
        return found

    async def check(self, ctx: CheckContext) -> Outcome:
        ctx.phase = "starting the command"
        ctx.details["command"] = self._command
        executable = self._executable()
        loop = asyncio.get_running_loop()
        try:
            transport, collector = await loop.subprocess_exec(
                lambda: _Collector(loop, MAX_OUTPUT),
                executable,
                *self.spec.args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                start_new_session=True,
            )
        except OSError as exc:
            raise ProbeError(_describe(exc, self.spec.cmd), **ctx.details) from None
        pid = transport.get_pid()
        kill_group = True
        try:
            ctx.phase = "running the command"
            # asyncio.wait, not a plain await: cancelling a plain await would cancel the
            # future itself, and the reaping wait below would then be skipped.
            await asyncio.wait({collector.exited})
            ctx.phase = "reading the output"
            done, _ = await asyncio.wait({collector.closed}, timeout=_EOF_GRACE)
            # Output closed: the command and all it started are done with it; anything left
            # running redirected its output elsewhere, and is left alone.
            kill_group = not done
            if kill_group:
                ctx.details["killed_background_processes"] = True
        finally:
            # On timeout and cancellation too. Nothing here can hang: the kill is a signal,
            # the wait for the reaping is bounded.
            if kill_group:
                _kill_group(pid)
            try:
                if not collector.exited.done():
                    await asyncio.wait({collector.exited}, timeout=_REAP_GRACE)
            finally:
                transport.close()
        return self._judge(transport.get_returncode(), collector, ctx)

    def _judge(self, status: int | None, collector: _Collector, ctx: CheckContext) -> Outcome:
        head = bytes(collector.head)
        truncated = collector.total > len(head)
        shown_tail = self._mask(_decode(bytes(collector.tail)))
        details: dict[str, Any] = {
            **ctx.details,
            "exit_status": status,
            "output_bytes": collector.total,
            "truncated": truncated,
            "output": _tail_text(shown_tail, _DETAILS_OUTPUT),
        }
        if status is None or status != 0:
            message = _status_text(status)
            last = _last_line(shown_tail)
            if last:
                message += f": {last}"
            return Outcome(ok=False, message=message, details=details)
        if self._contain is not None or self._not_contain is not None:
            text = _decode(head)
            where = f" (in the first {len(head)} bytes)" if truncated else ""
            contain, not_contain = self._contain, self._not_contain
            if contain is not None and contain.pattern.search(text) is None:
                verb = "match" if contain.is_regex else "contain"
                message = self._mask(f"output does not {verb} {contain.shown}{where}")
                return Outcome(ok=False, message=message, details=details)
            if not_contain is not None and not_contain.pattern.search(text) is not None:
                verb = "matches" if not_contain.is_regex else "contains"
                message = self._mask(f"output {verb} {not_contain.shown}{where}")
                return Outcome(ok=False, message=message, details=details)
        return Outcome(ok=True, message="exit status 0", details=details)


def _kill_group(pid: int | None) -> None:
    """SIGKILL the command's process group (its pid: it leads a session of its own)."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _status_text(status: int | None) -> str:
    if status is None:
        return "the command did not exit"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    return f"exit status {status}"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


def _last_line(text: str) -> str:
    """The last non-empty line of the output, trimmed to ~200 characters."""
    for line in reversed(text.splitlines()):
        line = _printable(line).strip()
        if line:
            return line if len(line) <= _LAST_LINE else line[: _LAST_LINE - 3] + "..."
    return ""


def _tail_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def _short(text: str) -> str:
    text = _printable(text)
    return text if len(text) <= 120 else text[:117] + "..."


# --- the one place OS errors become messages -------------------------------------------------


def _describe(exc: OSError, cmd: str) -> str:
    """A short message for a command that could not be started."""
    shown = _short(cmd)
    if exc.errno == errno.ENOENT:
        if os.sep in cmd and os.path.exists(cmd):
            # The file is there: its interpreter (`#!` line) or loader is not.
            return f"cannot run {shown}: its interpreter was not found"
        return f"command not found: {shown}"
    if exc.errno == errno.EACCES:
        return f"cannot run {shown}: permission denied"
    if exc.errno == errno.ENOEXEC:
        return f"cannot run {shown}: not an executable format (a script without #!?)"
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return f"cannot run {shown}: too many open files"
    if exc.errno == errno.EAGAIN:
        return f"cannot run {shown}: too many processes"
    reason = exc.strerror or type(exc).__name__
    return f"cannot run {shown}: {reason[:1].lower()}{reason[1:]}"
