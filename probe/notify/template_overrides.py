"""Template overrides on notifier specs: `template` (inline jinja2 source) and
`template_file` (a file holding it) per event, checked and read when the config loads."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import PrivateAttr, field_validator, model_validator

from probe.notify.base import Event, NotifierSpec
from probe.notify.template_env import check_source

__all__ = ["TemplatedSpec", "read_overrides"]

# A template file larger than this is a mistake (`template_file: /dev/zero`), not a template.
_MAX_TEMPLATE_BYTES = 1024 * 1024


def read_overrides(inline: Mapping[Event, str], files: Mapping[Event, Path]) -> dict[Event, str]:
    """The override source per event: inline, or read from its file. Raises ValueError (a
    config error) for an event given both ways, an unreadable file or a template that does
    not compile; the message names the event and the line."""
    sources: dict[Event, str] = {}
    for event, source in inline.items():
        problem = check_source(source)
        if problem is not None:
            raise ValueError(f"template.{Event(event).value}: {problem}")
        sources[Event(event)] = source
    for event, path in files.items():
        event = Event(event)
        if event in sources:
            raise ValueError(f"template.{event.value} and template_file.{event.value}: use one")
        try:
            sources[event] = _read_source(event, path)
        except ValueError as exc:
            raise ValueError(f"template_file.{exc}") from None
    return sources


def _read_source(event: Event, path: Path) -> str:
    """The override in `path`, checked; ValueError naming the event, the file and the line."""
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(_MAX_TEMPLATE_BYTES + 1)
    except OSError as exc:
        raise ValueError(
            f"{event.value}: cannot read {str(path)!r}: {exc.strerror or type(exc).__name__}"
        ) from None
    if len(data) > _MAX_TEMPLATE_BYTES:
        raise ValueError(f"{event.value}: {str(path)!r} is larger than 1 MiB")
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{event.value}: {str(path)!r} is not UTF-8 text") from None
    problem = check_source(source)
    if problem is not None:
        raise ValueError(f"{event.value}: {path}: {problem}")
    return source


class TemplatedSpec(NotifierSpec):
    """A notifier spec whose `template` / `template_file` overrides are checked when the
    config loads (a syntax error is a located config error) and read once.

    `override(event)` gives the source to hand to `Templates.render`.
    """

    kind: ClassVar[str] = ""

    _overrides: dict[Event, str] = PrivateAttr(default_factory=dict)

    @field_validator("template")
    @classmethod
    def _compiles(cls, value: dict[Event, str]) -> dict[Event, str]:
        for event, source in value.items():
            problem = check_source(source)
            if problem is not None:
                raise ValueError(f"{Event(event).value}: {problem}")
        return value

    @field_validator("template_file")
    @classmethod
    def _readable(cls, value: dict[Event, Path]) -> dict[Event, Path]:
        # Read here too (not only below) so that an error is located at `template_file`.
        for event, path in value.items():
            _read_source(Event(event), path)
        return value

    @model_validator(mode="after")
    def _read_overrides(self) -> TemplatedSpec:
        self._overrides = read_overrides(self.template, self.template_file)
        return self

    def override(self, event: Event | str) -> str | None:
        return self._overrides.get(Event(event))
