"""The `probe` command as a child process, as a user runs it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

__all__ = ["PROBE", "spawn_probe"]

PROBE = [sys.executable, "-m", "probe"]


async def spawn_probe(
    *args: str, cwd: Path, stdout: int = asyncio.subprocess.PIPE, **kwargs: Any
) -> asyncio.subprocess.Process:
    """`probe ARGS...` started in `cwd`, stderr piped (stdout too unless told otherwise)."""
    return await asyncio.create_subprocess_exec(
        *PROBE, *args, cwd=cwd, stdout=stdout, stderr=asyncio.subprocess.PIPE, **kwargs
    )
