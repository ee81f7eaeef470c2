"""The wheel ships every shipped template (pyproject.toml's packages list).

templates/ is installed as the package `probe.templates`. setuptools takes each of its
folders for a package of its own and warns at build time unless it is listed; a folder left
out of the list would leave its templates out of the wheel on a future setuptools.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_folder_of_templates_is_a_listed_package() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["probe.templates"] == "templates"
    listed = set(setuptools["packages"])
    folders = {
        "probe." + ".".join(path.relative_to(ROOT).parts)
        for path in (ROOT / "templates").rglob("*")
        if path.is_dir() and path.name != "__pycache__"
    }
    assert folders, "no folders under templates/"
    assert folders <= listed, f"add to pyproject.toml's packages: {sorted(folders - listed)}"


def test_templates_is_a_regular_package() -> None:
    # importlib.resources.files() of a namespace package is a MultiplexedPath, whose
    # joinpath() takes one name only on Python 3.11: the installed status page broke on it.
    assert (ROOT / "templates" / "__init__.py").is_file()
