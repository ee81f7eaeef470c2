"""The small base every prober kind builds on.

A prober checks one endpoint. `check()` returns an `Outcome` when it could judge the service
(ok or not), and raises `ProbeError` with a short message when it could not talk to it. Each
prober maps its driver's exceptions to such messages in one place, its own module. The scheduler
bounds every check with a hard timeout and reads `ctx.phase` to say where a timeout struck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

from probe.conditions import Condition, names_read
from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome

__all__ = ["Prober", "SharedResources", "close_when_ended"]

log = logging.getLogger("probe.probers")

SpecT = TypeVar("SpecT", bound=ProbeSpec)
T = TypeVar("T")


class SharedResources:
    """Objects that probers share (an HTTP client per TLS/proxy setting, ...).

    Created once by the App, handed to every prober, closed once at shutdown. Building an
    httpx client costs ~21 ms of CPU and ~0.8 MB, so 5,000 probes must not each own one.
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def get_or_create(
        self,
        key: Hashable,
        factory: Callable[[], T],
        close: Callable[[T], Awaitable[None]] | None = None,
    ) -> T:
        if key in self._items:
            return cast(T, self._items[key])
        item = factory()
        self._items[key] = item
        if close is not None:
            self._closers.append(lambda: close(item))
        return item

    def __len__(self) -> int:
        return len(self._items)

    async def aclose(self) -> None:
        closers, self._closers = self._closers, []
        self._items.clear()
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()


class Prober(ABC, Generic[SpecT]):
    """One configured probe: its spec plus whatever it needs to check its endpoint."""

    spec_type: ClassVar[type[ProbeSpec]]

    def __init__(self, spec: SpecT, resources: SharedResources) -> None:
        self.spec = spec
        self.resources = resources
        self._conditions = spec.parsed_conditions()
        self._degraded = spec.parsed_degraded()
        # The placeholders the conditions read: a prober fills a costly fact only if listed.
        self.condition_reads = names_read((*self._conditions, *self._degraded))

    @property
    def degraded(self) -> Sequence[Condition]:
        """The probe's `degraded` conditions: what full health needs beyond `conditions`."""
        return self._degraded

    @property
    def conditions(self) -> Sequence[Condition]:
        """The probe's `conditions`, parsed at build; the runner evaluates them per check."""
        return self._conditions

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def endpoint(self) -> str:
        return self.spec.endpoint()

    @property
    def interval(self) -> float:
        return self.spec.interval

    @property
    def timeout(self) -> float:
        return self.spec.timeout

    @abstractmethod
    async def check(self, ctx: CheckContext) -> Outcome:
        """Check the endpoint once; raise ProbeError when it cannot be reached or judged."""

    def prepare(self) -> None:
        """Build what this prober shares with others (clients, SSL contexts) ahead of the
        first check, so that check's latency measures the service and not our start-up.
        May raise ProbeError (a TLS file that cannot be loaded): the check will say so."""

    async def aclose(self) -> None:
        """Release anything this prober holds on its own (shared resources close elsewhere)."""


async def close_when_ended(
    loops: Sequence[asyncio.Task[None]], probers: Sequence[Prober[Any]]
) -> None:
    """Close `probers` once the scheduler loops that ran them have ended (after a reload
    replaced or removed them: a check in flight finishes with its prober open)."""
    if loops:
        await asyncio.wait(loops)
    for prober in probers:
        try:
            await prober.aclose()
        except Exception as exc:
            log.warning("closing the prober of %s failed: %s", prober.name, exc)
