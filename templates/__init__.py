"""The shipped templates, installed as the package `probe.templates` (see pyproject.toml).

This file makes it a regular package: `importlib.resources.files("probe.templates")` is then a
plain folder (or zip) path. Without it the package is a namespace package, whose
`MultiplexedPath.joinpath()` takes one name only on Python 3.11, so an installed wheel could
not open `status/page.html.j2` or any `<format>/<event>` template.
"""
