"""Checks spread over worker processes (`settings.probe.workers`), so every core checks.

One Python process checks on one core: its event loop holds the interpreter lock. With
`workers: N` the probes are dealt out in N shards, round robin in the config's order. The
main process (the App) checks shard 0 itself and starts N - 1 workers, each `python -m
probe.shards`, each checking one shard with a Scheduler of its own. Everything that must be
one stays in the main process: the tracker (one status and one alert decision per probe), the
store's single writer, the notification outbox, the web server and the metrics. So a worker
only checks: it sends its results back, and the main process hands each one to the same
`on_result` as its own scheduler's results, in the order they arrive.

The pipe, both ways, carries frames: a 4-byte big-endian length and a pickle.
- To a worker, on its stdin: one `_Start` (its probe specs, the secrets the log must hide,
  the log settings, the concurrency), then a reload's changes to its shard (`_Apply`) any
  number of times, then at most one stop (the grace to give checks in flight). The end of
  stdin is a stop too: a worker whose main process died does not check on, orphaned.
- From a worker, on its stdout (the real stdout is sent to stderr, so nothing a library
  prints can break a frame): its results, gathered for at most `FLUSH_EVERY`, with its
  scheduler's counters; the last frame says it is done.

A worker that exits unasked is logged and started again after a pause that doubles per exit
in a row (up to a minute): the status, the streaks and the alert state of its probes live in
the main process, so only the checks that were due meanwhile are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from probe import memory
from probe.assembly import build_probers
from probe.config.models import ProbeSpec
from probe.core.check import Checkable
from probe.core.result import Result
from probe.core.scheduler import Scheduler, SchedulerStats
from probe.eventloop import use_io_threads
from probe.logs import register_secrets

__all__ = ["FLUSH_EVERY", "ShardedScheduler", "deal"]

log = logging.getLogger("probe.shards")

# How long a worker gathers results before it sends them: a frame per result would cost a
# system call and a pickle each, both ways.
FLUSH_EVERY = 0.02
# Restart pauses of a worker that exits unasked.
RESTART_DELAY = 1.0
RESTART_MAX = 60.0
# How long past the grace a worker may take to say it is done before it is killed.
STOP_MARGIN = 5.0

_LENGTH = struct.Struct(">I")

T = TypeVar("T")


def deal(items: Sequence[T], shards: int) -> list[list[T]]:
    """`items` dealt into `shards` lists, round robin: neighbours in a config (often alike:
    one group, one host) land in different shards, so the shards weigh about the same."""
    return [list(items[index::shards]) for index in range(shards)]


@dataclass(frozen=True, slots=True)
class _Start:
    """What a worker is handed when it starts."""

    index: int
    specs: list[ProbeSpec]
    secrets: list[str]
    log_level: str
    log_file: str | None
    log_format: str
    concurrency: int
    keep_lag: bool


@dataclass(frozen=True, slots=True)
class _Apply:
    """A reload's changes to a worker's shard: `specs` start or replace the probe of their
    name, `removed` stop (Scheduler.apply)."""

    specs: list[ProbeSpec]
    removed: list[str]
    secrets: list[str]  # the new config's: the worker's log hides them too


@dataclass(frozen=True, slots=True)
class _CheckNow:
    """Check this probe once more, now (Scheduler.check_now)."""

    name: str


@dataclass(frozen=True, slots=True)
class _Stop:
    grace: float


@dataclass(frozen=True, slots=True)
class _Report:
    """Results from a worker and its scheduler's counters so far (not deltas)."""

    results: list[Result]
    checks: int
    skipped: int
    stragglers: int
    lags: list[float] = field(default_factory=list)
    done: bool = False


