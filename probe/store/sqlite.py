"""The SQLite store: `Store`, the one object the rest of probe holds (see docs/ARCHITECTURE.md,
"the store").

A facade over the parts that do the work, each in its own module:
  schema.py   the migrations, and opening a file (checked before anything is written)
  writer.py   the writer thread: every write, in batched transactions, and the pruning
  batch.py    what the writer has taken off its queue, in the form it is written
  rollups.py  the hourly and daily rollup rows a batch adds to
  outbox.py   the alert outbox's rows, written through the same queue
  queries.py  the reads over a read-only connection, the SLA window queries among them
  errors.py   SQLite and OS errors as StoreError
  columns.py  how values are encoded into columns

Writes never happen on the event loop: `submit()` only queues. The outbox writes
(`outbox_add`/`outbox_update`) queue too, wake the writer at once and return when the
transaction holding them has committed. Reads are synchronous and safe to run in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from probe.core.result import Result
from probe.core.tracker import Observation, ProbeState, Transition
from probe.errors import StoreError
from probe.store import outbox
from probe.store.base import OutboxItem, OutboxRow, OutboxState
from probe.store.batch import FlushMarker
from probe.store.queries import StoreReader
from probe.store.schema import open_connections
from probe.store.sla import HourRollup, SLAFigures
from probe.store.writer import DEFAULT_FLUSH, DEFAULT_RETENTION, Queued, WriterThread

__all__ = ["Store"]

log = logging.getLogger("probe.store")


class Store:
    """Probe results, rollups, transitions and tracker state in one SQLite file.

    Use `Store.open(path)`, then `await store.start()` to run the writer, `submit()` from the
    event loop, `await store.flush()` when a caller needs its writes visible, and
    `await store.close()` at the end (or `async with Store.open(path) as store:`).
    """

    def __init__(
        self,
        path: Path,
        writer_conn: sqlite3.Connection,
        reader: sqlite3.Connection,
        *,
        retention: float,
        clock: Callable[[], float],
        flush: float = DEFAULT_FLUSH,
    ) -> None:
        """Use `Store.open()`; this takes connections already checked and migrated."""
        self.path = path
        self.retention = retention
        self._inbox: queue.SimpleQueue[Queued] = queue.SimpleQueue()
        self._writer = WriterThread(path, writer_conn, self._inbox, retention, clock, flush=flush)
        self._started = False
        self._closed = False
        self._reader = StoreReader(path, reader)

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        retention: float = DEFAULT_RETENTION,
        flush: float = DEFAULT_FLUSH,
        clock: Callable[[], float] = time.time,
    ) -> Store:
        """Open (creating and migrating if needed) the store at `path`.

        Raises StoreError when the file cannot be used: its directory cannot be made, it is
        not an SQLite database, it belongs to something else, it was written by a newer
        version, or the disk fails. A file that cannot be read is never modified.
        `flush` (`settings.store.flush`) is how long the writer gathers observations after
        the first one before it commits them together: the most a crash (kill -9, power loss)
        can lose; 0 commits each as soon as it is queued. `clock` gives "now" for retention
        (tests inject one).
        """
        path = Path(path)
        if not retention > 0:
            raise ValueError(f"retention must be positive, got {retention}")
        if not 0 <= flush <= 3600:
            raise ValueError(f"flush must be between 0 and 3600 seconds, got {flush}")
        writer_conn, reader = open_connections(path)
        return cls(path, writer_conn, reader, retention=retention, clock=clock, flush=flush)

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start the writer thread (idempotent). Queued observations are written from now on."""
        if self._closed:
            raise StoreError(str(self.path), "store is closed")
        if not self._started:
            self._started = True
            self._writer.start()

    async def flush(self) -> None:
        """Wait until everything submitted before this call is committed.

        Raises StoreError if that write failed; the observations stay queued in memory and
        are retried (a later flush retries at once).
        """
        if self._closed:
            return
        await self.start()
        if not self._writer.is_alive():
            raise StoreError(str(self.path), "the writer thread has stopped")
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._inbox.put(FlushMarker(future))
        self._writer.urgent.set()
        await asyncio.wrap_future(future)

    async def close(self) -> None:
        """Write what is queued, stop the writer and close the connections (idempotent).

        Never raises for a failed final write: it is logged, with the number of observations
        lost, and stays visible in `last_error`.
        """
        stopped = self._stop_writer()
        if stopped is not None:
            await asyncio.wrap_future(stopped)

    def close_sync(self) -> None:
        """`close()` for code without an event loop (the CLI reading SLA figures).

        Blocks until the writer has finished, so never call it from a running event loop
        while observations may be queued; there, use `await close()`.
        """
        stopped = self._stop_writer()
        if stopped is not None:
            stopped.result()

    def _stop_writer(self) -> concurrent.futures.Future[None] | None:
        """Close the reader and ask the writer to stop; the future resolves once it has."""
        if self._closed:
            return None
        self._closed = True
        # Closed first, so the writer's connection is the last one and its close can
        # checkpoint the WAL and remove it.
        self._reader.close()
        if not self._started:
            if self._inbox.empty():
                self._writer.conn.close()
                return None
            self._started = True
            self._writer.start()
        if not self._writer.is_alive():
            log.error("store %s: the writer thread is gone; nothing more is written", self.path)
            return None
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._inbox.put(FlushMarker(future, stop=True))
        self._writer.urgent.set()
        return future

    async def __aenter__(self) -> Store:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------- writes

    def submit(self, obs: Observation) -> None:
        """Queue one observation for writing. Non-blocking and thread-safe."""
        if self._closed:
            raise StoreError(str(self.path), "store is closed")
        self._inbox.put(obs)

    async def outbox_add(self, rows: Sequence[OutboxItem]) -> None:
        """Add notifications to the outbox as `pending`; return once they are committed.

        Raises StoreError if that commit failed; the rows stay queued and are written when
        writing works again. A row whose id is already stored is left as it is.
        """
        write = outbox.adding(rows)
        if write is not None:
            await self._outbox_write(write)

    async def outbox_update(
        self,
        id: str,
        *,
        state: OutboxState | None = None,
        attempts: int | None = None,
        next_attempt: float | None = None,
        last_error: str | None = None,
        delivered_at: float | None = None,
    ) -> None:
        """Change the given columns of one outbox row (None: unchanged); return once committed.

        The change is queued before this coroutine first suspends, so it is written even if
        the caller is cancelled while waiting (the store's close writes what is queued).
        """
        write = outbox.updating(
            id,
            state=state,
            attempts=attempts,
            next_attempt=next_attempt,
            last_error=last_error,
            delivered_at=delivered_at,
        )
        await self._outbox_write(write)

    async def _outbox_write(self, write: outbox.OutboxWrite) -> None:
        await self.start()  # raises once closed; never suspends, so the put below is sure
        if not self._writer.is_alive():
            raise StoreError(str(self.path), "the writer thread has stopped")
        self._inbox.put(write)
        self._writer.urgent.set()
        await asyncio.wrap_future(write.future)

    @property
    def last_error(self) -> StoreError | None:
        """Why the most recent write failed; None once a write succeeds again."""
        return self._writer.last_error

    @property
    def flush_window(self) -> float:
        """Seconds the writer gathers observations before a commit (`Store.open(flush=...)`)."""
        return self._writer.flush

    @property
    def rows_written(self) -> int:
        """Rows committed since the store was opened, all tables together."""
        return self._writer.rows_written

    @property
    def pending(self) -> int:
        """Observations taken by the writer but not committed (non-zero while writes fail)."""
        return self._writer.batch.count

    # ----------------------------------------------------------------- reads
    # Each is done by `StoreReader` (probe/store/queries.py), whose docstrings say more.

    def load_states(self) -> dict[str, ProbeState]:
        """The tracker's last state per probe (an invalid row is skipped with a warning)."""
        return self._reader.load_states()

    def outbox_pending(self, now: float | None = None) -> list[OutboxRow]:
        """Pending outbox rows, oldest first; with `now`, only those due by then."""
        return self._reader.outbox_pending(now)

    def outbox_count(self, state: OutboxState) -> int:
        """The number of outbox rows in `state`."""
        return self._reader.outbox_count(state)

    def last_results(self, name: str, limit: int) -> list[Result]:
        """The newest `limit` raw results of probe `name`, newest first."""
        return self._reader.last_results(name, limit)

    def transitions(self, name: str, since: float, until: float) -> list[Transition]:
        """Status changes of probe `name` in [since, until), oldest first."""
        return self._reader.transitions(name, since, until)

    def transitions_many(
        self, names: Iterable[str], since: float, until: float
    ) -> dict[str, list[Transition]]:
        """`transitions` for every name in one query (an empty list for a name without any)."""
        return self._reader.transitions_many(names, since, until)

    def hourly_latency(
        self, names: Iterable[str], start: float, end: float
    ) -> dict[str, list[tuple[int, float]]]:
        """(hour, mean latency in seconds) of each hour overlapping [start, end) that measured
        a latency, oldest first, for every name."""
        return self._reader.hourly_latency(names, start, end)

    def probe_names(self) -> list[str]:
        """Every probe that has a stored state, sorted."""
        return self._reader.probe_names()

    def rollups(self, name: str, start: float, end: float) -> list[HourRollup]:
        """The hourly rollups of probe `name` for hours overlapping [start, end), in order."""
        return self._reader.rollups(name, start, end)

    def sla(self, name: str, start: float, end: float) -> SLAFigures:
        """SLA figures of one probe over [start, end); see `sla_many`."""
        return self.sla_many([name], start, end)[name]

    def daily_uptime(
        self, names: Iterable[str], start_day: float, days: int
    ) -> dict[str, list[float | None]]:
        """Per UTC day from the one holding `start_day`, for `days` days: the percentage of
        measured time that was up (None for a day without measured time), for every name."""
        return self._reader.daily_uptime(names, start_day, days)

    def sla_many(self, names: Iterable[str], start: float, end: float) -> dict[str, SLAFigures]:
        """SLA figures over [start, end) for every name (zeros for a probe without data),
        all read in one snapshot."""
        return self._reader.sla_many(names, start, end)


if TYPE_CHECKING:
    # mypy proves here that Store implements the interface the rest of the app relies on.
    from probe.store.base import ResultStore

    _implements: type[ResultStore] = Store
