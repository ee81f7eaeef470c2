"""One function per `probe` command: the application layer the CLI is a thin shell over.

Each function takes a loaded Config (and the command's own arguments), does the work with the
parts the composition root (probe.app) and the assembly layer build, and returns plain data:
it prints nothing and chooses no exit code. probe.cli formats what comes back and maps the
exceptions to exit codes: `RequestError` (the arguments do not fit the config) to 2,
`UnavailableError`, StoreError and StartupError (what the command needs cannot be had) to 3.

The store, the web layer, the notifiers and the App are imported inside the functions that
use them: `probe check` and `probe once` start without loading any of them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from probe.config import Config
from probe.core.result import Result

if TYPE_CHECKING:
    from probe.notify.base import Notification, Notifier

__all__ = [
    "ActionError",
    "CheckSummary",
    "NotifierTrial",
    "RequestError",
    "SLATable",
    "SampleDelivery",
    "UnavailableError",
    "WrittenReport",
    "check_once",
    "check_summary",
    "notify_test",
    "run",
    "sla_table",
    "write_report",
]


class ActionError(Exception):
    """A command could not do what was asked; `str(err)` says why, for the user."""


class RequestError(ActionError):
    """The command's arguments do not fit the config (an unknown SLA window or notifier)."""


class UnavailableError(ActionError):
    """What the command needs cannot be had (no store yet, a target that cannot be written)."""


# --- probe run ---------------------------------------------------------------------------------


async def run(config: Config, *, dry_notify: bool = False) -> int:
    """Probe until SIGINT/SIGTERM (`probe run`); 0 once stopped cleanly. Raises StoreError or
    StartupError when the store or the web server cannot be had."""
    from probe.app import App  # the App pulls in the store, the web layer and the notifiers

    return await App(config, dry_notify=dry_notify).run()


# --- probe check -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckSummary:
    """What `probe check` says of a valid config. Kinds are sorted by name."""

    path: Path
    probes: int
    probe_kinds: dict[str, int]
    disabled: int
    notifiers: int
    notifier_kinds: dict[str, int]
    store: Path
    # HTTP probes that keep our default healthy codes (200-399; EaseProbe's is 0-499) ...
    http_default_codes: int = 0
    # ... and, per `success_code` a probe sets (as text), how many probes set it.
    http_own_codes: dict[str, int] = field(default_factory=dict)
    # Why `probe run` would refuse the status page path the config names, if it would.
    status_problem: str | None = None
    # For a folder of config files: each file's name in it, probes and notifiers, in order.
    files: list[tuple[str, int, int]] = field(default_factory=list)


def check_summary(config: Config) -> CheckSummary:
    """The summary `probe check` prints of a config that loaded."""
    defaulted = 0
    own: Counter[str] = Counter()
    for spec in config.probes:
        describe = getattr(spec, "success_code_text", None)
        if describe is None:
            continue
        # What counts as a healthy HTTP status is said aloud: a file moved over from EaseProbe
        # may rely on its default, under which a 404 is healthy.
        if "success_code" in spec.model_fields_set:
            own[describe()] += 1
        else:
            defaulted += 1
    return CheckSummary(
        path=config.path,
        probes=len(config.probes),
        probe_kinds=dict(sorted(Counter(spec.kind for spec in config.probes).items())),
        disabled=sum(1 for spec in config.probes if not spec.enabled),
        notifiers=config.notifier_count,
        notifier_kinds=dict(sorted(config.notifier_counts.items())),
        store=config.settings.store.path,
        http_default_codes=defaulted,
        http_own_codes=dict(sorted(own.items())),
        status_problem=_status_problem(config),
        files=[(f.path.name, f.probes, f.notifiers) for f in config.files] if config.folder else [],
    )


def _status_problem(config: Config) -> str | None:
    """The reason `probe run` would refuse settings.status.path at start (the same check),
    so `check` says it first; None when it would not, or for the default path (made)."""
    from probe.errors import StartupError
    from probe.web.static_files import check_target

    status = config.settings.status
    if "path" not in status.model_fields_set:
        return None
    try:
        check_target(status.path)
    except StartupError as err:
        return str(err)
    return None


# --- probe once --------------------------------------------------------------------------------


