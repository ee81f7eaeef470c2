"""Where things are in a config file, and what is wrong there.

A value's place is its key path (`Loc`: `("http", 2, "timeout")`); `Source` keeps the
line/column of every value and key by key path, as the YAML reader records them, and collects
the problems and warnings of one file, each located (`FILE:LINE:COL: key.path: message`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from probe.errors import ConfigError, ConfigProblem

__all__ = ["Loc", "Pos", "Source", "format_loc"]

Loc = tuple[str | int, ...]
Pos = tuple[int, int]  # 1-based (line, column)

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")


class Source:
    """One file's positions (by key path) and the problems and warnings found in it."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[Loc, Pos] = {}
        self.keys: dict[Loc, Pos] = {}
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []
        # Values already reported as unusable (bad YAML scalar, unset ${VAR}, unreadable secret
        # file): a later complaint about them or anything under them would only repeat it.
        self.broken: set[Loc] = set()

    def where(self, loc: Loc, *, key: bool = False) -> Pos | None:
        """Position of `loc`'s key (if asked and known) or value, else of its nearest parent."""
        if key and loc in self.keys:
            return self.keys[loc]
        while loc not in self.values and loc:
            loc = loc[:-1]
        return self.values.get(loc)

    def problem(self, loc: Loc, message: str, key: bool, pos: Pos | None) -> ConfigProblem:
        """A located problem, not recorded: `error` and `warn` record one."""
        if pos is None:
            pos = self.where(loc, key=key)
        line, col = pos if pos is not None else (None, None)
        # One problem, one line: whatever a message quotes must not break that.
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        return ConfigProblem(self.file, line, col, format_loc(loc), message)

    def error(self, loc: Loc, message: str, *, key: bool = False, pos: Pos | None = None) -> None:
        if not any(loc[:i] in self.broken for i in range(len(loc) + 1)):
            self.problems.append(self.problem(loc, message, key, pos))

    def bad_value(self, loc: Loc, message: str, *, key: bool = False) -> None:
        """Report an unusable value and silence later problems at or under it."""
        self.error(loc, message, key=key)
        self.broken.add(loc)

    def warn(self, loc: Loc, message: str, *, key: bool = False, pos: Pos | None = None) -> None:
        self.warnings.append(self.problem(loc, message, key, pos))

    def fatal(self, message: str) -> ConfigError:
        """The error for a problem with the whole file (no line): raised at once."""
        return ConfigError([ConfigProblem(self.file, None, None, "", message)])


def format_loc(loc: Iterable[str | int]) -> str:
    """`http[2].timeout`, `settings.probe.interval`, `http[0].headers.Host`, `labels["a.b"]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out
