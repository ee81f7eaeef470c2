"""Every config the suite loads with the real probers is also checked against `probe schema`.

The loader and the schema are built from the same models but by different code (the schema adds
by hand what the loader does beyond the models: `*_file` secrets, EaseProbe's ignored keys,
`client` drivers, empty inherited keys), so a config the loader accepts and the schema refuses is
a schema bug an editor would show a user as a red squiggle. `watch_loads` wraps the loader for
one test; `violations` says what the schema refused.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jsonschema

from probe.assembly.schema import config_schema
from probe.config import loader
from probe.config.source import Source
from probe.config.substitution import substitute
from probe.config.yaml_reader import parse_file
from probe.probers import CLIENT_DRIVERS, SECTIONS

__all__ = ["schema_errors", "validator", "watch_loads"]


@functools.cache
def validator() -> jsonschema.Draft202012Validator:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(document: Any) -> list[str]:
    """`path: message` for each place the schema refuses `document` (a parsed config)."""
    lines = []
    for error in validator().iter_errors(document):
        if error.context:  # anyOf/oneOf: the branch that came closest says the most
            error = jsonschema.exceptions.best_match(error.context)
        where = ".".join(str(p) for p in error.absolute_path) or "(top)"
        lines.append(f"{where}: {error.message[:300]}")
    return lines


def _uses_real_registry(instance: Any) -> bool:
    # Loader tests use small specs of their own (tests/config/specs.py): not ours to check.
    return set(instance.sections) == set(SECTIONS) and set(instance.drivers) == set(CLIENT_DRIVERS)


@contextmanager
def watch_loads() -> Iterator[list[str]]:
    """While open, each successful load with the real registry is checked; what the schema
    refused is appended (with the file's name) to the yielded list."""
    refused: list[str] = []
    original = loader._Loader.load
    original_folder = loader._Loader.load_folder

    def check(self: Any, config: Any) -> None:
        if not _uses_real_registry(self):
            return
        # Each document as written, after `${VAR}` substitution (as an editor with the
        # variables filled in would see it): parsed again, positions not needed. Each file
        # of a folder is a config an editor checks on its own.
        for path in [file.path for file in config.files]:
            source = Source(str(path))
            document = substitute(parse_file(path, source), (), self.environ, source)
            if document is not None:  # an empty file of a folder loads nothing
                refused.extend(f"{path}: {line}" for line in schema_errors(document))

    def load(self: Any) -> Any:
        config = original(self)
        check(self, config)
        return config

    def load_folder(self: Any) -> Any:
        config = original_folder(self)
        check(self, config)
        return config

    loader._Loader.load = load  # type: ignore[method-assign]
    loader._Loader.load_folder = load_folder  # type: ignore[method-assign]
    try:
        yield refused
    finally:
        loader._Loader.load = original  # type: ignore[method-assign]
        loader._Loader.load_folder = original_folder  # type: ignore[method-assign]
