"""Conditions (Gatus's `conditions:` syntax): parsed once at load, evaluated per check.

A neutral package (it imports no layer of probe): the config validates conditions with it, the
probers fill the facts it reads, the scheduler evaluates them. See syntax.py for the language,
evaluate.py for the meaning, placeholders.py for what each kind of probe can read.
"""

from __future__ import annotations

from probe.conditions.evaluate import MISSING, Verdict, evaluate, failed_conditions, glob_match
from probe.conditions.placeholders import COMMON, check_placeholders
from probe.conditions.syntax import (
    MAX_LENGTH,
    Condition,
    ConditionError,
    Function,
    Literal,
    Placeholder,
    names_read,
    parse_condition,
)

__all__ = [
    "COMMON",
    "MAX_LENGTH",
    "MISSING",
    "Condition",
    "ConditionError",
    "Function",
    "Literal",
    "Placeholder",
    "Verdict",
    "check_placeholders",
    "evaluate",
    "failed_conditions",
    "glob_match",
    "names_read",
    "parse_condition",
]