async def check_once(
    config: Config, on_done: Callable[[Result], None] | None = None
) -> list[Result]:
    """Check every enabled probe once (`probe once`), `settings.probe.concurrency` at a time;
    `on_done` is called with each result as it comes. Results in config order. Push probes
    are not checked (their jobs call in): each is judged from the store's last result, as
    the running App would judge it now (unknown without a store or a result)."""
    from probe.assembly import build_probers
    from probe.core.scheduler import run_all_once
    from probe.probers.base import SharedResources

    pushed = await asyncio.to_thread(_push_verdicts, config)
    resources = SharedResources()
    probers = build_probers([s for s in config.enabled_probes if s.scheduled], resources)
    try:
        checked = iter(
            await run_all_once(
                probers, concurrency=config.settings.probe.concurrency, on_done=on_done
            )
        )
        results = []
        for spec in config.enabled_probes:
            result = next(checked) if spec.scheduled else pushed[spec.name]
            if not spec.scheduled and on_done is not None:
                on_done(result)
            results.append(result)
        return results
    finally:
        for prober in probers:
            await prober.aclose()
        await resources.aclose()


def _push_verdicts(config: Config) -> dict[str, Result]:
    """Each enabled push probe's verdict from the store (blocking: run it in a thread)."""
    from probe.push import push_specs, stored_verdict

    specs = push_specs(config.enabled_probes)
    last: dict[str, Result | None] = {}
    if specs and config.settings.store.path.is_file():
        from probe.app import open_store
        from probe.web.data import read_now

        store = open_store(config.settings)
        try:
            # What the running App would start from: the same read.
            tracker = read_now(store, [spec.name for spec in specs])
        finally:
            store.close_sync()
        last = {spec.name: tracker.now(spec.name).last for spec in specs}
    now = time.time()
    return {spec.name: stored_verdict(spec, last.get(spec.name), now) for spec in specs}


# --- probe sla ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SLATable:
    """SLA figures of every configured probe over [start, end) (`probe sla`).

    `rows` are `probe.reports.sla_rows`, the shape `probe sla --format json` prints. `start`
    is 0 for the window `all` (since the first record); `timezone` is settings.timezone, in
    which the period is shown."""

    window: str
    start: float
    end: float
    timezone: ZoneInfo
    rows: list[dict[str, Any]]


def sla_table(config: Config, window: str, now: datetime | None = None) -> SLATable:
    """SLA figures over `window` as of `now` (default: the current time), read from the store.
    Without a store yet every probe has no data. Raises RequestError for an unknown window,
    StoreError when the store cannot be opened."""
    from probe.app import open_store
    from probe.reports import sla_rows
    from probe.store.sla import SLAFigures, parse_window, window_bounds

    try:
        parse_window(window)
    except ValueError as err:
        raise RequestError(str(err)) from None
    tz = ZoneInfo(config.settings.timezone)
    start, end = window_bounds(window, datetime.now(UTC) if now is None else now, tz)
    specs = config.probes
    path = config.settings.store.path
    figures: dict[str, SLAFigures] = {}
    if path.exists():
        store = open_store(config.settings)
        try:
            figures = store.sla_many([s.name for s in specs], start, end)
        finally:
            store.close_sync()
    return SLATable(window, start, end, tz, sla_rows(specs, figures, window))


# --- probe report ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrittenReport:
    """What `probe report` wrote: the page at `target` first, then any further page files."""

    target: Path
    files: list[Path]
    probes: int


async def write_report(config: Config, output: Path | None = None) -> WrittenReport:
    """Render the status page once from the store (no probing) and write it atomically to
    `output` (default: settings.status.path). Raises UnavailableError without a store or when
    the store cannot be read or the target written; StartupError for a target that is not a
    regular file or a new name in an existing folder."""
    from probe.app import open_store, status_source
    from probe.web.render import StatusPage, write_status_files

    settings = config.settings
    path = settings.store.path
    if not path.is_file():
        raise UnavailableError(f"no store at {path} (run `probe run` first)")
    target = output if output is not None else settings.status.path
    store = open_store(settings)
    try:
        now = time.time()  # one time for the whole page: every file shows the same moment
        source = status_source(config, store, clock=lambda: now)
        page = StatusPage(source, title=settings.name, icon=settings.icon)
        written = await write_status_files(page, target)
    except sqlite3.Error as err:
        raise UnavailableError(f"store {path}: {err}") from None
    except OSError as err:
        raise UnavailableError(f"cannot write {target}: {err.strerror or err}") from None
    finally:
        store.close_sync()
    return WrittenReport(target, written, len(config.enabled_probes))


