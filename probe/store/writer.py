"""The writer thread: the one place the store writes, and the retention it prunes by.

Writes never happen on the event loop. The store puts Observations (and outbox writes, and
flush markers) on a queue; this thread, with its own connection, drains whatever is queued
into a `Batch` and commits it in one transaction: raw results, transitions, the tracker's
state per probe, and the hourly and daily rollups (one upsert per (probe, hour) and per
(probe, UTC day), not one per result). While writes fail the batch is kept and retried with
a growing delay; a row SQLite refuses is skipped on its own, never the batch with it.

The rollup rows this thread last committed are kept in memory (`LatestRows`) so that the next
batch adds to them without reading them back; see `_write` for when they are forgotten.

Retention: raw results are kept `retention` seconds, hourly rollups and transitions 400 days,
a daily rollup until the last of its hours has gone. The writer prunes when it starts and then
at most once an hour.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from probe.core.tracker import Observation
from probe.durations import format_duration
from probe.errors import StoreError
from probe.store.batch import MAX_PENDING_RESULTS, Batch, FlushMarker
from probe.store.columns import alert_state_text
from probe.store.errors import as_store_error, is_data_error, reason
from probe.store.outbox import INSERT_OUTBOX, UPDATE_OUTBOX, OutboxWrite
from probe.store.rollups import (
    REPLACE_DAILY,
    REPLACE_HOURLY,
    SELECT_DAILY,
    SELECT_HOURLY,
    LatestRows,
    RollupRow,
    RollupSums,
    stored_row,
    sum_by_day,
)
from probe.store.schema import rollback
from probe.store.sla import DAY, HOUR

__all__ = ["DEFAULT_FLUSH", "DEFAULT_RETENTION", "ROLLUP_RETENTION", "Queued", "WriterThread"]

log = logging.getLogger("probe.store")

DEFAULT_RETENTION = 7 * 86400.0
ROLLUP_RETENTION = 400 * 86400.0

# What the store puts on the writer's queue.
Queued = Observation | FlushMarker | OutboxWrite

# Observations taken off the queue per transaction: large enough that a burst is one commit,
# small enough that one transaction never holds the write lock for long.
_MAX_BATCH = 20_000
_RETRY_MIN = 0.5
_RETRY_MAX = 30.0
# While writes keep failing, the ERROR that opened the outage is repeated this often (each
# failed retry in between is a DEBUG line), with what is held in memory by then.
_REMIND_EVERY = 600.0
# How long the idle writer sleeps before checking whether pruning is due.
_IDLE_TICK = 60.0
# After the first observation of a batch arrives, the writer gathers more for this long
# before committing (a flush or close commits at once); `settings.store.flush`, given as the
# writer's `flush`. One transaction per observation costs ~0.3 ms of CPU at steady rates;
# gathering makes it one per few hundred. A crash loses at most this window, which `probe run`
# never has on SIGINT/SIGTERM (it flushes). 0 commits whatever is queued at once.
DEFAULT_FLUSH = 0.25

_INSERT_RESULT = (
    "INSERT INTO results (probe, kind, endpoint, time, status, latency, message, details,"
    " http_status, cert_expiry) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TRANSITION = (
    "INSERT INTO transitions (probe, time, previous, current, message) VALUES (?, ?, ?, ?, ?)"
)
_UPSERT_STATE = (
    "INSERT OR REPLACE INTO probe_state (probe, status, since, ok_streak, fail_streak,"
    " last_time, outage_failures, alerts_sent, next_alert, updated, alert_state)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _resolve(future: concurrent.futures.Future[None], error: BaseException | None) -> None:
    """Settle `future` with `error` (None: success), unless it is settled already."""
    # The awaiting coroutine may have been cancelled, which cancels this future too.
    if future.done():
        return
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class WriterThread(threading.Thread):
    """The one thread that writes. It owns `conn`; nothing else touches it once started."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        inbox: queue.SimpleQueue[Queued],
        retention: float,
        clock: Callable[[], float],
        flush: float = DEFAULT_FLUSH,
    ) -> None:
        super().__init__(name="probe-store-writer", daemon=True)
        if not 0 <= flush <= 3600:
            raise ValueError(f"flush must be between 0 and 3600 seconds, got {flush}")
        self.flush = flush
        self.path = path
        self.conn = conn
        self.inbox = inbox
        self.retention = retention
        self.clock = clock
        self.batch = Batch()
        self.last_error: StoreError | None = None
        self._delay = 0.0  # > 0 while writes fail: wait this long before retrying
        # The current outage (writes failing): since when (monotonic), why, when to say it
        # again, and how many raw results were dropped past the bound.
        self._outage_since: float | None = None
        self._outage_reason = ""
        self._next_reminder = 0.0
        self._outage_dropped = 0
        self._last_prune: float | None = None
        self.rows_written = 0  # every row committed, all tables (read by the benchmarks)
        self.urgent = threading.Event()  # set by flush/close: commit now, do not gather
        # Outbox operations taken into the current batch, resolved after its commit attempt.
        self._outbox_ops: list[OutboxWrite] = []
        # The rollup rows last committed, per probe (see `_write`), and the file's
        # `PRAGMA data_version` they were read or written under.
        self._latest_hourly = LatestRows()
        self._latest_daily = LatestRows()
        self._data_version: int | None = None

    def run(self) -> None:
        self._prune_if_due()
        stop: FlushMarker | None = None
        while stop is None:
            markers = self._collect()
            error = self._commit()
            for op in self._outbox_ops:
                _resolve(op.future, error)
            self._outbox_ops.clear()
            for marker in markers:
                if marker.stop:
                    stop = marker
                else:
                    _resolve(marker.future, error)
        if self.batch:
            log.error(
                "store %s closed with %d observations not written: %s",
                self.path,
                self.batch.count,
                self.last_error.reason if self.last_error else "unknown error",
            )
        try:
            self.conn.close()
        except sqlite3.Error as exc:
            log.warning("store %s: closing the writer connection failed: %s", self.path, exc)
        _resolve(stop.future, None)

    def _collect(self) -> list[FlushMarker]:
        """Take what is queued into the batch; return the markers met on the way.

        Blocks until something arrives (waking now and then to prune). While writes fail,
        waits out the retry delay instead, unless a flush or close asks to try again now.
        """
        markers: list[FlushMarker] = []
        taken = 0
        deadline = time.monotonic() + self._delay if self._delay else None
        while taken < _MAX_BATCH:
            if markers or self._outbox_ops:
                # Someone awaits this commit: take what is queued and write it now.
                timeout = 0.0
            elif deadline is None and taken:
                # The first observation is in: let more gather for `flush` seconds. Sleep on
                # an event, not on the queue, so each further submit() does not wake this
                # thread (a thread switch per observation); flush() and close() set it.
                # With flush 0, take only what is queued already and commit it.
                if self.flush > 0:
                    self.urgent.wait(self.flush)
                self.urgent.clear()
                deadline = time.monotonic()
                timeout = 0.0
            elif deadline is None:
                timeout = _IDLE_TICK
            else:
                timeout = max(0.0, deadline - time.monotonic())
            try:
                item = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, FlushMarker):
                markers.append(item)
            elif isinstance(item, OutboxWrite):
                self.batch.add_outbox(item)
                self._outbox_ops.append(item)
                taken += 1
            else:
                try:
                    self.batch.add(item)
                except Exception:
                    # A malformed observation must not block the ones behind it.
                    log.exception("store %s: cannot record an observation; skipped", self.path)
                taken += 1
        if self.batch.dropped:
            if not self._outage_dropped:
                log.error(
                    "store %s: %d raw results are held in memory, the most kept while the"
                    " store cannot be written; from now on the oldest are dropped (rollups,"
                    " states and alerts are all kept, so SLA figures are not affected)",
                    self.path,
                    MAX_PENDING_RESULTS,
                )
            self._outage_dropped += self.batch.dropped
            self.batch.dropped = 0
        return markers

    def _commit(self) -> StoreError | None:
        """Write the batch in one transaction. On failure keep it for the next attempt."""
        if not self.batch:
            self._prune_if_due()
            return None
        try:
            try:
                self._write(self.batch)
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                self._write(self.batch, careful=True)
        except Exception as exc:
            error = as_store_error(self.path, exc)
            self.last_error = error
            self._delay = min(_RETRY_MAX, max(_RETRY_MIN, self._delay * 2))
            self._log_failure(error)
            return error
        if self._outage_since is not None:
            self._log_recovery()
        self.batch = Batch()
        self.last_error = None
        self._delay = 0.0
        self._prune_if_due()
        return None

    def _log_failure(self, error: StoreError) -> None:
        """One ERROR when an outage starts (or its reason changes), then one every
        `_REMIND_EVERY`; each failed retry in between is DEBUG only."""
        now = time.monotonic()
        held = len(self.batch.results)
        if self._outage_since is None or error.reason != self._outage_reason:
            if self._outage_since is None:
                self._outage_since = now
            self._outage_reason = error.reason
            self._next_reminder = now + _REMIND_EVERY
            log.error(
                "store %s cannot be written: %s: %d results held in memory (bounded at %d raw"
                " results; rollups, states and alerts are all kept), probing and alerting"
                " continue; writing is retried every %s at most",
                self.path,
                error.reason,
                held,
                MAX_PENDING_RESULTS,
                format_duration(_RETRY_MAX),
            )
        elif now >= self._next_reminder:
            self._next_reminder = now + _REMIND_EVERY
            log.error(
                "store %s still cannot be written after %s: %s: %d results held in memory"
                " (bounded at %d raw results), %d older ones dropped; probing and alerting"
                " continue",
                self.path,
                format_duration(now - self._outage_since),
                error.reason,
                held,
                MAX_PENDING_RESULTS,
                self._outage_dropped,
            )
        else:
            log.debug(
                "store %s: writing %d results failed again (%s); retrying in %.1fs",
                self.path,
                held,
                error.reason,
                self._delay,
            )

    def _log_recovery(self) -> None:
        assert self._outage_since is not None
        dropped = (
            f" ({self._outage_dropped} older raw results were dropped)"
            if self._outage_dropped
            else ""
        )
        log.warning(
            "store %s can be written again after %s: %d results held in memory are written%s",
            self.path,
            format_duration(time.monotonic() - self._outage_since),
            len(self.batch.results),
            dropped,
        )
        self._outage_since = None
        self._outage_reason = ""
        self._outage_dropped = 0

    def _write(self, batch: Batch, *, careful: bool = False) -> None:
        """One transaction for the whole batch.

        `careful` writes row by row and skips (with a log line) a row SQLite refuses, so that
        one bad value (a type SQLite cannot bind, a string too big) cannot block every later
        write the way retrying the same failing batch forever would.

        The rollup rows written are kept in memory for the next batch only once COMMIT has
        succeeded, and not from a careful write (it may have skipped some). Any failure
        forgets them all: after a failed statement or COMMIT what the file holds is not known
        for sure, and reading it back costs one batch of reads.
        """
        conn = self.conn
        now = self.clock()
        states = [
            (
                s.name,
                s.status.value,
                s.since,
                s.ok_streak,
                s.fail_streak,
                s.last_time,
                s.outage_failures,
                s.alerts_sent,
                s.next_alert,
                now,
                alert_state_text(s),
            )
            for s in batch.states.values()
        ]
        # A batch with outbox writes is synced to disk at its commit (FULL): an alert's row
        # is committed before its first send, and must survive a power cut or a kernel that
        # stops writing the disk, not only a crash of this process (which NORMAL survives).
        # Alerts are rare, so these fsyncs cost nothing that shows.
        durable = bool(batch.outbox_adds or batch.outbox_updates)
        if durable:
            conn.execute("PRAGMA synchronous = FULL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Under the write lock: nobody else can change the file until COMMIT.
            self._forget_rollups_if_written_elsewhere()
            self._insert(_INSERT_RESULT, batch.results, careful)
            self._insert(_INSERT_TRANSITION, batch.transitions, careful)
            rows = self._merged_rows(batch.rollups, SELECT_HOURLY, self._latest_hourly)
            self._insert(REPLACE_HOURLY, [row.columns for row in rows], careful)
            daily = self._merged_rows(sum_by_day(batch.rollups), SELECT_DAILY, self._latest_daily)
            self._insert(REPLACE_DAILY, [row.columns for row in daily], careful)
            self._insert(_UPSERT_STATE, states, careful)
            self._insert(INSERT_OUTBOX, batch.outbox_adds, careful)
            self._insert(UPDATE_OUTBOX, batch.outbox_updates, careful)
            conn.execute("COMMIT")
            if not careful:
                self._latest_hourly.keep(rows)
                self._latest_daily.keep(daily)
            self.rows_written += (
                len(batch.results)
                + len(batch.transitions)
                + len(rows)
                + len(daily)
                + len(states)
                + len(batch.outbox_adds)
                + len(batch.outbox_updates)
            )
        except BaseException:
            self._forget_rollups()
            rollback(conn)
            raise
        finally:
            if durable:
                conn.execute("PRAGMA synchronous = NORMAL")

    def _merged_rows(
        self, sums: dict[tuple[str, int], RollupSums], select: str, latest: LatestRows
    ) -> list[RollupRow]:
        """The rows to write for `sums`: each added to the row last committed for its key,
        taken from `latest` when held there, else read with `select`."""
        conn = self.conn
        rows = []
        for (probe, start), add in sums.items():
            old = latest.get(probe, start)
            if old is None:
                old = stored_row(probe, start, conn.execute(select, (probe, start)).fetchone())
            rows.append(add.merged_row(probe, start, old))
        return rows

    def _forget_rollups(self) -> None:
        self._latest_hourly.clear()
        self._latest_daily.clear()

    def _forget_rollups_if_written_elsewhere(self) -> None:
        """Forget the rollup rows held when another connection has committed to the file
        since this one last looked (`probe report` or `probe sla` pruning at their start, a
        second `probe run` on the same store, sqlite3 by hand): a held row may be stale.
        This connection's own commits do not change `PRAGMA data_version`."""
        (version,) = self.conn.execute("PRAGMA data_version").fetchone()
        if version != self._data_version:
            self._forget_rollups()
            self._data_version = version

    def _insert(self, sql: str, rows: Collection[tuple[Any, ...]], careful: bool) -> None:
        if not rows:
            return
        if not careful:
            self.conn.executemany(sql, rows)
            return
        for row in rows:
            try:
                self.conn.execute(sql, row)
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                # A refused statement leaves the transaction open and the other rows in it.
                log.error(
                    "store %s: a row for %r cannot be stored and is skipped: %s",
                    self.path,
                    row[0],
                    exc,
                )

    def _prune_if_due(self) -> None:
        now = self.clock()
        last = self._last_prune
        if last is not None and 0 <= now - last < HOUR:
            return
        # A held rollup row may be one of those deleted: it must not be written back.
        self._forget_rollups()
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM results WHERE time < ?", (now - self.retention,))
                conn.execute("DELETE FROM rollups_hourly WHERE hour < ?", (now - ROLLUP_RETENTION,))
                # A day goes once all its hours have gone.
                conn.execute(
                    "DELETE FROM rollups_daily WHERE day + ? <= ?", (DAY, now - ROLLUP_RETENTION)
                )
                conn.execute("DELETE FROM transitions WHERE time < ?", (now - ROLLUP_RETENTION,))
                conn.execute(
                    "DELETE FROM outbox WHERE state != 'pending' AND created < ?",
                    (now - self.retention,),
                )
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
        except Exception as exc:
            # Try again in a minute rather than at once: a full disk fails a DELETE too.
            self._last_prune = now - HOUR + 60
            log.warning("store %s: pruning old rows failed: %s", self.path, reason(exc))
            return
        self._last_prune = now
