"""Reloading the config of a running App: its triggers and how a new config is read.

Three triggers reach `App.reload`: SIGHUP, `POST /-/reload`, and, with
`settings.reload.watch`, a change of the file or of a file it reads (its `*_file` secrets,
the CAs, certificates and message templates its probes and notifiers name; for a folder of
config files, each of them and the folder's list of them: a file added or removed). The watcher
looks at the files' modification times and sizes every `settings.reload.every`, and reloads
only when their content differs from what was last applied (an editor that saves twice, or
`touch`, reloads nothing). A file saved in several writes is read once it has held still
for one look. A config file new to a folder is looked at from the round it appears: when the
reload it causes is refused, saving the file fixed reloads.

`read_config` loads and validates the whole file (or folder), and fingerprints what it reads, before
anything of the running App is touched: a file that does not load changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from probe.assembly import load_config
from probe.config import Config
from probe.config.diff import fingerprints, input_files
from probe.config.folder import config_names_in

__all__ = ["ConfigWatcher", "read_config"]

log = logging.getLogger("probe.reload")

_Stamp = tuple[int, int] | None  # (mtime_ns, size), None: missing or unreadable


def read_config(path: Path) -> tuple[Config, dict[Path, str]]:
    """The config at `path` and the fingerprints of the files it reads (blocking: run it in
    a thread). Raises ConfigError, located, when it does not load."""
    config = load_config(path)
    return config, fingerprints(input_files(config))


def _watched(applied: Mapping[Path, object]) -> list[Path]:
    """What to look at: the files last applied, and each config folder's files as they are
    now: a file new to a folder is watched before a reload that includes it succeeds, so
    fixing one a reload refused is noticed (blocking: run it in a thread)."""
    paths = list(applied)
    for path in list(paths):
        try:
            names = config_names_in(path) if path.is_dir() else []
        except OSError:
            continue  # unreadable now: its fingerprint says so
        paths.extend(path / name for name in names if path / name not in applied)
    return paths


def _stamps(paths: list[Path]) -> dict[Path, _Stamp]:
    stamps: dict[Path, _Stamp] = {}
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            stamps[path] = None
        else:
            stamps[path] = (info.st_mtime_ns, info.st_size)
    return stamps


class ConfigWatcher:
    """Calls `reload()` when the content of a file in `applied()` differs from its
    fingerprint there; `applied` is read anew each round (a reload changes the files)."""

    def __init__(
        self,
        applied: Callable[[], Mapping[Path, str]],
        reload: Callable[[], Awaitable[object]],
        *,
        every: float,
    ) -> None:
        self._applied = applied
        self._reload = reload
        self._every = every
        self._tried: Mapping[Path, str] | None = None  # contents last reloaded for

    async def run(self) -> None:
        """Watch until cancelled."""
        watched = await asyncio.to_thread(_watched, self._applied())
        stamps = await asyncio.to_thread(_stamps, watched)
        while True:
            await asyncio.sleep(self._every)
            try:
                stamps = await self._round(stamps)
            except Exception as exc:  # the watch must go on whatever one round met
                log.warning("watching the config files failed this round: %s", exc)

    async def _round(self, stamps: dict[Path, _Stamp]) -> dict[Path, _Stamp]:
        applied = self._applied()
        paths = await asyncio.to_thread(_watched, applied)
        now = await asyncio.to_thread(_stamps, paths)
        if now == stamps:
            return now
        # Something moved: let it hold still for a moment (an editor's save, a copy).
        while True:
            await asyncio.sleep(min(self._every, 0.2))
            settled = await asyncio.to_thread(_stamps, paths)
            if settled == now:
                break
            now = settled
        current = await asyncio.to_thread(fingerprints, paths)
        if any(current[path] != applied.get(path) for path in paths) and current != self._tried:
            # Once per content: a file that does not load is not reloaded again until it
            # changes again (the failure is logged once, not every round).
            self._tried = current
            log.info("config files changed; reloading")
            try:
                await self._reload()
            except Exception:  # App.reload reports its own failures; this is a bug's
                log.exception("reloading after a file change failed")
        # The stamps of what was read, not taken anew: a file changed while the reload ran
        # differs from them next round and is read again. (Files the reload's config names
        # anew differ too, and cost one more comparison.)
        return now