# --- probe notify-test -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleDelivery:
    """How one sample message fared: `event` (down, recovery) and what happened to it, as
    `said` ("sent", "failed: <the service's error>", "dry run, not sent: <payload>")."""

    event: str
    ok: bool
    said: str


@dataclass(frozen=True, slots=True)
class NotifierTrial:
    """One notifier's answers to the sample messages of `probe notify-test`."""

    name: str
    kind: str
    target: str
    deliveries: list[SampleDelivery]

    @property
    def failed(self) -> int:
        return sum(1 for delivery in self.deliveries if not delivery.ok)


async def notify_test(config: Config, only: str | None = None) -> list[NotifierTrial]:
    """Send a sample down and a sample recovery message through each notifier (or only the
    one named `only`), directly: no store, no retries. Raises RequestError when the config
    has no notifiers or none of that name."""
    from probe.app import notify_client, notify_context
    from probe.assembly import build_notifiers

    specs = config.notifiers
    if only is not None:
        specs = [spec for spec in specs if spec.name == only]
        if not specs:
            names = ", ".join(spec.name for spec in config.notifiers) or "none"
            raise RequestError(f"no notifier named {only!r} (configured: {names})")
    if not specs:
        raise RequestError("the config has no notifiers (notify: ...)")
    settings = config.settings
    http = notify_client(settings)
    try:
        notifiers = build_notifiers(specs, notify_context(settings, http))
        samples = _sample_notifications(time.time())
        deliveries = await asyncio.gather(*(_deliver_samples(n, samples) for n in notifiers))
        for notifier in notifiers:
            await notifier.aclose()
    finally:
        await http.aclose()
    return [
        NotifierTrial(notifier.name, notifier.kind, notifier.spec.target(), sent)
        for notifier, sent in zip(notifiers, deliveries, strict=True)
    ]


def _sample_notifications(now: float) -> list[Notification]:
    from probe.notify.base import Event, Notification

    common: dict[str, Any] = {
        "probe": "notify-test",
        "kind": "http",
        "endpoint": "(a sample endpoint)",
        "outage_start": now - 125.0,
        "labels": {"test": "true"},
    }
    return [
        Notification(
            event=Event.DOWN,
            time=now - 125.0,
            status="down",
            message="a test message from probe notify-test: nothing is down",
            position=1,
            **common,
        ),
        Notification(
            event=Event.RECOVERY,
            time=now,
            status="up",
            message="a test message from probe notify-test: nothing was down",
            duration=125.0,
            **common,
        ),
    ]


async def _deliver_samples(
    notifier: Notifier[Any], samples: list[Notification]
) -> list[SampleDelivery]:
    """Each sample through `notifier`, in turn; no failure escapes (it is what is reported)."""
    from probe.notify.base import DeliveryError
    from probe.notify.dispatch import show_payload

    deliveries: list[SampleDelivery] = []
    for sample in samples:
        event = sample.event.value
        try:
            payload = notifier.render(sample)
        except Exception as exc:
            deliveries.append(
                SampleDelivery(event, False, f"failed: cannot render the message: {exc}")
            )
            continue
        if notifier.dry:
            deliveries.append(
                SampleDelivery(event, True, f"dry run, not sent: {show_payload(payload)}")
            )
            continue
        try:
            # Notifiers bound their own requests; this bounds one that would not.
            async with asyncio.timeout(notifier.timeout + 5):
                await notifier.send(payload)
        except DeliveryError as exc:
            deliveries.append(SampleDelivery(event, False, f"failed: {exc.message}"))
        except TimeoutError:
            said = f"failed: no answer within {notifier.timeout:g}s"
            deliveries.append(SampleDelivery(event, False, said))
        except Exception as exc:
            said = f"failed: unexpected {type(exc).__name__}"
            deliveries.append(SampleDelivery(event, False, said))
        else:
            deliveries.append(SampleDelivery(event, True, "sent"))
    return deliveries
