"""The composition root: builds every part from a Config, wires them and owns the lifecycle.

The one place that knows all parts. Results flow one way: scheduler -> tracker -> store
(and, in later parts, alerting and metrics). Signals: the first SIGINT/SIGTERM stops
scheduling and lets checks in flight finish (up to 5 s), a second one cancels them at once;
either way the store is flushed and clients are closed before `run()` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from probe.config import Config
from probe.config.models import ProbeSpec
from probe.core.result import Result
from probe.core.scheduler import Scheduler, SchedulerStats
from probe.core.tracker import Policy, StatusTracker
from probe.errors import ProbeError
from probe.probers import load_prober_class, target_for_kind
from probe.probers.base import Prober, SharedResources
from probe.store import Store

__all__ = ["App", "build_probers", "policy_for"]

log = logging.getLogger("probe.app")

# Threads for blocking calls the event loop hands off, chiefly getaddrinfo (httpx and
# asyncio resolve names in the loop's default executor). Python's default pool has only
# cpu+4 threads: a few stalled DNS lookups would stall name resolution for every probe.
RESOLVER_THREADS = 64
STOP_GRACE = 5.0
# How often `probe run` logs a one-line summary, so a quiet run still shows it is checking.
SUMMARY_EVERY = 60.0


def build_probers(specs: Sequence[ProbeSpec], resources: SharedResources) -> list[Prober[Any]]:
    """One prober per spec; driver modules are imported only for kinds in use."""
    probers: list[Prober[Any]] = []
    for spec in specs:
        cls = load_prober_class(target_for_kind(spec.kind))
        prober = cls(spec, resources)
        # A failure here (a TLS file that cannot be loaded) is reported by the checks.
        with contextlib.suppress(ProbeError):
            prober.prepare()
        probers.append(prober)
    return probers


def policy_for(spec: ProbeSpec) -> Policy:
    return Policy(
        interval=spec.interval,
        failure=spec.failure,
        success=spec.success,
        strategy=spec.alert.strategy,
        factor=spec.alert.factor,
        max_alerts=spec.alert.max,
    )


class App:
    """A running probe: `await App(config).run()` until a signal or `request_stop()`."""

    def __init__(self, config: Config, *, stats: SchedulerStats | None = None) -> None:
        self.config = config
        self.stats = stats
        self.store: Store | None = None
        self.tracker = StatusTracker()
        self._policies = {spec.name: policy_for(spec) for spec in config.enabled_probes}
        self._stop = asyncio.Event()
        self._force = False
        self._scheduler: Scheduler | None = None
        self._window = {"up": 0, "down": 0}  # results since the last summary line

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
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="probe-io")
        )
        settings = self.config.settings
        self.store = Store.open(settings.store.path, retention=settings.store.retention)
        resources = SharedResources()
        probers: list[Prober[Any]] = []
        try:
            await self.store.start()
            self.tracker = StatusTracker(self.store.load_states())
            probers = build_probers(self.config.enabled_probes, resources)
            self._scheduler = Scheduler(
                probers,
                self._on_result,
                concurrency=settings.probe.concurrency,
                stats=self.stats,
            )
            self._install_signals(loop)
            log.info("probing %d endpoint(s); store %s", len(probers), settings.store.path)
            self._scheduler.start()
            summary = asyncio.create_task(self._log_summaries(), name="summary")
            await self._stop.wait()
            summary.cancel()
            await self._scheduler.stop(grace=0 if self._force else STOP_GRACE)
        finally:
            self._remove_signals(loop)
            for prober in probers:
                await prober.aclose()
            await resources.aclose()
            await self.store.close()
        log.info("stopped")
        return 0

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

    def _on_result(self, result: Result) -> None:
        self._window["up" if result.ok else "down"] += 1
        policy = self._policies[result.name]
        observation = self.tracker.observe(result, policy)
        assert self.store is not None
        self.store.submit(observation)
        if observation.transition is not None:
            t = observation.transition
            log.info("%s: %s -> %s: %s", t.name, t.previous, t.current, result.message)
        if observation.alert is not None:
            alert = observation.alert
            log.debug(
                "%s: alert decision %s at failure %d", alert.name, alert.event, alert.position
            )

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)

    @staticmethod
    def _remove_signals(loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
