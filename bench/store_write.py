"""How fast the SQLite store writes: rows per second for 100,000 observations.

Run:  .venv/bin/python bench/store_write.py [--observations N] [--probes P] [--fleet F]

Observations are made beforehand with the real StatusTracker (100 probes, one result a minute,
a down stretch now and then), so only the store is timed. Two shapes are measured, each on a
fresh database in a temporary directory:
  burst   all observations submitted at once, then one flush (the writer batches them, up to
          20,000 per transaction);
  stream  submitted in chunks of 500 with a flush after each (a busy running app: many small
          transactions).
`submit` is the event loop's own cost (queueing); `total` includes the writer's commits.

A third shape is a large fleet as `probe run` sees it (default 10,000 probes every 10 s, i.e.
1,000 checks/s): each batch holds one result of every probe, so every batch touches one hourly
and one daily rollup row per probe. It prints the writer thread's CPU per result (its own CPU
clock, not wall time), over the batches after the first (which creates the rows):
  fleet   one transaction per round of F observations, 10 rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from probe.core.result import Result, Status
from probe.core.tracker import Observation, Policy, StatusTracker
from probe.store import Store

# The fleet shape: rounds of one result per probe; the first round only creates the rows.
FLEET_ROUNDS = 10
FLEET_INTERVAL = 10


def make_observations(count: int, probes: int, interval: int = 60) -> list[Observation]:
    """`count` observations, `probes` round-robin, one round every `interval` seconds."""
    tracker = StatusTracker()
    policy = Policy(interval=interval)
    start = time.time() - (count // probes) * interval
    out = []
    for i in range(count):
        name = f"probe-{i % probes:04d}"
        step = i // probes
        status = Status.DOWN if step % 97 in (40, 41, 42) else Status.UP
        result = Result(
            name=name,
            kind="http",
            endpoint=f"http://127.0.0.1:8080/{name}",
            status=status,
            latency=0.002 + (i % 250) / 1000,
            message="HTTP 200" if status is Status.UP else "HTTP 503",
            time=datetime.fromtimestamp(start + step * interval, UTC),
            details={"status_code": 200 if status is Status.UP else 503},
        )
        out.append(tracker.observe(result, policy))
    return out


async def run(observations: list[Observation], chunk: int | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with Store.open(Path(tmp) / "bench.db") as store:
            submit_time = 0.0
            began = time.perf_counter()
            step = chunk or len(observations)
            for i in range(0, len(observations), step):
                t = time.perf_counter()
                for obs in observations[i : i + step]:
                    store.submit(obs)
                submit_time += time.perf_counter() - t
                await store.flush()
            total = time.perf_counter() - began
    return submit_time, total


def writer_cpu(store: Store) -> float:
    """CPU seconds the store's writer thread has used so far (Linux: its own clock)."""
    ident = store._writer.ident
    assert ident is not None, "the writer has not started"
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


async def run_fleet(observations: list[Observation], probes: int) -> float:
    """Writer CPU seconds per observation over the rounds after the first, one flush (so one
    transaction) per round of one observation per probe."""
    with tempfile.TemporaryDirectory() as tmp:
        async with Store.open(Path(tmp) / "bench.db") as store:
            spent = 0.0
            for i in range(0, len(observations), probes):
                before = writer_cpu(store)
                for obs in observations[i : i + probes]:
                    store.submit(obs)
                await store.flush()
                if i:
                    spent += writer_cpu(store) - before
    return spent / (len(observations) - probes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=100_000)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--fleet", type=int, default=10_000, help="probes in the fleet shape")
    args = parser.parse_args()
    observations = make_observations(args.observations, args.probes)
    n = len(observations)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{n} observations, {args.probes} probes, SQLite {__import__('sqlite3').sqlite_version}")
    for label, chunk in (("burst", None), ("stream", 500)):
        submit_time, total = asyncio.run(run(observations, chunk))
        print(
            f"{label:7} total {total:6.2f} s  {n / total:9,.0f} rows/s"
            f"   submit {submit_time * 1e6 / n:5.2f} us/observation"
        )
    fleet = make_observations(args.fleet * FLEET_ROUNDS, args.fleet, FLEET_INTERVAL)
    per_result = asyncio.run(run_fleet(fleet, args.fleet))
    print(
        f"fleet   {args.fleet} probes x {FLEET_ROUNDS} batches of one result each:"
        f"  writer CPU {per_result * 1e6:6.1f} us/result"
    )


if __name__ == "__main__":
    main()
