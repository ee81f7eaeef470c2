"""The sandboxed jinja2 environment of the notification templates: the shipped templates'
loader, the filters, and the compile check of an override."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources.abc import Traversable
from zoneinfo import ZoneInfo

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from probe.notify.template_filters import filters

__all__ = ["ResourceLoader", "check_source", "describe", "environment"]


class ResourceLoader(jinja2.BaseLoader):
    """Loads templates from a Traversable, so a zipped install works as a folder does."""

    def __init__(self, root: Traversable) -> None:
        self.root = root

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        parts = [part for part in template.split("/") if part]
        if not parts or any(part in (".", "..") for part in parts):
            raise jinja2.TemplateNotFound(template)
        node = self.root.joinpath(*parts)
        if not node.is_file():
            raise jinja2.TemplateNotFound(template)
        # Shipped files do not change while running: never reloaded.
        return node.read_text(encoding="utf-8"), template, lambda: True


def environment(
    *, autoescape: bool, tz: ZoneInfo, loader: jinja2.BaseLoader | None
) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        undefined=jinja2.Undefined,
    )
    env.filters.update(filters(autoescape=autoescape, tz=tz))
    return env


# Filters exist at compile time (an unknown filter is a compile error): check_source() compiles with
# an environment that has them.
_CHECK_ENV = environment(autoescape=False, tz=ZoneInfo("UTC"), loader=None)


def describe(exc: Exception) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f"line {exc.lineno}: " if exc.lineno else ""
        return f"{where}{exc.message or 'syntax error'}"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in a template: {exc}"
    return f"{type(exc).__name__}: {exc}"


def check_source(source: str) -> str | None:
    """Why `source` is not a usable template (`line 3: unexpected '}'`), or None."""
    try:
        _CHECK_ENV.compile(source)
    except Exception as exc:
        return describe(exc)
    return None
