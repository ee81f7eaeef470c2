"""The composition root: builds every part from a Config, wires them and owns the lifecycle.

The one place that knows all parts. Results flow one way: scheduler -> tracker -> store, and
each alert decision -> dispatcher (routing, outbox, notifiers). Signals: the first
SIGINT/SIGTERM stops scheduling and lets checks in flight finish (up to 5 s), then lets
notifications in flight finish (up to 5 s more; the rest stay in the outbox for the next
start); a second signal cancels both at once. Either way the store is flushed and clients are
closed before `run()` returns.

Order at start: store, dispatcher (it resends what an earlier run left pending), SLA reports,
scheduler. At stop: scheduler, SLA reports, dispatcher, notifiers and their HTTP client, store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
from aiohttp import web
from prometheus_client import CollectorRegistry

from probe import memory
from probe.alerting import (
    degraded_notification,
    expiry_notification,
    notification_for,
    policy_for,
)
from probe.assembly import build_notifiers, build_probers
from probe.config import Config
from probe.config.diff import (
    ConfigDiff,
    Fingerprints,
    ReloadReport,
    diff_configs,
    fingerprints,
    input_files,
    kept_notifiers,
)
from probe.config.models import ProbeSpec, Settings
from probe.core.result import Result
from probe.core.scheduler import Scheduler, SchedulerStats
from probe.core.tracker import StatusTracker
from probe.dependencies import DependencyGate
from probe.dependency_graph import DependencyGraph
from probe.errors import ConfigError, StartupError
from probe.eventloop import running_loop_name, unmet_request, use_io_threads
from probe.logs import register_secrets, secret_values
from probe.maintenance_gate import MaintenanceGate, calendar_for
from probe.metrics import REGISTRY, SeriesLabels, probe_metrics
from probe.notify.base import Notification, Notifier, NotifyContext
from probe.notify.dispatch import DEFAULT_CONCURRENCY, OUTBOX_INTERVAL, Dispatcher, Outbox
from probe.notify.metrics import notify_metrics
from probe.probers.base import Prober, SharedResources, close_when_ended
from probe.push import PushMonitors, push_specs
from probe.reload import ConfigWatcher, read_config
from probe.reports import ReportScheduler, store_report_builder
from probe.shards import ShardedScheduler, deal
from probe.store import Store
from probe.store.sla_cache import SLACache
from probe.web.data import (
    ConfiguredProbe,
    LiveReader,
    MaintenanceReader,
    StatusSource,
    StoreReader,
    read_now,
)
from probe.web.handlers import STATE
from probe.web.render import StatusPage, write_status_files
from probe.web.server import create_app, start_server
from probe.web.static_files import check_target

__all__ = [
    "App",
    "notify_client",
    "notify_context",
    "open_store",
    "sla_cache",
    "status_source",
    "template_renderer",
]

log = logging.getLogger("probe.app")

STOP_GRACE = 5.0
# How long `stop` waits for notifications in flight (they stay in the outbox otherwise).
NOTIFY_GRACE = 5.0
# How often `probe run` logs a one-line summary, so a quiet run still shows it is checking.
SUMMARY_EVERY = 60.0
# The longest the maintenance timer sleeps: a wall clock set anew is noticed within this.
MAINTENANCE_RECHECK = 300.0


# Idle connections the notifiers' client keeps. Keep-alive saves a burst of alerts to one
# chat API a TLS handshake per message, but httpcore checks every pooled connection on each
# request: measured with 1,000 local webhook sends, 32 in flight, CPU per send was 1.5 ms with
# no keep-alive, 1.9 ms keeping 8 and 5.1 ms keeping 32 (bench/notify_burst.py).
NOTIFY_KEEPALIVE = 8


def notify_client(settings: Settings) -> httpx.AsyncClient:
    """The one HTTP client of every HTTP-based notifier: at most as many connections as the
    dispatcher sends at once, a few kept alive (unlike the probers' clients, which measure a
    fresh connection each time)."""
    return httpx.AsyncClient(
        timeout=settings.notify.timeout,
        follow_redirects=False,
        limits=httpx.Limits(
            max_connections=DEFAULT_CONCURRENCY, max_keepalive_connections=NOTIFY_KEEPALIVE
        ),
    )


def template_renderer(settings: Settings) -> Any:
    """The notification template engine, or None when it cannot be imported (then notifiers
    that need it report each message as failed, and the webhook/log ones use defaults)."""
    try:
        from probe.notify.templates import Templates
    except ImportError as exc:
        log.warning("notification templates are unavailable: %s", exc)
        return None
    return Templates(settings.timezone, name=settings.name)


def notify_context(
    settings: Settings, http: httpx.AsyncClient, *, dry: bool = False
) -> NotifyContext:
    """What every notifier is built with: the shared HTTP client, the templates and the
    timeout; a dry context (settings.notify.dry, or `dry`) logs messages instead of sending."""
    return NotifyContext(
        http=http,
        templates=template_renderer(settings),
        timeout=settings.notify.timeout,
        dry=settings.notify.dry or dry,
    )


def open_store(settings: Settings) -> Store:
    """The store at settings.store.path (made if missing). Raises StoreError when unusable."""
    return Store.open(
        settings.store.path, retention=settings.store.retention, flush=settings.store.flush
    )


def status_source(
    config: Config,
    store: StoreReader,
    *,
    live: LiveReader | None = None,
    sla: SLACache | None = None,
    maintenance: MaintenanceReader | None = None,
    folded_into: Callable[[str], str | None] | None = None,
    max_age: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> StatusSource:
    """What the status page, the API and the badges show: the enabled probes, read from
    `store` in settings.timezone (see StatusSource for `live`, `sla`, `max_age`, `clock`)."""
    return StatusSource(
        store,
        [
            ConfiguredProbe(s.name, s.kind, s.endpoint(), dict(s.labels), tuple(s.depends_on))
            for s in config.enabled_probes
        ],
        live=live,
        sla=sla,
        maintenance=maintenance,
        folded_into=folded_into,
        timezone=config.settings.timezone,
        max_age=max_age,
        clock=clock,
    )


def sla_cache(config: Config, store: Store) -> SLACache:
    """The one SLA cache of a running App, read by the page, the API and the metrics:
    refreshed as often as settings.http.refresh asks, at least every minute."""
    refresh = config.settings.http.refresh
    return SLACache(
        store,
        [s.name for s in config.enabled_probes],
        timezone=config.settings.timezone,
        max_age=min(refresh, 60.0) or 10.0,
    )


class App:
    """A running probe: `await App(config).run()` until a signal or `request_stop()`;
    `await app.reload(trigger)` (SIGHUP, POST /-/reload, the file watch) applies the config
    file anew in place."""

    def __init__(
        self,
        config: Config,
        *,
        stats: SchedulerStats | None = None,
        dry_notify: bool = False,
        outbox_interval: float = OUTBOX_INTERVAL,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`dry_notify`: log notifications instead of sending them (`probe run --dry-notify`).
        `outbox_interval`: how often undelivered notifications are retried (tests shorten it).
        `registry`: where the metrics go (default: the one the web layer serves)."""
        self.config = config
        # First of all: from here on the log shows the config's secrets (tokens, passwords,
        # webhook URLs) as *** in whatever message carries them, a library's included.
        register_secrets(secret_values(config))
        self.stats = stats
        self.dry_notify = dry_notify
        self.outbox_interval = outbox_interval
        self.registry = registry if registry is not None else REGISTRY
        self.http_port: int | None = None  # the web server's port once it listens
        self._page: StatusPage | None = None  # what the web server and status file show
        self.metrics = notify_metrics(registry)
        self.probe_metrics = probe_metrics(registry, _series(config))
        self.store: Store | None = None
        self.dispatcher: Dispatcher | None = None
        self.tracker = StatusTracker()  # the one owner of "now" (seeded from the store at run)
        self.sla: SLACache | None = None
        # Maintenance windows: alerts muted inside, reckoned at their ends (a timer).
        self.maintenance = MaintenanceGate(calendar_for(config), self.tracker)
        self._maintenance_timer: asyncio.Task[None] | None = None
        self._specs = {spec.name: spec for spec in config.enabled_probes}
        self._policies = {spec.name: policy_for(spec) for spec in config.enabled_probes}
        # depends_on: which alerts go out, wait for a dependency's fresh check, or are
        # folded into a dependency's (probe/dependencies.py).
        self.dependencies = DependencyGate(
            _graph(config),
            lambda: self.tracker,
            check_now=self._check_now,
            send=self._dispatch,
            timeouts=_timeouts(config),
        )
        # Push probes: heartbeats from the web server, silences timed here (probe/push.py).
        self.push = PushMonitors(
            push_specs(config.enabled_probes),
            self._on_result,
            lambda name: self.tracker.now(name).last,
        )
        self._stop = asyncio.Event()
        self._force = False
        self._scheduler: Scheduler | ShardedScheduler | None = None
        self.reports: ReportScheduler | None = None
        self._window = {"up": 0, "down": 0}  # results since the last summary line
        # What a reload replaces, and closes once nothing uses it any more.
        self._resources = SharedResources()
        self._probers: dict[str, Prober[Any]] = {}  # this process's, by probe name
        self._notifiers: list[Notifier[Any]] = []
        self._http: httpx.AsyncClient | None = None
        self._web_runner: web.AppRunner | None = None
        self._web_app: web.Application | None = None
        self._watch: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Reloads: one at a time; the file contents the running config was made from.
        self.last_reload: ReloadReport | None = None
        self._reload_lock = asyncio.Lock()
        self._applied_files: dict[Path, str] = {}

    def request_stop(self) -> None:
        if self._stop.is_set():
            if not self._force:
                self._force = True
                log.warning("second signal: cancelling checks in flight")
                if self._scheduler is not None:
                    asyncio.get_running_loop().create_task(self._scheduler.stop(grace=0))
            return
        log.info("stopping: letting checks in flight finish (up to %.0fs)", STOP_GRACE)
        self._stop.set()

    async def run(self) -> int:
        """Run until stopped. Raises StoreError (before any check) when the store is unusable."""
        loop = asyncio.get_running_loop()
        use_io_threads(loop)
        settings = self.config.settings
        if "path" in settings.status.model_fields_set:
            # A status path the user named that can never be written (a symlink, a device, a
            # missing folder) is a start-up failure, as for `probe report -o`, rather than a
            # warning at every refresh. Checked again at each write: the file system can change.
            await asyncio.to_thread(check_target, settings.status.path)
        self.store = open_store(settings)
        self._http = notify_client(settings)
        try:
            await self.store.start()
            self._applied_files = await asyncio.to_thread(fingerprints, input_files(self.config))
            self.tracker = await asyncio.to_thread(read_now, self.store, list(self._policies))
            self.maintenance.tracker = self.tracker
            self.sla = sla_cache(self.config, self.store)
            self.probe_metrics.attach(self.tracker, self.sla, self.maintenance)
            self.push.start()  # before the web server: its first call finds the probes
            context = notify_context(settings, self._http, dry=self.dry_notify)
            self._notifiers = build_notifiers(self.config.notifiers, context)
            self.dispatcher = Dispatcher(
                self._notifiers,
                self.store,
                retry=settings.notify.retry,
                max_age=settings.notify.max_age,
                sla_channels=settings.sla.channels,
                outbox_interval=self.outbox_interval,
                metrics=self.metrics,
                group=settings.notify.group,
            )
            # Before the scheduler: what an earlier run left pending goes out first.
            await self.dispatcher.start()
            if context.dry and self._notifiers:
                log.info("dry run: notifications are logged, not sent")
            # SLA reports (settings.sla): after the dispatcher they hand reports to.
            self.reports = self._report_scheduler(self.config)
            self.reports.start()
            self._web_runner = await self._start_web(self.config)
            fresh = asyncio.create_task(self.sla.keep_fresh(), name="sla-figures")
            status_file = asyncio.create_task(self._status_writer(), name="status-file")
            self._scheduler = self._checkers()
            self._install_signals(loop)
            if (unmet := unmet_request()) is not None:
                log.warning("%s: running on asyncio's own event loop", unmet)
            processes = ""
            if isinstance(self._scheduler, ShardedScheduler):
                processes = f" in {self._scheduler.processes} processes"
            if pushed := len(push_specs(self.config.enabled_probes)):
                processes += f", awaiting {pushed} push probe(s)"
            log.info(
                "probing %d endpoint(s)%s on the %s event loop; store %s",
                self._scheduler.probe_count,
                processes,
                running_loop_name(),
                settings.store.path,
            )
            memory.settle()  # what lives now is frozen; full passes made rare
            self._scheduler.start()
            self._start_maintenance_timer()
            self._start_watch()
            summary = asyncio.create_task(self._log_summaries(), name="summary")
            await self._stop.wait()
            summary.cancel()
            await self.push.stop()
            status_file.cancel()
            fresh.cancel()
            if self._maintenance_timer is not None:
                self._maintenance_timer.cancel()
            if self._watch is not None:
                self._watch.cancel()
            async with self._reload_lock:  # a reload under way finishes first
                await self._scheduler.stop(grace=0 if self._force else STOP_GRACE)
            # Alerts the dependency gate holds go to the dispatcher (and its outbox) now: no
            # fresh check will come to decide them.
            self.dependencies.flush()
            if self._page is not None:
                await self.store.flush()  # the final state, once more, read anew
                self._page.source.invalidate()
            await self._write_status_page()
        finally:
            self._remove_signals(loop)
            await self.push.stop()
            if self._web_runner is not None:
                await self._web_runner.cleanup()
            if self.reports is not None:
                await self.reports.stop()
            if self.dispatcher is not None:
                await self.dispatcher.stop(grace=0 if self._force else NOTIFY_GRACE)
            if self._background:  # closing what a reload retired: a moment to finish
                _, late = await asyncio.wait(set(self._background), timeout=STOP_GRACE)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            await _close_notifiers(self._notifiers)
            await self._http.aclose()
            for prober in self._probers.values():
                await prober.aclose()
            await self._resources.aclose()
            await self.store.close()
            memory.unsettle()  # a caller that runs on (the tests, an embedding) collects as before
        log.info("stopped")
        return 0

    def _build_local(self, specs: Sequence[ProbeSpec]) -> list[Prober[Any]]:
        """Probers for `specs`, checked in this process (kept to be closed at the end)."""
        probers = build_probers(specs, self._resources)
        self._probers.update((prober.name, prober) for prober in probers)
        return probers

    def _checkers(self) -> Scheduler | ShardedScheduler:
        """What runs the checks: a Scheduler of this process's probers, or shard 0 here and
        the others in worker processes when `settings.probe.workers` asks (probe.shards)."""
        settings = self.config.settings
        # Push probes are never checked, here or in a worker: their jobs call in.
        specs = [spec for spec in self.config.enabled_probes if spec.scheduled]
        concurrency = settings.probe.concurrency
        workers = min(settings.probe.workers, max(len(specs), 1))
        if workers == 1:
            probers = self._build_local(specs)
            return Scheduler(probers, self._on_result, concurrency=concurrency, stats=self.stats)
        local, *remote = deal(specs, workers)
        return ShardedScheduler(
            self._build_local(local),
            remote,
            self._on_result,
            concurrency=concurrency,
            secrets=sorted(set(secret_values(self.config))),
            stats=self.stats,
            log_file=settings.log.file,
            log_format=settings.log.format,
        )

    # ----------------------------------------------------------------- reload

    async def reload(self, trigger: str) -> ReloadReport:
        """Load the config file anew and apply what changed, in place (probe.config.diff):
        unchanged probes keep their schedule, status, streaks and alert state; changed ones
        start again on their new spec with their history; removed ones stop (their history
        stays in the store); added ones start. A file that does not load, or a part that
        cannot be built, changes nothing: the running config stays, and the report says why
        (`last_reload`, GET /api/v1/reload, "reload": "failed" on /healthz)."""
        async with self._reload_lock:
            if self._stop.is_set() or self._scheduler is None:
                return self._reload_refused(trigger, ["probe is not running"])
            try:
                new, files = await asyncio.to_thread(read_config, self.config.path)
            except ConfigError as err:
                return self._reload_refused(trigger, [str(p) for p in err.problems])
            except Exception as exc:  # the loader's own failure is ConfigError; this is a bug
                log.exception("reload (%s): loading the config failed", trigger)
                return self._reload_refused(trigger, [f"unexpected {type(exc).__name__}"])
            for warning in new.warnings:
                log.warning("reload: %s", warning)
            register_secrets(secret_values(new))
            diff = diff_configs(self.config, new, self._applied_files, files)
            try:
                await self._apply(new, diff, files)
            except StartupError as exc:
                return self._reload_refused(trigger, [str(exc)])
            self.config = new
            self._applied_files = files
            for key in diff.restart_needed:
                log.warning("reload: %s changed; it takes effect at the next start", key)
            log.info("reloaded the config (%s): %s", trigger, diff.summary())
            self.last_reload = ReloadReport(True, time.time(), trigger, diff=diff)
            return self.last_reload

    def _reload_refused(self, trigger: str, problems: list[str]) -> ReloadReport:
        log.error(
            "reload (%s) refused; the running config stays:\n  %s", trigger, "\n  ".join(problems)
        )
        self.last_reload = ReloadReport(False, time.time(), trigger, tuple(problems))
        return self.last_reload

    async def _apply(self, new: Config, diff: ConfigDiff, files: Fingerprints) -> None:
        """Take `new` over, part by part. What can fail (building notifiers, binding a new
        address) is done before anything running is touched."""
        assert self.store is not None and self.dispatcher is not None
        assert self._scheduler is not None and self.sla is not None and self._http is not None
        old = self.config
        settings = new.settings
        notifiers: list[Notifier[Any]] | None = None
        if diff.notifiers:
            notifiers = self._notifiers_for(new, files)
        moved = diff.web and _address(old.settings) != _address(settings)
        runner = await self._start_web(new) if moved else None  # raises StartupError

        # From here on nothing fails: the probes first (their results meet the new specs).
        self._specs = {spec.name: spec for spec in new.enabled_probes}
        self._policies = {spec.name: policy_for(spec) for spec in new.enabled_probes}
        self.dependencies.reconfigure(_graph(new), self._check_now, _timeouts(new))
        if diff.added:
            await self._seed([spec.name for spec in diff.added])
        self.push.configure(push_specs(new.enabled_probes))
        # Windows apply at once: one a reload removed while active ends now, and is reckoned.
        self.maintenance.calendar = calendar_for(new)
        self._start_maintenance_timer()
        if diff.probes:
            self._apply_probes(diff)
        self.probe_metrics.configure(_series(new))
        self.sla.set_names([spec.name for spec in new.enabled_probes])
        if notifiers is not None:
            retired = self.dispatcher.reconfigure(
                notifiers,
                retry=settings.notify.retry,
                max_age=settings.notify.max_age,
                sla_channels=settings.sla.channels,
                group=settings.notify.group,
            )
            self._notifiers = notifiers
            self._later(self._close_when_idle(retired), "close retired notifiers")
        if diff.reports or diff.probes:
            assert self.reports is not None
            await self.reports.stop()
            self.reports = self._report_scheduler(new)
            self.reports.start()
        if diff.web:
            # In the background: this reload may be answering a request of the old server
            # (POST /-/reload), which stops only once its requests are answered.
            previous, self._web_runner = self._web_runner, runner
            self._later(self._replace_web(previous, new, old), "web server restart")
        elif diff.probes:
            self._show(new)
        if diff.watch:
            if self._watch is not None:
                self._watch.cancel()
            self._watch = None
            self._start_watch(new)

    def _notifiers_for(self, new: Config, files: Fingerprints) -> list[Notifier[Any]]:
        """`new`'s notifiers: the running ones it does not change, the others built anew.
        Raises StartupError when one cannot be built."""
        assert self._http is not None
        kept = kept_notifiers(self.config, new, self._applied_files, files)
        running = {n.name: n for n in self._notifiers if n.name in kept}
        context = notify_context(new.settings, self._http, dry=self.dry_notify)
        try:
            built = build_notifiers([s for s in new.notifiers if s.name not in running], context)
        except Exception as exc:
            raise StartupError(f"a notifier cannot be built: {exc}") from None
        fresh = {n.name: n for n in built}
        return [running.get(spec.name) or fresh[spec.name] for spec in new.notifiers]

    def _apply_probes(self, diff: ConfigDiff) -> None:
        """Scheduler.apply (or its sharded face) with this process's new probers; the
        probers replaced or removed are closed once their loops have ended."""
        assert self._scheduler is not None
        # Only what the scheduler checks: a push probe is never one of its loops (one that
        # was scheduled and is now a push probe of the same name is removed from them).
        was_scheduled = {spec.name for spec in self.config.enabled_probes if spec.scheduled}
        specs = [spec for spec in [*diff.added, *diff.changed] if spec.scheduled]
        removed = [name for name in diff.removed if name in was_scheduled]
        removed += [s.name for s in diff.changed if not s.scheduled and s.name in was_scheduled]
        names = [*removed, *(spec.name for spec in specs)]
        retired = [self._probers.pop(name) for name in names if name in self._probers]
        if isinstance(self._scheduler, ShardedScheduler):
            secrets = sorted(set(secret_values(self.config)) | set(secret_values(specs)))
            ended = self._scheduler.apply(specs, removed, self._build_local, secrets)
        else:
            ended = self._scheduler.apply(self._build_local(specs), removed)
        self._later(close_when_ended(ended, retired), "close retired probers")

    async def _seed(self, names: list[str]) -> None:
        """Probes a reload adds carry on from what the store has of them (a probe removed
        and added back keeps its history, status and alert state)."""
        assert self.store is not None
        stored = await asyncio.to_thread(read_now, self.store, names)
        for name in names:
            known = stored.now(name)
            self.tracker.seed(name, known.state, known.last)

    def _show(self, config: Config) -> None:
        """The web server and the status file show `config`'s probes from now on."""
        if self._web_app is None:
            return
        source, page = self._status_page(config)
        state = self._web_app[STATE]
        state.source, state.page = source, page
        self._page = page

    async def _replace_web(self, previous: web.AppRunner | None, new: Config, old: Config) -> None:
        """Stop the `previous` server; at the same address, start `new`'s after it (when the
        new server is already listening elsewhere, `_web_runner` holds it)."""
        if previous is not None:
            await previous.cleanup()
        if self._web_runner is not None or self._stop.is_set():
            return
        try:
            self._web_runner = await self._start_web(new)
        except StartupError as exc:
            # Rare: the address was just released. Serve the old settings rather than none.
            log.error("reload: the web server did not start again (%s); its old settings stay", exc)
            try:
                self._web_runner = await self._start_web(old)
            except StartupError as again:
                log.error("the web server is not serving: %s", again)

    def _start_watch(self, config: Config | None = None) -> None:
        settings = (config or self.config).settings.reload
        if not settings.watch:
            return
        watcher = ConfigWatcher(
            lambda: self._applied_files,
            lambda: self.reload("file change"),
            every=settings.every,
        )
        self._watch = asyncio.create_task(watcher.run(), name="config-watch")

    def _later(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _close_when_idle(self, notifiers: list[Notifier[Any]]) -> None:
        if self.dispatcher is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(NOTIFY_GRACE * 6):
                    await self.dispatcher.drain()
        await _close_notifiers(notifiers)

    def _report_scheduler(self, config: Config) -> ReportScheduler:
        assert self.store is not None and self.dispatcher is not None
        settings = config.settings
        zone = ZoneInfo(settings.timezone)
        return ReportScheduler(
            settings.sla.schedule,
            settings.sla.time,
            zone,
            store_report_builder(self.store, config.probes, zone),
            self.dispatcher.notify_sla,
        )

    # ----------------------------------------------------------------- the rest

    async def _log_summaries(self) -> None:
        skipped_before = 0
        while True:
            await asyncio.sleep(SUMMARY_EVERY)
            counts = Counter(self.tracker.state(name).status.value for name in self._policies)
            up, down = self._window["up"], self._window["down"]
            self._window = {"up": 0, "down": 0}
            if self._scheduler is not None and self._scheduler.stats.skipped > skipped_before:
                log.warning(
                    "last %.0fs: %d check(s) skipped because the previous check of the same"
                    " probe was still running (overloaded machine, or timeouts near the"
                    " interval)",
                    SUMMARY_EVERY,
                    self._scheduler.stats.skipped - skipped_before,
                )
            if self._scheduler is not None:
                skipped_before = self._scheduler.stats.skipped
            log.info(
                "last %.0fs: %d checks (%d failed); probes up %d, down %d, unknown %d",
                SUMMARY_EVERY,
                up + down,
                down,
                counts.get("up", 0),
                counts.get("down", 0),
                counts.get("unknown", 0),
            )

    async def _write_status_page(self) -> None:
        """Render the status page and write it atomically to settings.status.path (and the
        files of its further pages); a failure is logged and leaves the previous files."""
        if self._page is None:
            return
        path = self.config.settings.status.path
        try:
            # The default path's folder (public/) is made; a path the user named must exist.
            default = "path" not in self.config.settings.status.model_fields_set
            await write_status_files(self._page, path, make_parent=default)
        except Exception as exc:
            log.warning("status page %s not written: %s", path, exc)

    async def _status_writer(self) -> None:
        # First after one interval: a page written at start would show every probe unknown.
        while True:
            await asyncio.sleep(self.config.settings.http.refresh or 60.0)
            await self._write_status_page()

    def _status_page(self, config: Config) -> tuple[StatusSource, StatusPage]:
        assert self.store is not None
        settings = config.settings
        source = status_source(
            config,
            self.store,
            live=self.tracker,
            sla=self.sla,
            maintenance=self.maintenance,
            folded_into=self.dependencies.folded_into,
        )
        return source, StatusPage(source, title=settings.name, icon=settings.icon)

    async def _start_web(self, config: Config) -> web.AppRunner:
        """The status API, badges and /metrics on settings.http (127.0.0.1:8181 by default).
        Raises StartupError when the address cannot be served."""
        settings = config.settings
        assert self.store is not None
        store = self.store
        source, page = self._status_page(config)
        app = create_app(
            source,
            registry=self.registry,
            token=None if settings.http.token is None else settings.http.token.get_secret_value(),
            basic=settings.http.basic_auth(),
            healthy=lambda: store.last_error is None,
            page=page,
            reloader=self,
            push=self.push,
        )
        try:
            runner, port = await start_server(
                app,
                settings.http.ip,
                settings.http.port,
                max_connections=settings.http.max_connections,
                access_log=settings.http.log,
            )
        except OSError as err:
            where = f"{settings.http.ip}:{settings.http.port}"
            raise StartupError(
                f"cannot serve on {where}: {err.strerror or err} (settings.http)"
            ) from None
        self._web_app, self._page = app, page
        self.http_port = port
        shown = f"[{settings.http.ip}]" if ":" in settings.http.ip else settings.http.ip
        log.info("serving http://%s:%d/ (API, badges, /metrics)", shown, port)
        return runner

    def _on_result(self, result: Result) -> None:
        policy = self._policies.get(result.name)
        if policy is None:
            # A probe a reload removed, whose result was already on its way from a worker.
            log.debug("%s: result of a probe no longer configured; ignored", result.name)
            return
        self._window["up" if result.ok else "down"] += 1
        before = self.tracker.state(result.name)
        observation = self.maintenance.screen(self.tracker.observe(result, policy), before)
        assert self.store is not None
        self.store.submit(observation)
        if observation.transition is not None:
            t = observation.transition
            log.info("%s: %s -> %s: %s", t.name, t.previous, t.current, result.message)
        notification: Notification | None = None
        if observation.alert is not None:
            alert = observation.alert
            log.debug(
                "%s: alert decision %s at failure %d", alert.name, alert.event, alert.position
            )
            notification = notification_for(observation, self._specs[result.name])
        self.dependencies.handle(observation, notification)
        spec = self._specs[result.name]
        if observation.warning is not None:
            self._dispatch(expiry_notification(observation, spec))
        degradation = observation.degradation
        if degradation is not None:
            calendar = self.maintenance.calendar
            if calendar and calendar.window_for(result.name, degradation.time) is not None:
                log.info("%s: degraded notification muted (maintenance)", result.name)
            else:
                channels = spec.degraded_channels
                self._dispatch(degraded_notification(observation, spec), channels)

    def _dispatch(self, notification: Notification, channels: list[str] | None = None) -> None:
        """Send a probe's notification to the notifiers of `channels` (default: the
        probe's)."""
        spec = self._specs.get(notification.probe or "")
        if spec is None or self.dispatcher is None:
            return  # a probe a reload removed meanwhile
        if not notification.labels and spec.labels:
            notification = replace(notification, labels=dict(spec.labels))
        self.dispatcher.notify(notification, spec.channels if channels is None else channels)

    def _check_now(self, name: str) -> bool:
        """Check a probe once more, now (a dependent's alert waits on it)."""
        return self._scheduler is not None and self._scheduler.check_now(name)

    def _start_maintenance_timer(self) -> None:
        if self._maintenance_timer is not None:
            self._maintenance_timer.cancel()
        self._maintenance_timer = asyncio.create_task(
            self._maintenance_ends(), name="maintenance-windows"
        )

    async def _maintenance_ends(self) -> None:
        """At each window's start and end: who left a window gets the one notification it is
        owed (at the first pass, also a probe whose window ended while probe was stopped or
        that a reload removed). A timer, so a probe checked hourly is told within moments."""
        gate = self.maintenance
        first = True
        while True:
            now = time.time()
            names = list(self._policies)
            due = gate.ended(names, now)
            if first and gate.calendar:
                due += [name for name in gate.stale(names, now) if name not in due]
            first = False
            for name in due:
                self._reckon(name, now)
            following = gate.calendar.next_change_after(now) if gate.calendar else None
            if following is None:
                return  # no window to come: a reload starts the timer again
            # Just past the change: windows end exclusive, and sleep may wake a bit early.
            await asyncio.sleep(min(max(following - now, 0.0) + 0.01, MAINTENANCE_RECHECK))

    def _reckon(self, name: str, now: float) -> None:
        policy, spec = self._policies.get(name), self._specs.get(name)
        if policy is None or spec is None:
            return
        observation = self.maintenance.reckon(name, policy, now)
        if observation is None:
            return
        # Through the dependency gate as any alert: a dependent whose dependency is still down
        # stays folded into its alert.
        self.dependencies.handle(observation, notification_for(observation, spec))

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)

    def _reload_on_signal(self) -> None:
        self._later(self._reload_quietly("signal"), "reload")

    async def _reload_quietly(self, trigger: str) -> None:
        await self.reload(trigger)  # reports its outcome itself

    @staticmethod
    def _remove_signals(loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def _graph(config: Config) -> DependencyGraph:
    return DependencyGraph({spec.name: spec.depends_on for spec in config.enabled_probes})


def _timeouts(config: Config) -> dict[str, float]:
    return {spec.name: spec.timeout for spec in config.enabled_probes}


def _series(config: Config) -> list[SeriesLabels]:
    return [SeriesLabels(s.name, s.kind, s.endpoint(), s.labels) for s in config.enabled_probes]


def _address(settings: Settings) -> tuple[str, int]:
    return settings.http.ip, settings.http.port


async def _close_notifiers(notifiers: Sequence[Notifier[Any]]) -> None:
    for notifier in notifiers:
        try:
            await notifier.aclose()
        except Exception as exc:
            log.warning("closing notifier %s failed: %s", notifier.name, exc)


if TYPE_CHECKING:
    # mypy proves here that the store is the outbox the dispatcher needs.
    _outbox: type[Outbox] = Store
