"""The status page as static files: written atomically, one file per page, to a target
checked to be a regular file or a new name in an existing directory."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from probe.errors import StartupError
from probe.web.query import page_size

if TYPE_CHECKING:
    from probe.web.render import StatusPage

__all__ = ["check_target", "page_file", "write_static_page", "write_status_files"]


def check_target(path: Path) -> None:
    """Raise StartupError unless `path` is a regular file or a new name in an existing
    directory. The page is written by renaming a new file over `path`, which would replace
    a symlink (`-o /dev/stdout`) or a device node (`-o /dev/null`, as root) rather than write
    through it; and a missing directory is most often a typo, not a wish to create it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        parent = path.parent
        if not parent.is_dir():
            raise StartupError(
                f"cannot write {path}: no directory {parent} (create it first)"
            ) from None
        return
    except NotADirectoryError:
        raise StartupError(f"cannot write {path}: a part of the path is not a directory") from None
    except OSError as err:
        raise StartupError(f"cannot write {path}: {err.strerror or err}") from None
    if stat.S_ISLNK(mode):
        what = "a symbolic link"
    elif stat.S_ISDIR(mode):
        what = "a directory"
    elif not stat.S_ISREG(mode):
        what = "a device, FIFO or socket"
    else:
        return
    raise StartupError(
        f"refusing to write {path}: it is {what}, not a regular file (name a regular file,"
        " or a new file in an existing directory)"
    )


def write_static_page(path: Path | str, html: str, *, make_parent: bool = False) -> None:
    """Write `html` to `path` atomically: a temp file in the same directory, then a rename,
    so readers see the old page or the new one, never half of one. `path` must be a regular
    file or a new name in an existing directory (see check_target); `make_parent` creates the
    directory first (the default path's, which the user never named)."""
    target = Path(path)
    if make_parent:
        target.parent.mkdir(parents=True, exist_ok=True)
    check_target(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def page_file(path: Path, number: int) -> Path:
    """The file of page `number` of the static set: `path` itself for page 1, then
    `status-2.html`, `status-3.html`, ... beside it for `path` = status.html."""
    if number == 1:
        return path
    return path.with_name(f"{path.stem}-{number}{path.suffix}")


async def write_status_files(
    page: StatusPage, path: Path | str, *, make_parent: bool = False
) -> list[Path]:
    """Write the unfiltered status page to `path`, one file per page of the default size
    linked by relative previous/next links, each file atomically; page files left from a
    time with more probes are removed. Returns the files written. Raises StartupError when
    a target is not a regular file or a new name in an existing directory."""
    target = Path(path)
    await asyncio.to_thread(_prepare_target, target, make_parent)

    def link(_query: Mapping[str, str], number: int) -> str:
        return quote(page_file(target, number).name)

    snap = await page.snapshot()
    count = max(1, math.ceil(len(snap.summaries) / page_size({})))
    written = []
    for number in range(1, count + 1):
        query = {"pg": str(number)} if number > 1 else {}
        html = await page.render(query, link=link, snapshot=snap, live=False)
        await asyncio.to_thread(write_static_page, page_file(target, number), html)
        written.append(page_file(target, number))
    await asyncio.to_thread(_remove_pages_after, target, count)
    return written


def _prepare_target(target: Path, make_parent: bool) -> None:
    # Checked before any page is rendered: a bad target fails at once, not after the work.
    if make_parent:
        target.parent.mkdir(parents=True, exist_ok=True)
    check_target(target)


def _remove_pages_after(target: Path, count: int) -> None:
    pattern = re.compile(re.escape(target.stem) + r"-([0-9]+)" + re.escape(target.suffix))
    with contextlib.suppress(FileNotFoundError):
        for entry in target.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            # Only regular files: never a symlink (it would be the link's target's name that
            # matched) nor anything else someone put there.
            if match and int(match.group(1)) > count and stat.S_ISREG(entry.lstat().st_mode):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
