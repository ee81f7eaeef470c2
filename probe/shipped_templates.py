"""Where the templates shipped with probe live: the notifiers' message templates and the
status page.

A neutral module: `probe.notify.templates` and `probe.web.render` both read the shipped
templates, and neither may import the other (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

import probe

__all__ = ["template_root"]


def template_root() -> Traversable:
    """The shipped templates: the package data of an installed wheel, else the repository's
    `templates/` folder (an editable install cannot map that package)."""
    try:
        root = importlib.resources.files("probe.templates")
        # README.txt marks the real folder: a namespace package of that name is no proof.
        if root.joinpath("README.txt").is_file():
            return root
    except ModuleNotFoundError:
        pass
    return Path(probe.__file__).resolve().parent.parent / "templates"
