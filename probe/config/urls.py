"""URLs the config hands to the status page (`settings.icon`), checked before any page
carries them. Standard library only: the config models import this."""

from __future__ import annotations

from urllib.parse import urlsplit

from probe.text import quoted

__all__ = ["icon_origin", "icon_url"]

_MAX_URL = 2048


def icon_url(value: str) -> str:
    """`value` if it is an http(s) URL or a relative one (`/static/logo.png`, `logo.svg`);
    else ValueError. Browsers drop tabs and newlines inside URLs and read `\\` as `/`, so
    `java\\tscript:` would run as `javascript:`: whitespace, control characters and
    backslashes are refused outright rather than cleaned."""
    if not value:
        raise ValueError("empty; leave the key out for no icon")
    if len(value) > _MAX_URL:
        raise ValueError(f"too long (at most {_MAX_URL} characters)")
    if any(c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\\" for c in value):
        raise ValueError(f"not a URL: {quoted(value)} holds whitespace, a control or a backslash")
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port out of range raises here
    except ValueError:
        raise ValueError(f"not a URL: {quoted(value)}") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError("a user or password in the URL would be shown to every visitor")
    if parts.scheme:
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                f'"{parts.scheme}:" URLs are not allowed; use http(s) or a relative URL'
            )
        if not parts.hostname:
            raise ValueError(f"no host in {quoted(value)}")
    elif parts.netloc or value.startswith("//"):
        # Scheme-relative ("//cdn.example.com/x.png"): write the scheme, so the page's
        # Content-Security-Policy can name the origin exactly.
        raise ValueError(f"write the scheme: https:{quoted(value)[1:-1]}")
    return value


def icon_origin(value: str) -> str | None:
    """The origin (`https://cdn.example.com:8443`) an absolute icon URL loads from, for the
    page's Content-Security-Policy; None for a relative URL (the page's own origin)."""
    parts = urlsplit(icon_url(value))
    if not parts.scheme:
        return None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"
