"""The dispatcher: every alert reaches its notifiers at least once, and none delays a check.

`notify(notification, channels)` only queues (it is called from the App's result pipeline);
sending happens in tasks of its own, beside the scheduler, at most `concurrency` at a time, so
a hanging or failing chat API never delays a check and 1,000 simultaneous downs do not open
1,000 connections. For each notifier the router picks, one outbox row
(`<notification id>:<notifier name>`) is committed to the store BEFORE the first send, and
marked delivered once the service accepted it. Then (the README's alert semantics):

- quick retries: `retry.times` attempts after the first, waiting `retry.interval` doubling each
  time, and at least what the service asked for (`DeliveryError.retry_after`, Retry-After);
- a permanent refusal (a 4xx other than 429, a message that cannot be rendered) is logged with
  the service's error text and marked `failed`: kept for inspection, never resent;
- after the quick retries, the row waits in the outbox and is tried again every
  `outbox_interval` (a minute) until `max_age` after it was made, then it is `dropped`, with
  a log line and the metric `probe_notifications_total{result="dropped"}`;
- at start-up, rows still pending (the process died or stopped before they were delivered)
  are loaded and sent again; `stop(grace)` lets sends in flight finish up to `grace`, and
  what is left stays pending for the next start.

Grouping (`group`, settings.notify.group; grouping.py decides): a down or recovery whose row
is committed waits in its notifier's window instead of going out; when the window closes,
more than `threshold` waiting go out as ONE summary delivery, which has no outbox row of its
own: it stands for its members' rows, and what happens to it is recorded on each of them
(attempts, errors, delivered). A summary refused for good (or that cannot be rendered) falls
back to its members, sent one by one, so none is lost; one too old is dropped with its
members. Rows waiting when the process stops stay pending and go through a window again at
the next start; `stop(grace)` closes every window at once and sends what it can within the
grace; a reload keeps the windows (they are keyed by notifier name).

Delivery is at-least-once: a duplicate needs the process to die between the service's
acceptance and the store's record of it. Dry runs (`probe run --dry-notify`,
`settings.notify.dry`, a notifier's `dry`) log the exact payload and where it would go (never
a secret: payloads hold none, and `target()` strips them) instead of sending, and count as
delivered.

The outbox is a narrow Protocol (`probe.store.base.Outbox`) that the App fills with the store:
notify imports only the store's interface, declared once there, never the store itself
(docs/ARCHITECTURE.md). Without one (`probe notify-test`), nothing is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from probe.config.models import GroupSettings, RetrySettings
from probe.durations import format_duration
from probe.notify.base import DeliveryError, Event, Notification, Notifier
from probe.notify.grouping import GroupPolicy, Windows, groupable, summarize
from probe.notify.metrics import DeliveryOutcome, NotifyMetrics, notify_metrics
from probe.notify.router import Router
from probe.store.base import Outbox, OutboxChanges, OutboxItem, OutboxRow, OutboxState

__all__ = [
    "DEFAULT_CONCURRENCY",
    "OUTBOX_INTERVAL",
    "Dispatcher",
    "Outbox",
    "OutboxRecord",
    "OutboxState",
    "describe",
    "show_payload",
]

log = logging.getLogger("probe.notify")

OUTBOX_INTERVAL = 60.0
DEFAULT_CONCURRENCY = 32
# Notifiers bound their own requests by `timeout`; this bounds one that does not (a bug, a
# thread that never returns), so a send can never hold a concurrency slot for ever.
_SEND_MARGIN = 5.0

# Re-exported: the dispatcher's outbox types, declared once with the store's interface.
OutboxRecord = OutboxItem


@dataclass(eq=False, slots=True)
class _Delivery:
    """One notification on its way to one notifier."""

    id: str
    notifier: Notifier[Any]
    notification: Notification
    created: float
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    parked: bool = False  # waiting in the outbox for the retry loop, no task working on it
    # A summary (grouping): the deliveries it stands for. It has no outbox row of its own;
    # its attempts and outcome are recorded on each member's row.
    members: list[_Delivery] | None = None

    def record(self) -> OutboxRow:
        data = json.dumps(self.notification.to_json(), ensure_ascii=False, separators=(",", ":"))
        return OutboxRow(
            self.id, self.notifier.name, data, self.created, self.attempts, self.next_attempt
        )


def describe(notification: Notification) -> str:
    """`down notification for api`, `sla notification`: for log lines."""
    if notification.event is Event.GROUP:
        return f"summary ({notification.message})"
    what = f"{notification.event.value} notification"
    return f"{what} for {notification.probe}" if notification.probe else what


def show_payload(payload: Any) -> str:
    """A payload as logged by dry runs: text as it is, anything else as JSON."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    return json.dumps(payload, ensure_ascii=False, default=str)


