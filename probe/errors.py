"""One exception tree for the whole package.

ProbeError      a check failed; the message is short and shown to users as is
ConfigError     the config cannot be used; carries one located line per problem
StoreError      the SQLite store cannot be opened or written (exit code 3)
"""

from __future__ import annotations

__all__ = ["ConfigError", "ConfigProblem", "ProbeError", "StartupError", "StoreError"]

from dataclasses import dataclass

from probe.text import escaped


class ProbeError(Exception):
    """A check failed. `str(err)` is the human message; `details` end up in the Result."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config file: `FILE:LINE:COL: key.path: message`."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        line = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        # A file name, key or value may carry control characters or lone surrogates: shown
        # escaped, so a terminal never interprets them and printing never fails.
        return escaped(line)


class ConfigError(Exception):
    """The config cannot be used: `problems` say why; `warnings` are what the file's loading
    noticed besides (printed with the problems, so one pass fixes everything)."""

    def __init__(
        self, problems: list[ConfigProblem], warnings: list[ConfigProblem] | None = None
    ) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
        self.warnings = warnings or []


class StoreError(Exception):
    """The store at `path` cannot be used; `reason` says why (never includes secrets)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"store {path}: {reason}")
        self.path = path
        self.reason = reason


class StartupError(Exception):
    """Something `probe run` needs at start cannot be had (the web server's port is taken)."""
