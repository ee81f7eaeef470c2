"""Where the static status page may be written (issue 9): a regular file or a new name in an
existing directory; never through or over a symlink, a device node, a FIFO or a directory,
and never into a directory that had to be made up. Real files, the real CLI."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from probe.cli import main as cli_main
from probe.errors import StartupError
from probe.store import Store
from probe.web.data import StatusSource
from probe.web.render import StatusPage, write_static_page, write_status_files
from tests.store.helpers import NOW
from tests.support.cli import spawn_probe
from tests.web.test_server import PROBES


def _symlink(tmp_path: Path) -> tuple[Path, Path]:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "index.html"
    link.symlink_to(victim)
    return link, victim


def test_symlink_is_refused_and_kept(tmp_path: Path) -> None:
    link, victim = _symlink(tmp_path)
    with pytest.raises(StartupError, match="symbolic link"):
        write_static_page(link, "<html>")
    assert link.is_symlink() and os.readlink(link) == str(victim)
    assert victim.read_text() == "precious"


def test_dangling_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "index.html"
    link.symlink_to(tmp_path / "nowhere.html")
    with pytest.raises(StartupError, match="symbolic link"):
        write_static_page(link, "<html>")
    assert link.is_symlink() and not (tmp_path / "nowhere.html").exists()


def test_fifo_is_refused_and_kept(tmp_path: Path) -> None:
    fifo = tmp_path / "index.html"
    os.mkfifo(fifo)
    with pytest.raises(StartupError, match="device, FIFO or socket"):
        write_static_page(fifo, "<html>")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_char_device_is_refused_and_kept(tmp_path: Path) -> None:
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("creating a device node needs root")
    with pytest.raises(StartupError, match="device, FIFO or socket"):
        write_static_page(node, "<html>")
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    assert os.major(os.lstat(node).st_rdev) == 1


def test_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "index.html"
    folder.mkdir()
    with pytest.raises(StartupError, match="a directory"):
        write_static_page(folder, "<html>")
    assert folder.is_dir() and not any(folder.iterdir())


def test_missing_directory_is_refused_not_made(tmp_path: Path) -> None:
    target = tmp_path / "typo" / "deeper" / "index.html"
    with pytest.raises(StartupError, match="no directory"):
        write_static_page(target, "<html>")
    assert not (tmp_path / "typo").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StartupError, match="not a directory"):
        write_static_page(blocker / "index.html", "<html>")


def test_regular_file_and_new_name_are_written(tmp_path: Path) -> None:
    existing = tmp_path / "old.html"
    existing.write_text("old")
    write_static_page(existing, "new")
    write_static_page(tmp_path / "fresh.html", "fresh")
    assert existing.read_text() == "new" and (tmp_path / "fresh.html").read_text() == "fresh"
    # make_parent: only for the default path, which the user never named.
    write_static_page(tmp_path / "public" / "index.html", "x", make_parent=True)
    assert (tmp_path / "public" / "index.html").read_text() == "x"


async def test_status_files_refuse_before_rendering(store: Store, tmp_path: Path) -> None:
    link, victim = _symlink(tmp_path)
    page = StatusPage(StatusSource(store, PROBES, clock=lambda: NOW))
    with pytest.raises(StartupError, match="symbolic link"):
        await write_status_files(page, link)
    assert victim.read_text() == "precious"


async def test_stale_page_links_are_not_removed(store: Store, tmp_path: Path) -> None:
    """Page files past the last page are removed, but only regular files: a symlink that
    happens to carry such a name (or its target) is left alone."""
    elsewhere = tmp_path / "keep.html"
    elsewhere.write_text("keep")
    (tmp_path / "index-7.html").symlink_to(elsewhere)
    (tmp_path / "index-8.html").write_text("stale")
    page = StatusPage(StatusSource(store, PROBES, clock=lambda: NOW))
    await write_status_files(page, tmp_path / "index.html")
    assert (tmp_path / "index-7.html").is_symlink() and elsewhere.read_text() == "keep"
    assert not (tmp_path / "index-8.html").exists()


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        "settings:\n"
        f"  store: {{path: '{tmp_path / 'probe.db'}'}}\n"
        f"  status: {{path: '{tmp_path / 'site' / 'index.html'}'}}\n"
        "tcp:\n  - {name: db, host: '10.0.0.5:5432'}\n"
    )
    return cfg


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "missing"])
async def test_probe_report_refuses_with_exit_3(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    await store.flush()
    out = tmp_path / "out.html"
    if kind == "symlink":
        out, victim = _symlink(tmp_path)
    elif kind == "fifo":
        os.mkfifo(out)
    elif kind == "directory":
        out.mkdir()
    else:
        out = tmp_path / "missing" / "out.html"
    before = os.lstat(out) if kind != "missing" else None
    code = await asyncio.to_thread(
        cli_main, ["report", "-c", str(_config(tmp_path)), "-o", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 3, err
    assert err.startswith("probe: ") and "Traceback" not in err
    assert str(out) in err
    if before is not None:
        after = os.lstat(out)
        assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    else:
        assert not out.parent.exists()
    if kind == "symlink":
        assert victim.read_text() == "precious"
    # Nothing at the configured path either (its folder does not exist): refused the same way.
    assert await asyncio.to_thread(cli_main, ["report", "-c", str(_config(tmp_path))]) == 3
    assert not (tmp_path / "site").exists()


async def test_probe_report_shows_the_icon(store: Store, tmp_path: Path) -> None:
    await store.flush()
    (tmp_path / "site").mkdir()
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text().replace("settings:\n", "settings:\n  icon: /logo.png\n", 1))
    assert await asyncio.to_thread(cli_main, ["report", "-c", str(cfg)]) == 0
    html = (tmp_path / "site" / "index.html").read_text()
    assert '<link rel="icon" href="/logo.png">' in html


@pytest.mark.slow
async def test_probe_run_refuses_a_status_path_it_could_never_write(tmp_path: Path) -> None:
    """At start, with exit 3, before the store is made: not a warning at every refresh."""
    link, victim = _symlink(tmp_path)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        "settings:\n"
        "  http: {port: 0}\n"
        f"  status: {{path: '{link}'}}\n"
        "tcp:\n  - {name: local, host: '127.0.0.1:9'}\n"
    )
    proc = await spawn_probe("run", "-c", "p.yaml", cwd=tmp_path)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 3, text
    assert "symbolic link" in text and "Traceback" not in text
    assert link.is_symlink() and victim.read_text() == "precious"
    assert not (tmp_path / "data").exists()  # refused before the store was opened


def test_probe_check_warns_of_a_status_path_run_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        f"settings:\n  status: {{path: '{tmp_path / 'nofolder' / 'index.html'}'}}\n"
        "tcp:\n  - {name: local, host: '127.0.0.1:9'}\n"
    )
    assert cli_main(["check", "-c", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: status page: cannot write ") and "nofolder" in err
