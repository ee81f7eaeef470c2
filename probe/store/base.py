"""The store's interface: what the App, the web layer and the CLI may rely on.

`probe.store.sqlite.Store` implements it; a PostgreSQL store can later sit beside it with the
same methods. Writes are fire-and-forget from the event loop (`submit`) and made durable by a
background writer; reads are synchronous and safe to run in a thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from probe.core.result import Result
from probe.core.tracker import Observation, ProbeState, Transition
from probe.errors import StoreError
from probe.store.sla import HourRollup, SLAFigures

__all__ = ["ResultStore"]


class ResultStore(Protocol):
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

    def probe_names(self) -> list[str]: ...

    def rollups(self, name: str, start: float, end: float) -> list[HourRollup]: ...

    def sla(self, name: str, start: float, end: float) -> SLAFigures: ...

    def sla_many(self, names: Iterable[str], start: float, end: float) -> dict[str, SLAFigures]: ...
