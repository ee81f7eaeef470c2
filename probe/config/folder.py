"""A folder of config files: which of its files are config, in which order.

`probe run -c DIR` loads every `*.yaml` and `*.yml` file directly in DIR (not in folders
below it), in name order, and merges them (loader.load_config_folder). Hidden files are left
out: editors' lock and swap files (`.#probes.yaml`, `.probes.yaml.swp`) and Kubernetes'
`..data` folder of a mounted ConfigMap start with a dot; backups (`probes.yaml~`) do not end
in `.yaml`. Anything else with a config name is read, so a broken link or a FIFO named
`x.yaml` is reported rather than silently skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from probe.errors import ConfigError, ConfigProblem

__all__ = ["CONFIG_SUFFIXES", "config_files_in", "config_names_in", "is_config_name"]

CONFIG_SUFFIXES = (".yaml", ".yml")


def is_config_name(name: str) -> bool:
    """Whether a file of this name in a config folder is one of its config files."""
    return name.endswith(CONFIG_SUFFIXES) and not name.startswith(".")


def config_names_in(folder: Path) -> list[str]:
    """The names of the config files in `folder`, sorted (by code point: `10-a.yaml` comes
    before `9-b.yaml`). Raises OSError when the folder cannot be listed."""
    with os.scandir(folder) as entries:
        names = [
            entry.name for entry in entries if is_config_name(entry.name) and not _is_folder(entry)
        ]
    return sorted(names)


def _is_folder(entry: os.DirEntry[str]) -> bool:
    """Whether a folder entry is a folder (following links): a link that cannot be followed
    (a loop, a target not readable) is kept as a file, for the loader to report by name."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def config_files_in(folder: Path) -> list[Path]:
    """The config files of `folder`, in the order they are merged; ConfigError when the
    folder cannot be listed or holds none."""
    try:
        names = config_names_in(folder)
    except OSError as exc:
        message = f"cannot read the config folder: {exc.strerror or type(exc).__name__}"
        raise ConfigError([ConfigProblem(str(folder), None, None, "", message)]) from None
    if not names:
        message = "no config files in the folder (it reads *.yaml and *.yml, not hidden files)"
        raise ConfigError([ConfigProblem(str(folder), None, None, "", message)])
    return [folder / name for name in names]
