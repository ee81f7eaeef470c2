"""Which event loop runs the program: asyncio's own, or uvloop when asked for.

`PROBE_EVENT_LOOP=uvloop` (with `pip install 'probe[fast]'`) runs the program on uvloop, libuv
under asyncio's API: a few percent less CPU per HTTP check (bb_compare.py at 300 checks/s:
1,100 us per check on asyncio's loop, 1,050 us on uvloop 0.23). It is not the default because
not everything holds on it: the web server's connection cap (`settings.http.max_connections`)
and its answer to a malformed request rely on asyncio's own transports, and the tests show
both failing on uvloop. The choice is logged at start and shown by `probe --version`; asked
for without uvloop installed, asyncio's loop runs and the start log says why.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any, TypeVar

__all__ = [
    "ENV",
    "RESOLVER_THREADS",
    "loop_name",
    "run",
    "running_loop_name",
    "unmet_request",
    "use_io_threads",
]

T = TypeVar("T")

ENV = "PROBE_EVENT_LOOP"


def _uvloop() -> ModuleType | None:
    if os.environ.get(ENV, "").strip().lower() != "uvloop":
        return None
    try:
        return importlib.import_module("uvloop")
    except ImportError:
        return None


def unmet_request() -> str | None:
    """Why the loop asked for by PROBE_EVENT_LOOP is not the one that runs, if it is not."""
    asked = os.environ.get(ENV, "").strip().lower()
    if asked in ("", "asyncio"):
        return None
    if asked != "uvloop":
        return f"{ENV}={asked!r} is not a loop this program knows (asyncio, uvloop)"
    if _uvloop() is None:
        return f"{ENV}=uvloop, but uvloop is not installed (pip install 'probe[fast]')"
    return None


def loop_name() -> str:
    """`uvloop 0.23.0` or `asyncio`: what `run` will use."""
    uvloop = _uvloop()
    return "asyncio" if uvloop is None else f"uvloop {uvloop.__version__}"


def running_loop_name() -> str:
    """What the running loop is, in the words of `loop_name` (for the start log)."""
    loop = asyncio.get_running_loop()
    if type(loop).__module__.startswith("uvloop"):
        uvloop = importlib.import_module("uvloop")
        return f"uvloop {uvloop.__version__}"
    return "asyncio"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)` on the chosen loop."""
    uvloop = _uvloop()
    if uvloop is None:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# Threads for blocking calls the event loop hands off, chiefly getaddrinfo (asyncio and the
# database drivers resolve names in the loop's default executor). Python's default pool has
# only cpu+4 threads: a few stalled DNS lookups would stall name resolution for every probe.
RESOLVER_THREADS = 64


def use_io_threads(loop: asyncio.AbstractEventLoop) -> None:
    """Give `loop` a default executor of RESOLVER_THREADS threads (the App, each worker)."""
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="probe-io")
    )