def _frame(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


async def _read_frame(reader: asyncio.StreamReader) -> object:
    """The next message; asyncio.IncompleteReadError at the end of the stream."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return pickle.loads(await reader.readexactly(length))


# --------------------------------------------------------------------------- main process


class ShardedScheduler:
    """A Scheduler's face (`start`, `stop`, `wait`, `stats`, `probe_count`) over shard 0,
    checked here, and N - 1 worker processes, one shard each."""

    def __init__(
        self,
        local: Sequence[Checkable],
        remote: Sequence[Sequence[ProbeSpec]],
        on_result: Callable[[Result], None],
        *,
        concurrency: int,
        secrets: Sequence[str],
        stats: SchedulerStats | None = None,
        log_file: Path | None = None,
        log_format: str = "text",
    ) -> None:
        self.stats = stats or SchedulerStats()
        self._local = Scheduler(local, on_result, concurrency=concurrency, stats=self.stats)
        self._on_result = on_result
        self._workers = [
            _Worker(
                _Start(
                    index=index,
                    specs=list(specs),
                    secrets=list(secrets),
                    log_level=logging.getLevelName(logging.getLogger("probe").getEffectiveLevel()),
                    log_file=None if log_file is None else str(log_file),
                    log_format=log_format,
                    concurrency=concurrency,
                    keep_lag=self.stats.keep_lag,
                ),
                self._take,
            )
            for index, specs in enumerate(remote, start=1)
        ]
        # Which process checks each probe (0: this one), so a reload changes a probe where
        # it runs and every other probe keeps its process and phase.
        self._shard_of: dict[str, int] = {prober.name: 0 for prober in local}
        for index, specs in enumerate(remote, start=1):
            self._shard_of.update((spec.name, index) for spec in specs)

    @property
    def probe_count(self) -> int:
        return len(self._shard_of)

    def apply(
        self,
        specs: Sequence[ProbeSpec],
        removed: Sequence[str],
        build: Callable[[Sequence[ProbeSpec]], Sequence[Checkable]],
        secrets: Sequence[str] = (),
    ) -> list[asyncio.Task[None]]:
        """A reload's changes (Scheduler.apply): a changed or removed probe in the process
        that checks it, an added one in the process with the fewest; `build` makes this
        process's probers. Returns the local loops that end."""
        shards = len(self._workers) + 1
        load = [0] * shards
        for shard in self._shard_of.values():
            load[shard] += 1
        starting: list[list[ProbeSpec]] = [[] for _ in range(shards)]
        stopping: list[list[str]] = [[] for _ in range(shards)]
        for name in removed:
            if name in self._shard_of:
                shard = self._shard_of.pop(name)
                stopping[shard].append(name)
                load[shard] -= 1
        for spec in specs:
            if spec.name not in self._shard_of:
                self._shard_of[spec.name] = min(range(shards), key=load.__getitem__)
                load[self._shard_of[spec.name]] += 1
            starting[self._shard_of[spec.name]].append(spec)
        for worker in self._workers:
            if starting[worker.index] or stopping[worker.index]:
                worker.apply(starting[worker.index], stopping[worker.index], list(secrets))
        if not starting[0] and not stopping[0]:
            return []
        return self._local.apply(build(starting[0]), stopping[0])

    def check_now(self, name: str) -> bool:
        """Scheduler.check_now, in the process that checks `name`."""
        shard = self._shard_of.get(name)
        if shard is None:
            return False
        if shard == 0:
            return self._local.check_now(name)
        return self._workers[shard - 1].send(_CheckNow(name))

    @property
    def processes(self) -> int:
        """The processes that check: this one and its workers."""
        return len(self._workers) + 1

    def start(self) -> None:
        for worker in self._workers:
            worker.start()
        self._local.start()

    async def stop(self, grace: float = 5.0) -> None:
        await asyncio.gather(
            self._local.stop(grace), *(worker.stop(grace) for worker in self._workers)
        )

    async def wait(self) -> None:
        await self._local.wait()

    def _take(self, worker: _Worker, report: _Report) -> None:
        """A worker's report: its counters into ours (as deltas), its results to on_result."""
        stats = self.stats
        stats.checks += report.checks - worker.seen.checks
        stats.skipped += report.skipped - worker.seen.skipped
        stats.stragglers += report.stragglers - worker.seen.stragglers
        worker.seen = report
        if stats.keep_lag:
            stats.lag_samples.extend(report.lags)
        for result in report.results:
            try:
                self._on_result(result)
            except Exception:  # as in Scheduler: the pipeline must not stop the worker's feed
                log.exception("probe %s: handling the result failed", result.name)


class _Worker:
    """One worker process of the main process: started, fed, read, restarted, stopped."""

    def __init__(self, start: _Start, take: Callable[[_Worker, _Report], None]) -> None:
        self._start = start
        self._take = take
        self.seen = _Report([], 0, 0, 0)
        self._task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False

    @property
    def index(self) -> int:
        return self._start.index

    def apply(self, specs: list[ProbeSpec], removed: list[str], secrets: list[str]) -> None:
        """Hand a reload's changes to the process, and keep them for its next start."""
        gone = set(removed) | {spec.name for spec in specs}
        kept = [spec for spec in self._start.specs if spec.name not in gone]
        known = self._start.secrets + [x for x in secrets if x not in self._start.secrets]
        self._start = replace(self._start, specs=kept + specs, secrets=known)
        self.send(_Apply(specs, removed, secrets))  # if not running: it gets them at start

    def send(self, message: _Apply | _CheckNow) -> bool:
        """Write a frame to the running process; False when none runs."""
        process = self._process
        if process is None or process.returncode is not None or process.stdin is None:
            return False
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            # Small, and the pipe is read at once: written without waiting for a drain.
            process.stdin.write(_frame(message))
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"worker-{self.index}"
        )

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            code = await self._run_once()
            if self._stopping:
                return
            failures += 1
            pause = min(RESTART_DELAY * 2 ** min(failures - 1, 10), RESTART_MAX)
            log.error(
                "worker %d (%d probes) exited unasked (%s); starting it again in %.0fs",
                self.index,
                len(self._start.specs),
                f"exit code {code}" if code is not None else "no exit code",
                pause,
            )
            await asyncio.sleep(pause)

    async def _run_once(self) -> int | None:
        """Start the process, hand it its shard, take its reports until its output ends."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "probe.shards",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        self.seen = _Report([], 0, 0, 0)  # a new process counts from zero
        try:
            process.stdin.write(_frame(self._start))
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it died at once: its exit is reported below
        try:
            while True:
                report = await _read_frame(process.stdout)
                if not isinstance(report, _Report):  # not our worker's speech: stop reading
                    log.error("worker %d sent a frame that is not a report", self.index)
                    process.kill()
                    break
                self._take(self, report)
                if report.done:
                    break
        except (asyncio.IncompleteReadError, pickle.UnpicklingError):
            pass
        return await process.wait()

    async def stop(self, grace: float) -> None:
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None and process.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                process.stdin.write(_frame(_Stop(grace)))
                await process.stdin.drain()
                process.stdin.close()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace + STOP_MARGIN)
        except TimeoutError:
            log.warning("worker %d did not stop in time; killed", self.index)
            if process is not None and process.returncode is None:
                process.kill()
            await self._task
        except asyncio.CancelledError:
            if process is not None and process.returncode is None:
                process.kill()
            raise


# --------------------------------------------------------------------------- worker process


async def _worker_main() -> int:
    loop = asyncio.get_running_loop()
    use_io_threads(loop)  # as the App: stalled lookups must not stall every other one
    # Ctrl-C in a terminal and systemd's stop signal reach the whole process group: the main
    # process stops its workers itself, through their input, once its own checks are done.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    # The frames go to the stdout we were given; fd 1 itself now points at stderr, so a
    # stray print (ours or a library's) lands in the log stream instead of in a frame.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(out_fd, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    start = await _read_frame(reader)
    if not isinstance(start, _Start):  # checked for real: asserts vanish under python -O
        print("probe.shards: started without a shard to check", file=sys.stderr)
        return 2
    _setup_worker_logging(start)
    stats = SchedulerStats(keep_lag=start.keep_lag)
    outbox = _Outbox(writer, stats)
    # The main process needs none of this.
    from probe.probers.base import SharedResources, close_when_ended

    resources = SharedResources()
    probers = {prober.name: prober for prober in build_probers(start.specs, resources)}
    scheduler = Scheduler(
        list(probers.values()), outbox.add, concurrency=start.concurrency, stats=stats
    )
    memory.settle()  # as in the App (probe.memory)
    scheduler.start()
    flusher = loop.create_task(outbox.flush_every(FLUSH_EVERY))
    closing: set[asyncio.Task[None]] = set()
    grace = 5.0
    while True:
        try:
            message = await _read_frame(reader)
        except (asyncio.IncompleteReadError, pickle.UnpicklingError):
            break  # the main process is gone, or closed our input: stop as asked
        if isinstance(message, _Stop):
            grace = message.grace
            break
        if isinstance(message, _CheckNow):
            scheduler.check_now(message.name)
        elif isinstance(message, _Apply):
            register_secrets(message.secrets)
            fresh = build_probers(message.specs, resources)
            names = [*message.removed, *(prober.name for prober in fresh)]
            retired = [probers.pop(name) for name in names if name in probers]
            probers.update((prober.name, prober) for prober in fresh)
            ended = scheduler.apply(fresh, message.removed)
            task = loop.create_task(close_when_ended(ended, retired))
            closing.add(task)
            task.add_done_callback(closing.discard)
    await scheduler.stop(grace)
    flusher.cancel()
    await asyncio.gather(*closing, return_exceptions=True)
    for prober in probers.values():
        await prober.aclose()
    await resources.aclose()
    with contextlib.suppress(ConnectionError):
        await outbox.send(done=True)
        writer.close()
    return 0


def _setup_worker_logging(start: _Start) -> None:
    from probe.logs import setup_logging

    register_secrets(start.secrets)
    setup_logging(
        start.log_level,
        None if start.log_file is None else Path(start.log_file),
        start.log_format,
    )


class _Outbox:
    """A worker's results, gathered and sent in frames."""

    def __init__(self, writer: asyncio.StreamWriter, stats: SchedulerStats) -> None:
        self._writer = writer
        self._stats = stats
        self._results: list[Result] = []

    def add(self, result: Result) -> None:
        self._results.append(result)

    async def flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            if self._results:
                await self.send()

    async def send(self, *, done: bool = False) -> None:
        results, self._results = self._results, []
        stats = self._stats
        lags: list[Any] = []
        if stats.keep_lag:
            lags, stats.lag_samples = stats.lag_samples, []
        report = _Report(results, stats.checks, stats.skipped, stats.stragglers, lags, done)
        self._writer.write(_frame(report))
        await self._writer.drain()


def main() -> int:
    from probe import eventloop

    return eventloop.run(_worker_main())


if __name__ == "__main__":
    # Run as `python -m probe.shards`, this file is __main__; the frames' classes are pickled
    # as probe.shards's, so the worker runs as that module, where they are the same classes.
    from probe.shards import main as worker_main

    sys.exit(worker_main())