def _label(notifier: Notifier[Any]) -> str:
    return f"{notifier.name} ({notifier.kind})"


class Dispatcher:
    """Routes notifications to notifiers and delivers them through the outbox.

    `start()` before the first `notify()` that should survive a restart (it also resends what
    an earlier run left pending); `stop(grace)` at the end, before the outbox closes.
    `outbox_interval` is the outbox's retry period (tests shorten it); `clock` gives Unix time.
    """

    def __init__(
        self,
        notifiers: Sequence[Notifier[Any]],
        outbox: Outbox | None = None,
        *,
        retry: RetrySettings | None = None,
        max_age: float = 86400.0,
        sla_channels: Sequence[str] = (),
        outbox_interval: float = OUTBOX_INTERVAL,
        concurrency: int = DEFAULT_CONCURRENCY,
        metrics: NotifyMetrics | None = None,
        clock: Callable[[], float] = time.time,
        group: GroupSettings | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.router = Router(notifiers, sla_channels=sla_channels)
        self.retry = retry or RetrySettings()
        self.max_age = max_age
        self.outbox_interval = outbox_interval
        self.metrics = metrics or notify_metrics()
        self._outbox = outbox
        self._clock = clock
        self._by_name = {n.name: n for n in notifiers}
        self._semaphore = asyncio.Semaphore(concurrency)
        # Every notification not yet delivered, failed or dropped, by outbox id.
        self._deliveries: dict[str, _Delivery] = {}
        self._incoming: list[_Delivery] = []  # queued by notify(), not yet in the outbox
        self.group = GroupPolicy.of(group)  # without settings: no grouping
        self._windows: Windows[_Delivery] = Windows()  # committed, waiting for a summary
        self._summaries: dict[str, _Delivery] = {}  # summaries not settled yet, by id
        self._admitter: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._retry_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._started = False
        self._stopped = False

    # ----------------------------------------------------------------- public

    @property
    def pending(self) -> int:
        """Notifications not yet delivered, failed or dropped (in flight or waiting)."""
        return len(self._deliveries)

    def notify(self, notification: Notification, channels: Iterable[str]) -> int:
        """Queue `notification` for every notifier sharing a channel with `channels` (the
        default channel when empty). Never blocks; returns the number of notifiers."""
        return self._queue(notification, self.router.route(channels))

    def notify_sla(self, notification: Notification) -> int:
        """Queue an SLA report for the notifiers on `settings.sla.channels`."""
        return self._queue(notification, self.router.for_sla())

    def reconfigure(
        self,
        notifiers: Sequence[Notifier[Any]],
        *,
        retry: RetrySettings | None = None,
        max_age: float | None = None,
        sla_channels: Sequence[str] = (),
        group: GroupSettings | None = None,
    ) -> list[Notifier[Any]]:
        """A reload's notifiers, in place: what is queued, in flight or waiting in the outbox
        stays, and from its next attempt goes to the notifier of its name now configured (a
        row whose notifier is gone is dropped then, as at start). Returns the notifiers no
        longer used, to close once the sends in flight (`drain`) are over."""
        retired = [n for n in self.router.notifiers if n not in notifiers]
        self.router = Router(notifiers, sla_channels=sla_channels)
        self._by_name = {n.name: n for n in notifiers}
        now = self._clock()
        for delivery in self._waiting():
            if (
                delivery.parked
                and self._by_name.get(delivery.notifier.name) is not delivery.notifier
            ):
                # Its notifier changed (a fixed URL, a new token): try again now rather than
                # at the next round of the outbox.
                delivery.next_attempt = min(delivery.next_attempt, now)
        if retry is not None:
            self.retry = retry
        if max_age is not None:
            self.max_age = max_age
        if group is not None:
            # Open windows stay: they close by the new `wait` (at once when it is 0).
            self.group = GroupPolicy.of(group)
        self._wake.set()  # the retry loop reads the deliveries' notifiers anew
        return retired

    async def start(self) -> None:
        """Start the retry loop and resend what an earlier run left pending (idempotent)."""
        if self._started:
            return
        self._started = True
        self._retry_task = asyncio.create_task(self._retry_loop(), name="notify-retry")
        if self._outbox is None:
            return
        try:
            rows = await asyncio.to_thread(self._outbox.outbox_pending, None)
        except Exception as exc:
            log.error("cannot read the notification outbox (%s); nothing is resent now", exc)
            return
        if rows:
            log.info("resending %d notification(s) left pending by an earlier run", len(rows))
        for row in rows:
            self._resume(row)
        self._update_gauge()

    async def drain(self) -> None:
        """Wait until nothing is being sent or queued (waiting rows may remain)."""
        while True:
            tasks = set(self._tasks)
            if self._admitter is not None and not self._admitter.done():
                tasks.add(self._admitter)
            if not tasks:
                return
            await asyncio.wait(tasks)

    async def stop(self, grace: float = 5.0) -> None:
        """Let sends in flight finish up to `grace` seconds, then cancel the rest, which stay
        pending in the outbox for the next start. Retries waiting for their next try stop
        waiting at once. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._retry_task is not None:
            self._retry_task.cancel()
            await asyncio.gather(self._retry_task, return_exceptions=True)
        if self._admitter is not None:
            # Only writes the outbox (bounded: the store answers each commit attempt); what
            # notify() queued must be on disk before the store closes.
            await asyncio.gather(self._admitter, return_exceptions=True)
        # What waits for a summary goes now, summarised or not, within the same grace.
        self._close_windows(self._windows.close_all())
        tasks = set(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(0.0, grace))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        # Attempts cut short are on record too (one transaction for all of them).
        # (A summary's members are recorded through the summary, never twice.)
        in_summaries = {m.id for s in self._summaries.values() for m in s.members or ()}
        await asyncio.gather(
            *(
                self._record(d, attempts=d.attempts, last_error=d.last_error or None)
                for d in self._waiting()
                if d.attempts and not d.parked and d.id not in in_summaries
            )
        )
        if self._deliveries:
            if self._outbox is not None:
                log.info(
                    "%d notification(s) not delivered yet; they stay in the outbox and are"
                    " sent at the next start",
                    len(self._deliveries),
                )
            else:
                log.warning(
                    "%d notification(s) not delivered and lost (no outbox)", len(self._deliveries)
                )

    # ----------------------------------------------------------------- queueing

    def _queue(self, notification: Notification, targets: Sequence[Notifier[Any]]) -> int:
        if self._stopped:
            log.warning("%s not sent: alerting has stopped", describe(notification))
            return 0
        if not targets:
            log.debug("%s: no notifier on its channels", describe(notification))
            return 0
        now = self._clock()
        for notifier in targets:
            delivery = _Delivery(
                f"{notification.id}:{notifier.name}", notifier, notification, now, next_attempt=now
            )
            if delivery.id in self._deliveries:
                continue  # the same notification queued twice: one delivery is enough
            self._deliveries[delivery.id] = delivery
            self._incoming.append(delivery)
        self._update_gauge()
        if self._admitter is None or self._admitter.done():
            self._admitter = asyncio.create_task(self._admit(), name="notify-admit")
        return len(targets)

    async def _admit(self) -> None:
        """Commit what notify() queued to the outbox (a burst in one transaction), then send."""
        while self._incoming:
            batch, self._incoming = self._incoming, []
            if self._outbox is not None:
                try:
                    await self._outbox.outbox_add([d.record() for d in batch])
                except Exception as exc:
                    # Better an alert sent now than one waiting for the disk. The store keeps
                    # the rows in memory and writes them once it can; only a stop before then
                    # loses them (the store's close says how many results it could not write).
                    log.error(
                        "cannot record %d notification(s) in the outbox yet (%s); sending them"
                        " anyway; the rows are written once the store can be, and are not resent"
                        " after a restart that comes first",
                        len(batch),
                        exc,
                    )
            for delivery in batch:
                self._send_or_hold(delivery)

    def _resume(self, row: OutboxItem) -> None:
        """A row an earlier run left pending: send it again."""
        notifier = self._by_name.get(row.notifier)
        try:
            notification = Notification.from_json(json.loads(row.notification))
        except Exception as exc:
            log.error("outbox row %s cannot be read (%s); marked failed", row.id, exc)
            self._track(self._save(row.id, state="failed", last_error=f"unreadable: {exc}"))
            return
        if notifier is None:
            log.warning(
                "%s was for notifier %r, which is no longer configured; dropped",
                describe(notification),
                row.notifier,
            )
            self.metrics.count(row.notifier, "dropped")
            self._track(
                self._save(row.id, state="dropped", last_error="notifier no longer configured")
            )
            return
        if row.id in self._deliveries:
            return
        delivery = _Delivery(
            row.id,
            notifier,
            notification,
            row.created,
            attempts=row.attempts,
            next_attempt=row.next_attempt,
        )
        self._deliveries[delivery.id] = delivery
        # Quick retries again: this is a new run, and the service may be back (after its
        # window, when grouping: a restart after an outage may leave many).
        self._send_or_hold(delivery)

    # ----------------------------------------------------------------- grouping

    def _send_or_hold(self, delivery: _Delivery) -> None:
        """Send now, or let a down/recovery wait in its notifier's window (grouping)."""
        if not (self.group.enabled and self._started and groupable(delivery.notification)):
            self._spawn(delivery, quick=True)
            return
        self._windows.hold(delivery.notifier.name, delivery, self._clock())
        self._wake.set()  # the retry loop closes the windows too

    def _close_windows(self, closed: list[tuple[str, list[_Delivery]]]) -> None:
        """Each closed window's members go out as one summary (more than `threshold`) or
        one by one."""
        for name, members in closed:
            if not self.group.summarises(len(members)):
                self._spawn_in_order(members)
                continue
            try:
                notification = summarize([m.notification for m in members], now=self._clock())
            except Exception:
                # A bug of ours must neither lose them nor stop the retry loop that runs this.
                log.exception("cannot summarise %d notifications; sending each", len(members))
                self._spawn_in_order(members)
                continue
            summary = _Delivery(
                f"{notification.id}:{name}",
                self._by_name.get(name, members[0].notifier),
                notification,
                min(m.created for m in members),
                members=members,
            )
            self._summaries[summary.id] = summary
            self._spawn(summary, quick=True)

    async def _fall_back(self, summary: _Delivery, reason: str) -> None:
        """A summary refused for good: its members go out one by one instead."""
        members = summary.members or []
        log.error(
            "%s: %s refused: %s; sending its %d notifications one by one",
            _label(summary.notifier),
            describe(summary.notification),
            reason,
            len(members),
        )
        self._summaries.pop(summary.id, None)
        await self._record(summary, attempts=summary.attempts, last_error=reason)
        for member in members:
            member.attempts += summary.attempts
            member.last_error = reason
        self._spawn_in_order(members)

    def _spawn_in_order(self, members: list[_Delivery]) -> None:
        """Send a window's members one by one. Without grouping a probe's down went out a
        check or more before its recovery; from one window both would go at once and might
        arrive the wrong way round, so each probe's are sent one after the other."""
        by_probe: dict[str | None, list[_Delivery]] = {}
        for member in members:
            by_probe.setdefault(member.notification.probe, []).append(member)
        for chain in by_probe.values():
            if len(chain) == 1:
                self._spawn(chain[0], quick=True)
                continue
            for member in chain:
                member.parked = False
            self._track(self._deliver_in_order(chain), name=f"notify {chain[0].id} and after")

    async def _deliver_in_order(self, chain: list[_Delivery]) -> None:
        for delivery in chain:
            await self._deliver(delivery, quick=True)

    def _waiting(self) -> list[_Delivery]:
        """Every delivery the retry loop may send: single ones and summaries (their members
        are in `_deliveries` too, but only the summary is sent)."""
        return [*self._deliveries.values(), *self._summaries.values()]

    def _spawn(self, delivery: _Delivery, *, quick: bool) -> None:
        delivery.parked = False
        self._track(self._deliver(delivery, quick), name=f"notify {delivery.id}")

    def _track(self, coro: Any, name: str | None = None) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------- delivery

    async def _deliver(self, delivery: _Delivery, quick: bool) -> None:
        try:
            retry = delivery.notifier.spec.retry or self.retry
            tries = 1 + retry.times if quick else 1
            error = DeliveryError("not tried")
            for attempt in range(tries):
                outcome = await self._attempt(delivery)
                if outcome is None:
                    return
                error = outcome
                if attempt + 1 >= tries:
                    break
                wait = retry.interval * 2**attempt
                if error.retry_after is not None:
                    wait = max(wait, error.retry_after)
                    if wait > self.outbox_interval:
                        break  # a long wait the service asked for: the outbox keeps it
                if not await self._sleep(wait):
                    break  # stopping: leave it to the outbox
            await self._park(delivery, error)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug of ours must not lose the notification: it waits for the next round.
            log.exception("unexpected error delivering %s", describe(delivery.notification))
            delivery.next_attempt = self._clock() + self.outbox_interval
            delivery.parked = True
            self._wake.set()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, unless stopping; False if the dispatcher is stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        return not self._stopping.is_set()

    async def _attempt(self, delivery: _Delivery) -> DeliveryError | None:
        """One try. None when the delivery is settled (sent, dry, failed, dropped); the error
        when it may be tried again."""
        what = describe(delivery.notification)
        notifier = self._by_name.get(delivery.notifier.name)
        if notifier is None:
            # A reload removed its notifier (a restart would drop it the same way).
            log.warning(
                "%s was for notifier %r, which is no longer configured; dropped",
                what,
                delivery.notifier.name,
            )
            await self._settle(
                delivery, "dropped", "dropped", error="notifier no longer configured"
            )
            return None
        delivery.notifier = notifier  # a reload may have replaced it
        if self._clock() >= delivery.created + self.max_age:
            await self._drop(delivery)
            return None
        try:
            payload = notifier.render(delivery.notification)
        except Exception as exc:
            message = f"cannot render the message: {type(exc).__name__}: {exc}"
            if delivery.members is not None:
                await self._fall_back(delivery, message)
                return None
            log.error("%s: %s: %s; not sent", _label(notifier), what, message)
            await self._settle(delivery, "failed", "failed", error=message)
            return None
        if notifier.dry:
            log.info(
                "dry run: %s would send the %s to %s: %s",
                _label(notifier),
                what,
                notifier.spec.target(),
                show_payload(payload),
            )
            await self._settle(delivery, "delivered", "dry")
            return None
        error: DeliveryError | None = None
        async with self._semaphore:
            delivery.attempts += 1
            try:
                async with asyncio.timeout(notifier.timeout + _SEND_MARGIN):
                    await notifier.send(payload)
            except DeliveryError as exc:
                error = exc
            except TimeoutError:
                error = DeliveryError(f"no answer within {format_duration(notifier.timeout)}")
            except Exception as exc:
                # A notifier bug. Its text may hold what the notifier should have kept out
                # (a URL with a token): only the type is shown.
                log.debug("%s: send raised", _label(notifier), exc_info=True)
                error = DeliveryError(f"unexpected error in the notifier ({type(exc).__name__})")
        if error is None:
            log.info("%s: %s delivered", _label(notifier), what)
            await self._settle(delivery, "delivered", "sent")
            return None
        delivery.last_error = error.message
        if error.permanent and delivery.members is not None:
            await self._fall_back(delivery, error.message)
            return None
        if error.permanent:
            log.error("%s: %s refused: %s; not retried", _label(notifier), what, error.message)
            await self._settle(delivery, "failed", "failed", error=error.message)
            return None
        log.warning(
            "%s: %s not delivered (attempt %d): %s",
            _label(notifier),
            what,
            delivery.attempts,
            error.message,
        )
        return error

    async def _park(self, delivery: _Delivery, error: DeliveryError) -> None:
        """Quick retries are over: the outbox tries again every `outbox_interval`."""
        wait = self.outbox_interval
        if error.retry_after is not None:
            wait = max(wait, error.retry_after)
        delivery.next_attempt = self._clock() + wait
        if not self._stopping.is_set():
            log.warning(
                "%s: %s not delivered after %d attempt(s) (%s); retrying every %s for up to %s",
                _label(delivery.notifier),
                describe(delivery.notification),
                delivery.attempts,
                error.message,
                format_duration(self.outbox_interval),
                format_duration(self.max_age),
            )
        try:
            await self._record(
                delivery,
                attempts=delivery.attempts,
                next_attempt=delivery.next_attempt,
                last_error=error.message,
            )
        finally:
            delivery.parked = True
            self._wake.set()

    async def _drop(self, delivery: _Delivery) -> None:
        last = delivery.last_error or "never tried"
        log.error(
            "%s: dropping the %s: not delivered within %s (last error: %s)",
            _label(delivery.notifier),
            describe(delivery.notification),
            format_duration(self.max_age),
            last,
        )
        await self._settle(delivery, "dropped", "dropped", error=delivery.last_error or None)

    async def _settle(
        self,
        delivery: _Delivery,
        state: OutboxState,
        outcome: DeliveryOutcome,
        *,
        error: str | None = None,
    ) -> None:
        """The delivery is over: count it, forget it, record it (a summary: each member)."""
        if delivery.members is not None:
            self._summaries.pop(delivery.id, None)
            for member in delivery.members:
                self._deliveries.pop(member.id, None)
                self.metrics.count(delivery.notifier.name, outcome)
            if state == "delivered":
                self.metrics.count_grouped(delivery.notifier.name, len(delivery.members))
        else:
            self._deliveries.pop(delivery.id, None)
            self.metrics.count(delivery.notifier.name, outcome)
        self._update_gauge()
        await self._record(
            delivery,
            state=state,
            attempts=delivery.attempts,
            last_error=error,
            delivered_at=self._clock() if state == "delivered" else None,
        )

    async def _record(self, delivery: _Delivery, **changes: Unpack[OutboxChanges]) -> None:
        """`_save` on the delivery's row, or on each member's row for a summary (attempts
        add to what each member had made on its own); one store transaction for them all."""
        if delivery.members is None:
            await self._save(delivery.id, **changes)
            return
        saves = []
        for member in delivery.members:
            mine = OutboxChanges(**changes)
            if changes.get("attempts") is not None:
                mine["attempts"] = member.attempts + delivery.attempts
            saves.append(self._save(member.id, **mine))
        await asyncio.gather(*saves)

    async def _save(self, id: str, **changes: Unpack[OutboxChanges]) -> None:
        """`outbox_update`, if there is an outbox; a failure is logged, not raised."""
        if self._outbox is None:
            return
        try:
            await self._outbox.outbox_update(id, **changes)
        except Exception as exc:
            log.error("cannot record the outcome of outbox row %s: %s", id, exc)

    # ----------------------------------------------------------------- the outbox's round

    async def _retry_loop(self) -> None:
        """Sends each waiting delivery again when it is due (or drops it once too old)."""
        while True:
            now = self._clock()
            self._close_windows(self._windows.close_due(now, self.group.wait))
            wake_at = self._windows.next_close(self.group.wait)
            for delivery in self._waiting():
                if not delivery.parked:
                    continue
                due = min(delivery.next_attempt, delivery.created + self.max_age)
                if due <= now:
                    self._spawn(delivery, quick=False)
                elif wake_at is None or due < wake_at:
                    wake_at = due
            self._wake.clear()
            timeout = None if wake_at is None else max(0.0, wake_at - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _update_gauge(self) -> None:
        self.metrics.outbox_pending.set(len(self._deliveries))
