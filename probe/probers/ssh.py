"""SSH probes: log in over SSH (directly or through a bastion), run a command; up when it
exits with status 0 and its output passes the `contain` / `not_contain` checks.

EaseProbe's section: `ssh: {bastion: {NAME: endpoint}, servers: [...]}` (a plain list of
servers loads too). `cmd` is run by the remote user's shell, as in EaseProbe: `cmd: "ps -ef |
grep kafka"` works; `args` are added to it as words, each quoted; `env` entries are exported
before it (`export NAME='value';`), since sshd accepts few environment requests. The checks
read stdout (the first 1 MiB), as EaseProbe's do; a non-zero exit status makes the check down
with the status and the first line of stderr.

The host key is checked against `known_hosts` (default ~/.ssh/known_hosts) unless
`insecure: true`; EaseProbe checks none. Conditions read `[EXIT_CODE]` and `[OUTPUT]`, as for
shell probes; with a condition on `[EXIT_CODE]` the conditions judge the exit status.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.probers._match import Matcher, PatternKeys, mismatch
from probe.probers._net import with_excerpt
from probe.probers._ssh import CommandRun, SSHServerKeys, run_command
from probe.probers.base import Prober, SharedResources
from probe.subprocesses import SecretMasker, check_args, check_cmd, check_env, status_text
from probe.text import printable

__all__ = ["SSHProber", "SSHSpec", "command_line"]

# Characters of the output kept in the details.
_DETAILS_OUTPUT = 1000


class SSHSpec(SSHServerKeys, PatternKeys, ProbeSpec):
    """One entry of `ssh: servers:`: EaseProbe's keys."""

    kind: ClassVar[str] = "ssh"
    condition_placeholders: ClassVar[frozenset[str]] = frozenset({"EXIT_CODE", "OUTPUT"})

    cmd: Annotated[str, AfterValidator(check_cmd)] = Field(min_length=1)
    args: Annotated[list[str], AfterValidator(check_args)] = Field(default_factory=list)
    env: Annotated[list[str], AfterValidator(check_env)] = Field(default_factory=list, repr=False)
    with_output: bool = False

    def endpoint(self) -> str:
        return f"{self.shown()} {command_line(self.cmd, self.args, [])}"[:200]


def command_line(cmd: str, args: list[str], env: list[str]) -> str:
    """What the remote shell runs: `export`s for `env`, then `cmd` as written and `args`
    quoted, as words."""
    exports = ""
    for entry in env:
        name, _, value = entry.partition("=")
        exports += f"export {name}={shlex.quote(value)}; "
    words = " ".join(shlex.quote(arg) for arg in args)
    return f"{exports}{cmd} {words}".rstrip()


class SSHProber(Prober[SSHSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = SSHSpec

    def __init__(self, spec: SSHSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._contain = Matcher.build(spec.contain, spec.regex)
        self._not_contain = Matcher.build(spec.not_contain, spec.regex)
        self._mask = SecretMasker(spec.env)
        self._command = command_line(spec.cmd, spec.args, spec.env)
        self._shown_command = printable(command_line(spec.cmd, spec.args, []), 200)
        read = self.condition_reads
        self._conditions_judge_exit = "EXIT_CODE" in read
        self._reads_output = "OUTPUT" in read

    async def check(self, ctx: CheckContext) -> Outcome:
        ctx.details["command"] = self._shown_command
        run = await run_command(self.spec, self.spec.bastion, self._command, ctx)
        if run.status is not None:
            ctx.facts["EXIT_CODE"] = run.status
        if self._reads_output:
            ctx.facts["OUTPUT"] = self._mask(_decode(run.stdout))
        outcome = self._judge(run, ctx)
        if not self.spec.with_output:
            return outcome
        shown = self._mask(_decode(run.stdout))
        return Outcome(outcome.ok, with_excerpt(outcome.message, shown), outcome.details)

    def _judge(self, run: CommandRun, ctx: CheckContext) -> Outcome:
        truncated = run.total > len(run.stdout)
        output = self._mask(_decode(run.stdout))
        details: dict[str, Any] = {
            **ctx.details,
            "exit_status": run.status,
            "output_bytes": run.total,
            "truncated": truncated,
            "output": output if len(output) <= _DETAILS_OUTPUT else output[:_DETAILS_OUTPUT],
        }
        if run.status is None or (run.status != 0 and not self._conditions_judge_exit):
            message = (
                "the server sent no exit status"
                if run.status is None
                else (status_text(run.status))
            )
            first = _first_line(self._mask(_decode(run.stderr)))
            if first:
                message += f": {first}"
            return Outcome(ok=False, message=message, details=details)
        text = _decode(run.stdout)
        where = f" (in the first {len(run.stdout)} bytes)" if truncated else ""
        problem = mismatch(text, self._contain, self._not_contain, "output", where)
        if problem is not None:
            return Outcome(ok=False, message=self._mask(problem), details=details)
        return Outcome(ok=True, message=status_text(run.status), details=details)


def _decode(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = printable(line).strip()
        if line:
            return line if len(line) <= 200 else line[:197] + "..."
    return ""
