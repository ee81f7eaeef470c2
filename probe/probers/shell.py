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

Conditions read `[EXIT_CODE]` (an int; negative: killed by that signal) and `[OUTPUT]` (the
first 1 MiB, as `contain` sees it, with the env's secrets masked). With a condition on
`[EXIT_CODE]`, the conditions judge the exit status: a non-zero one no longer makes the check
down by itself (`[EXIT_CODE] == 3` watches a command that should exit 3); `contain` and
`not_contain` still apply.

`env` values may be secrets: they never appear in messages, details or the endpoint, and are
masked (`***`) in the output shown. As in EaseProbe, `cmd` is looked up in this process's PATH
(also with `clean_env`), and relative paths are relative to the working directory.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
from typing import Any, ClassVar

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._match import Matcher, PatternKeys, mismatch
from probe.probers._net import redact_url, with_excerpt
from probe.probers.base import Prober, SharedResources
from probe.subprocesses import (
    SECRETISH,
    CommandSpec,
    OutputCollector,
    SecretMasker,
    last_line,
    output_closed,
    release,
    short,
    start_failure,
    status_text,
)

__all__ = ["MAX_OUTPUT", "ShellProber", "ShellSpec"]

MAX_OUTPUT = 1024 * 1024
"""Bytes of output kept for the contain/not_contain checks; the rest is drained unread."""

# Characters of the output kept in the details.
_DETAILS_OUTPUT = 1000

# Arguments and env names that look like they carry a secret (shown as ***).


class ShellSpec(CommandSpec, PatternKeys, ProbeSpec):
    """A `shell:` entry: EaseProbe's keys."""

    # `cmd`, `args`, `env` and `clean_env` come from CommandSpec, as for the shell notifier.

    kind: ClassVar[str] = "shell"
    # [EXIT_CODE] (int) and [OUTPUT] (the output kept for contain, secrets masked).
    condition_placeholders: ClassVar[frozenset[str]] = frozenset({"EXIT_CODE", "OUTPUT"})

    # Put an excerpt of the output in the check's message, so notifications show it.
    with_output: bool = False

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
        if sep and SECRETISH.search(name):
            shown.append(f"{name}=***")
        elif "://" in arg:
            shown.append(redact_url(arg))
        else:
            shown.append(arg)
            hide_next = arg.startswith("-") and bool(SECRETISH.search(arg))
    text = " ".join(_shell_word(word) for word in shown)
    return text if len(text) <= 200 else text[:197] + "..."


_DOUBLE_QUOTE_SPECIAL = re.compile(r'(["\\$`])')


def _shell_word(word: str) -> str:
    """`word` quoted as a shell would read it back, in the form easiest to read: bare when
    safe, else in single quotes, else (it holds a single quote, as `sh -c "awk '...'"`
    scripts do) in double quotes with ", \\, $ and ` escaped, not shlex.join's `'"'"'`."""
    quoted = shlex.quote(word)
    if quoted == word or "'" not in word:
        return quoted
    return '"' + _DOUBLE_QUOTE_SPECIAL.sub(r"\\\1", word) + '"'


class ShellProber(Prober[ShellSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = ShellSpec

    def __init__(self, spec: ShellSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._contain = Matcher.build(spec.contain, spec.regex)
        self._not_contain = Matcher.build(spec.not_contain, spec.regex)
        self._mask = SecretMasker(spec.env)
        self._command = _command_text(spec.cmd, spec.args)
        read = self.condition_reads
        # A condition on [EXIT_CODE] judges the exit status instead of "0 or down".
        self._conditions_judge_exit = "EXIT_CODE" in read
        # Decoding and masking up to MAX_OUTPUT costs: done only when a condition reads it.
        self._reads_output = "OUTPUT" in read

    def _executable(self) -> str:
        found = self.spec.executable()
        if found is None:
            raise ProbeError(f"command not found: {short(self.spec.cmd)}")
        return found

    async def check(self, ctx: CheckContext) -> Outcome:
        ctx.phase = "starting the command"
        ctx.details["command"] = self._command
        executable = self._executable()
        loop = asyncio.get_running_loop()
        try:
            transport, collector = await loop.subprocess_exec(
                lambda: OutputCollector(loop, MAX_OUTPUT),
                executable,
                *self.spec.args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.spec.environment(),
                start_new_session=True,
            )
        except OSError as exc:
            raise ProbeError(_describe(exc, self.spec.cmd), **ctx.details) from None
        must_kill = True
        try:
            ctx.phase = "running the command"
            # asyncio.wait, not a plain await: cancelling a plain await would cancel the
            # future itself, and the reaping wait below would then be skipped.
            await asyncio.wait({collector.exited})
            ctx.phase = "reading the output"
            must_kill = not await output_closed(collector)
            if must_kill:
                ctx.details["killed_background_processes"] = True
        finally:
            await release(transport, collector, kill=must_kill)
        status = transport.get_returncode()
        if status is not None:
            ctx.facts["EXIT_CODE"] = status
        if self._reads_output:
            # What contain/not_contain search (the first MAX_OUTPUT bytes), with the env's
            # secrets masked: a failed condition shows the start of it in its message.
            ctx.facts["OUTPUT"] = self._mask(_decode(bytes(collector.head)))
        outcome = self._judge(status, collector, ctx)
        if not self.spec.with_output:
            return outcome
        # The start of the output, secrets masked (the end is in the details already).
        shown = self._mask(_decode(bytes(collector.head)))
        return Outcome(outcome.ok, with_excerpt(outcome.message, shown), outcome.details)

    def _judge(self, status: int | None, collector: OutputCollector, ctx: CheckContext) -> Outcome:
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
        exit_judged = status is None or (status != 0 and not self._conditions_judge_exit)
        if exit_judged:
            message = status_text(status)
            last = last_line(shown_tail)
            if last:
                message += f": {last}"
            return Outcome(ok=False, message=message, details=details)
        if self._contain is not None or self._not_contain is not None:
            text = _decode(head)
            where = f" (in the first {len(head)} bytes)" if truncated else ""
            problem = mismatch(text, self._contain, self._not_contain, "output", where)
            if problem is not None:
                return Outcome(ok=False, message=self._mask(problem), details=details)
        return Outcome(ok=True, message=status_text(status), details=details)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _tail_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


# --- the one place OS errors become messages -------------------------------------------------


def _describe(exc: OSError, cmd: str) -> str:
    """A short message for a command that could not be started."""
    return start_failure(exc, cmd)[0]
