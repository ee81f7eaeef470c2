"""Push probes: a job calls probe (`/api/v1/push/TOKEN`), rather than probe calling it.

Uptime Kuma's "push", Gatus's "external endpoints", healthchecks.io's checks. The spec lives
here, with the other kinds, so `push:` is a section of the registry like `http:`; nothing
here checks anything. The heartbeats arrive at the web server and the silences are timed by
the App's `PushMonitors` (probe/push.py), in the main process, never by the scheduler: a push
spec says so with `scheduled = False`.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Annotated, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from probe.config.models import Duration, Interval, ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.durations import format_duration
from probe.errors import ProbeError
from probe.probers.base import Prober

__all__ = ["MIN_TOKEN_LENGTH", "PushProber", "PushSpec", "default_grace"]

# A token is the only credential of its URL: long enough that guessing one is hopeless (16
# characters of a random URL-safe alphabet are ~95 bits; `openssl rand -hex 16` gives 32).
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 256
# "aaaaaaaaaaaaaaaa", "abcabcabcabcabca" and "0123456789012345" are long and still guessable:
# at least this many different characters, no repeating pattern, no runs of neighbours
# (abc, 987) over half of it, and at least MIN_TOKEN_BITS by the size of the alphabet its
# characters come from (16 digits alone are 53 bits; 16 hex characters 83).
MIN_DISTINCT_CHARACTERS = 7
MIN_TOKEN_BITS = 64.0
_CHARACTER_CLASSES = (
    (re.compile(r"[a-z]"), 26),
    (re.compile(r"[A-Z]"), 26),
    (re.compile(r"[0-9]"), 10),
    (re.compile(r"[._~-]"), 4),
)
# Characters a URL path carries as they are (RFC 3986 "unreserved"): curl sends the token
# unchanged, and it never holds a "/" that would split the route.
_TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~-]+")

# Without `grace`: a tenth of the interval, at least a minute (a nightly job that runs a
# few minutes longer one night is not down; a job every minute gets a minute of slack).
DEFAULT_GRACE_FLOOR = 60.0
DEFAULT_GRACE_SHARE = 0.1


def default_grace(interval: float) -> float:
    return max(DEFAULT_GRACE_FLOOR, interval * DEFAULT_GRACE_SHARE)


def _guessable(token: str) -> bool:
    """Whether a token a person could guess or a guesser would try early: few different
    characters, one pattern repeated, mostly runs of neighbouring characters, or too few
    bits for the characters it is made of. No word list: `backup-token-2024` passes, which
    the README's advice (random characters) is for."""
    if len(set(token)) < MIN_DISTINCT_CHARACTERS:
        return True
    size = len(token)
    if any(token[p:] == token[:-p] for p in range(1, size // 2 + 1)):
        return True  # a period of at most half its length: abcabcabc...
    neighbours = sum(1 for a, b in itertools.pairwise(token) if abs(ord(a) - ord(b)) == 1)
    if neighbours * 2 >= size:
        return True
    alphabet = sum(count for pattern, count in _CHARACTER_CLASSES if pattern.search(token))
    return size * math.log2(alphabet) < MIN_TOKEN_BITS


class PushSpec(ProbeSpec):
    """A `push:` entry: the job calls `/api/v1/push/<token>` at least every `interval`;
    silent for `interval + grace`, the probe is down."""

    kind: ClassVar[str] = "push"
    scheduled: ClassVar[bool] = False
    # Two push probes with one token: a heartbeat could not say whose it is.
    unique_secrets: ClassVar[tuple[str, ...]] = ("token",)

    # How often the job calls: the job's own schedule, never settings.probe's default.
    not_inherited: ClassVar[frozenset[str]] = frozenset({"interval"})

    interval: Interval
    token: SecretStr
    grace: Annotated[Duration, Field(le=366 * 86400.0)] | None = None

    @field_validator("token")
    @classmethod
    def _strong_token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        # The messages never show the token: it is a secret, and errors are printed.
        if not token.strip():
            raise ValueError("empty (an unset environment variable?); set it")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"too short ({len(token)} characters): a push token is the only credential of"
                f" its URL; use at least {MIN_TOKEN_LENGTH} random characters"
                " (openssl rand -hex 16)"
            )
        if len(token) > MAX_TOKEN_LENGTH:
            raise ValueError(f"too long: at most {MAX_TOKEN_LENGTH} characters")
        if not _TOKEN_CHARACTERS.fullmatch(token):
            raise ValueError(
                "only letters, digits and - _ . ~ may be used (they go into a URL as they are)"
            )
        if _guessable(token):
            raise ValueError(
                "too easy to guess (few different characters, a repeating pattern or a run"
                " like abc or 123); use random characters (openssl rand -hex 16)"
            )
        return value

    @model_validator(mode="after")
    def _no_conditions(self) -> PushSpec:
        # Conditions read what a check measured; a push probe measures nothing itself.
        if self.conditions:
            raise ValueError("conditions: push probes have none (the job says up or down)")
        if self.degraded:
            raise ValueError("degraded: push probes have no degraded conditions")
        return self

    @property
    def grace_seconds(self) -> float:
        return default_grace(self.interval) if self.grace is None else self.grace

    @property
    def silence_allowed(self) -> float:
        """How long the probe may go without a heartbeat before it is down."""
        return self.interval + self.grace_seconds

    def result_interval(self) -> float:
        # Down results repeat every interval once silent, but the first comes interval +
        # grace after the last heartbeat: that gap must count for the SLA too.
        return self.silence_allowed

    def endpoint(self) -> str:
        # Shown on the page, the API and in notifications: never the token.
        every = format_duration(self.interval)
        return f"push every {every} (grace {format_duration(self.grace_seconds)})"


class PushProber(Prober[PushSpec]):
    """The registry's entry for `push:`. Never built by the App (push probes are not
    scheduled); `probe once` reports them from the store instead of checking them."""

    spec_type: ClassVar[type[ProbeSpec]] = PushSpec

    async def check(self, ctx: CheckContext) -> Outcome:
        raise ProbeError("push probes are checked by their jobs' calls, not by probe")
