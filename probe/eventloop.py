"""Which event loop runs the program: uvloop when it is installed, else asyncio's own.

uvloop (libuv under asyncio's API) takes about a seventh off the CPU of an HTTP check
(bb_compare.py at 300 checks/s: 1,637 -> 1,410 us per check), so `pip install 'probe[fast]'`
is the cheap way to watch more endpoints on one core. It stays optional: everything runs on
asyncio's loop, and `PROBE_EVENT_LOOP=asyncio` chooses that one even with uvloop installed
(to rule it out when something looks wrong). The choice is logged at start and shown by
`probe --version`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Coroutine
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["ENV", "loop_name", "run", "running_loop_name"]

T = TypeVar("T")

ENV = "PROBE_EVENT_LOOP"


def _uvloop() -> ModuleType | None:
    if os.environ.get(ENV, "").strip().lower() == "asyncio":
        return None
    try:
        return importlib.import_module("uvloop")
    except ImportError:
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
