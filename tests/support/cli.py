"""The `probe` command as a child process, as a user runs it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["PROBE", "spawn_probe", "spawn_probe_run"]

REPO = Path(__file__).resolve().parents[2]

PROBE = [sys.executable, "-m", "probe"]


async def spawn_probe(
    *args: str, cwd: Path, stdout: int = asyncio.subprocess.PIPE, **kwargs: Any
) -> asyncio.subprocess.Process:
    """`probe ARGS...` started in `cwd`, stderr piped (stdout too unless told otherwise)."""
    return await asyncio.create_subprocess_exec(
        *PROBE, *args, cwd=cwd, stdout=stdout, stderr=asyncio.subprocess.PIPE, **kwargs
    )


async def spawn_probe_run(config: Path, log: Path) -> asyncio.subprocess.Process:
    """`probe run -c config` started in the config's folder, its log appended to `log` (a
    file, not a pipe: nobody has to read it for the process to go on)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            *PROBE,
            "run",
            "-c",
            str(config),
            cwd=config.parent,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
