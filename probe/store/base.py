"""The store's interface: what the App, the web layer and the CLI may rely on.

`probe.store.sqlite.Store` implements it; a PostgreSQL store can later sit beside it with the
same methods. Writes are fire-and-forget from the event loop (`submit`) and made durable by a
background writer; reads are synchronous and safe to run in a thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict, Unpack

from probe.core.result import Result
from probe.core.tracker import Observation, ProbeState, Transition
from probe.errors import StoreError
from probe.store.sla import HourRollup, SLAFigures

__all__ = [
    "OUTBOX_STATES",
    "Outbox",
    "OutboxChanges",
    "OutboxItem",
    "OutboxRow",
    "OutboxState",
    "ResultStore",
]

OutboxState = Literal["pending", "delivered", "failed", "dropped"]
OUTBOX_STATES: tuple[OutboxState, ...] = ("pending", "delivered", "failed", "dropped")


class OutboxItem(Protocol):
    """A notification to add to the outbox, as the alerting hands it in. The store never reads
    `notification` (JSON text): the store knows nothing of notifiers (docs/ARCHITECTURE.md,
    "the store")."""

    @property
    def id(self) -> str: ...

    @property
    def notifier(self) -> str: ...

    @property
    def notification(self) -> str: ...

    @property
    def created(self) -> float: ...

    @property
    def attempts(self) -> int: ...

    @property
    def next_attempt(self) -> float: ...


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One outbox row. Times are Unix seconds. The defaults are those of a row not yet stored
    (what the dispatcher hands to `outbox_add`, which stores it as pending)."""

    id: str
    notifier: str
    notification: str
    created: float
    attempts: int
    next_attempt: float
    state: OutboxState = "pending"
    last_error: str | None = None
    delivered_at: float | None = None


class OutboxChanges(TypedDict, total=False):
    """The columns `Outbox.outbox_update` may change in one row: a key left out, or None,
    keeps the stored value. Declared once so the dispatcher passes them on as they are."""

    state: OutboxState | None
    attempts: int | None
    next_attempt: float | None
    last_error: str | None
    delivered_at: float | None


class Outbox(Protocol):
    """Where notifications wait until delivered: the part of the store the notifiers'
    dispatcher uses (the App passes it the store; docs/ARCHITECTURE.md, "the store"). Writes go
    through the writer and return once committed; reads are blocking (the dispatcher runs them
    in a thread).
    """

    async def outbox_add(self, rows: Sequence[OutboxItem]) -> None: ...

    async def outbox_update(self, id: str, **changes: Unpack[OutboxChanges]) -> None: ...

    def outbox_pending(self, now: float | None = None) -> list[OutboxRow]: ...

    def outbox_count(self, state: OutboxState) -> int: ...


class ResultStore(Outbox, Protocol):
    """The store as the App, the web layer and the CLI use it, the alert outbox included."""

    @property
    def last_error(self) -> StoreError | None: ...

    @property
    def pending(self) -> int: ...

    def submit(self, obs: Observation) -> None: ...

    async def start(self) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...

    def close_sync(self) -> None: ...

    def load_states(self) -> dict[str, ProbeState]: ...

    def last_results(self, name: str, limit: int) -> list[Result]: ...

    def transitions(self, name: str, since: float, until: float) -> list[Transition]: ...

    def transitions_many(
        self, names: Iterable[str], since: float, until: float
    ) -> dict[str, list[Transition]]: ...

    def hourly_latency(
        self, names: Iterable[str], start: float, end: float
    ) -> dict[str, list[tuple[int, float]]]: ...

    def daily_uptime(
        self, names: Iterable[str], start_day: float, days: int
    ) -> dict[str, list[float | None]]: ...

    def probe_names(self) -> list[str]: ...

    def rollups(self, name: str, start: float, end: float) -> list[HourRollup]: ...

    def sla(self, name: str, start: float, end: float) -> SLAFigures: ...

    def sla_many(self, names: Iterable[str], start: float, end: float) -> dict[str, SLAFigures]: ...
