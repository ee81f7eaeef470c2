"""Logging set-up from `settings.log`: text or JSON lines, to stderr or a file.

Every record of the process goes through the one handler set up here, not only `probe.*`:
aiohttp's server errors, asyncio's "Task exception was never retrieved", Python warnings,
exceptions nobody could raise (`sys.unraisablehook`) and uncaught ones in threads. Each
record becomes exactly one line, whatever its message or traceback holds (a traceback is
folded into that line, or into the JSON object's "error" string), with no control characters
(`probe.text.printable`: a remote's text must not drive the terminal or forge a record) and
with secrets replaced by REDACTED: Authorization-style header values, `Bearer` tokens,
`token=`/`password=` values, the user info of URLs, and every secret value the App
registered from the config (`register_secrets`).

Our loggers (`probe.*`) log at `settings.log.level`; the others at warning or above
whatever that level, as before (httpx logs each request at info, its URL included).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import sys
import threading
import types
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import quote, quote_plus, urlsplit

from pydantic import BaseModel, SecretBytes, SecretStr

from probe.text import printable

__all__ = ["REDACTED", "redact", "register_secrets", "secret_values", "setup_logging"]

REDACTED = "***"

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# Secrets shorter than this are not registered: replacing every "abc" or "up" in the log
# would garble it, and a secret that short is not one.
_MIN_SECRET = 4
# A URL's path is registered apart from the whole URL (a webhook's token is its path, and
# some messages show only the path) when at least this long, so "/" or "/api" are not.
_MIN_SECRET_PATH = 8

# A header that carries a credential: its value, to the end of the line (a value may hold
# any quote, so the line end is the only safe stop). Matches `Authorization: x`,
# `'Authorization': 'x'` (a dict's repr) and `authorization=x`.
_HEADER = re.compile(
    r"\b((?:proxy-)?authorization|cookie|x-api-key|x-auth-token)(['\"]?\s*[:=]\s*)[^\r\n]*",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(bearer\s+)[^\s'\",;]+", re.IGNORECASE)
# `token=`, `access_token=`, `password=`, `client_secret=`, `api_key=` ... in a query
# string, a form body or a libpq DSN: the value up to the next separator.
_KEY_VALUE = re.compile(
    r"(?<![\w-])([\w-]*(?:token|password|passwd|pwd|secret|api[_-]?key)=)[^&\s'\"#;,]+",
    re.IGNORECASE,
)
# `scheme://user:password@host`: all of the user info (a token is often the user name).
# Greedy up to the last "@" before the host, as a raw DSN's password may hold an "@".
_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s/?#'\"<>]+@", re.IGNORECASE)
# Names of config fields and header keys whose plain-str values are secrets.
_SECRET_NAME = re.compile(
    r"(?:proxy-)?authorization|cookie|x-api-key|x-auth-token"
    r"|[\w-]*(?:token|password|passwd|secret|api[_-]?key)",
    re.IGNORECASE,
)


class _Redactor:
    """The known secrets (registered) and the patterns of unknown ones."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._known: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            before = len(self._secrets)
            for value in values:
                for form in _forms(value):
                    if len(form) >= _MIN_SECRET:
                        self._secrets.add(form)
            if len(self._secrets) != before:
                # Longest first, so a secret that contains another is replaced whole.
                ordered = sorted(self._secrets, key=len, reverse=True)
                # Swapped in one assignment: a thread formatting meanwhile sees old or new.
                self._known = re.compile("|".join(re.escape(s) for s in ordered))

    def __call__(self, text: str) -> str:
        known = self._known
        if known is not None:
            text = known.sub(REDACTED, text)
        text = _USERINFO.sub(rf"\1{REDACTED}@", text)
        text = _HEADER.sub(rf"\1\2{REDACTED}", text)
        text = _BEARER.sub(rf"\1{REDACTED}", text)
        return _KEY_VALUE.sub(rf"\1{REDACTED}", text)


def _forms(value: str) -> Iterator[str]:
    """The ways a secret may appear in a message: as is, percent-encoded (in a URL), escaped
    (in a repr) and, for a URL, the parts a message may show without the rest."""
    yield value
    yield quote(value, safe="")
    yield quote_plus(value, safe="")
    yield repr(value)[1:-1]
    scheme, sep, rest = value.partition("://")
    if not sep or not scheme.isascii() or not scheme.replace("+", "").isalnum():
        return
    yield rest  # e.g. apprise's tgram://TOKEN/CHAT shown without its scheme
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return
    if password:
        yield password
    tail = value[value.index(parts.netloc) + len(parts.netloc) :] if parts.netloc else ""
    if len(tail) >= _MIN_SECRET_PATH:
        yield tail  # a webhook's path (Slack, Teams, Discord) is its credential


_REDACT = _Redactor()


def register_secrets(values: Iterable[str | None]) -> None:
    """Make the log replace these values (and their encoded forms) by REDACTED from now on.
    Values shorter than 4 characters are ignored."""
    _REDACT.add(v for v in values if v)


def redact(text: str) -> str:
    """`text` with the registered secrets and credential-shaped parts replaced."""
    return _REDACT(text)


def secret_values(obj: object) -> Iterator[str]:
    """Every secret in a config object: SecretStr/SecretBytes values, and the str values of
    fields and mapping keys named like a credential (a probe's `Authorization` header, a
    `token`). Pydantic models, dataclasses, mappings and sequences are walked, so a secret
    field added later is found too."""
    seen: set[int] = set()

    def named(name: object, value: object) -> Iterator[str]:
        if isinstance(name, str) and isinstance(value, str) and _SECRET_NAME.fullmatch(name):
            yield value
            scheme, _, credential = value.strip().partition(" ")
            if credential and scheme.isalpha():  # "Bearer x", "Basic x": x alone too
                yield credential.strip()
        else:
            yield from walk(value)

    def walk(item: object) -> Iterator[str]:
        if isinstance(item, SecretStr):
            yield item.get_secret_value()
            return
        if isinstance(item, SecretBytes):
            yield item.get_secret_value().decode("utf-8", "replace")
            return
        if isinstance(item, str | bytes | int | float | bool | Path) or item is None:
            return
        if id(item) in seen:
            return
        seen.add(id(item))
        if isinstance(item, BaseModel):
            for name in type(item).model_fields:
                yield from named(name, getattr(item, name, None))
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            for f in dataclasses.fields(item):
                yield from named(f.name, getattr(item, f.name, None))
        elif isinstance(item, Mapping):
            for key, value in item.items():
                yield from named(key, value)
        elif isinstance(item, list | tuple | set | frozenset):
            for value in item:
                yield from walk(value)

    return walk(obj)


def _clean(text: str) -> str:
    return printable(redact(text))


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string in someone's call: still one line, not a crash
        return f"{record.msg!r} % {record.args!r} (unformattable)"


class _Formatter(logging.Formatter):
    """One line per record, secrets and control characters out: text or a JSON object."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self._json = fmt == "json"

    def _error_lines(self, record: logging.LogRecord) -> list[str]:
        parts: list[str] = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        # Redacted as a whole first: a header value stops at the end of its own line.
        lines = redact("\n".join(parts)).splitlines()
        return [printable(line.rstrip()) for line in lines if line.strip()]

    def format(self, record: logging.LogRecord) -> str:
        message = _clean(_message(record))
        error = self._error_lines(record)
        if self._json:
            entry = {
                "time": datetime.fromtimestamp(record.created, UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "level": record.levelname.lower(),
                "logger": printable(record.name),
                "message": message,
            }
            if error:
                # Newlines kept for who reads the field; json.dumps writes them as \n.
                entry["error"] = "\n".join(error)
            return json.dumps(entry, ensure_ascii=False)
        line = (
            f"{self.formatTime(record)} {record.levelname:<7} {printable(record.name)}: {message}"
        )
        if error:
            line += " | " + " | ".join(part.strip() for part in error)
        return line


class _OneLineErrors(logging.Handler):
    """A failure to write a record (disk full) is one line on stderr, not logging's
    multi-line report with the record's unredacted arguments."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        stream = sys.__stderr__
        if stream is None:
            return
        with contextlib.suppress(Exception):  # nowhere left to report it
            stream.write(f"probe: writing the log failed: {_clean(repr(error))}\n")


class _FileHandler(_OneLineErrors, logging.FileHandler):
    pass


class _StreamHandler(_OneLineErrors, logging.StreamHandler[TextIO]):
    pass


class _Forward(logging.Handler):
    """`logging.lastResort`: what a logger with no handler of its own and propagation off
    logs (it would go to stderr as is) goes through our handler, from warning up."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__(logging.WARNING)
        self._target = target

    def emit(self, record: logging.LogRecord) -> None:
        self._target.handle(record)


def _handler(file: Path | None, fmt: str) -> logging.Handler:
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = _FileHandler(file, encoding="utf-8")
    else:
        handler = _StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    return handler


_unraisable_log = logging.getLogger("py.unraisable")
_thread_log = logging.getLogger("py.threading")


def _log_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    # What Python would print as "Exception ignored in: ..." (an error in a __del__).
    exc = unraisable.exc_value
    where = unraisable.err_msg or "Exception ignored in"
    _unraisable_log.error(
        "%s: %r",
        where,
        unraisable.object,
        exc_info=(type(exc), exc, unraisable.exc_traceback) if exc is not None else None,
    )


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return  # as threading's own hook: a thread that exits is not an error
    exc = args.exc_value
    name = args.thread.name if args.thread is not None else "?"
    tb: types.TracebackType | None = args.exc_traceback
    _thread_log.error(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, exc, tb) if exc is not None else None,
    )


_installed: list[logging.Handler] = []


def setup_logging(level: str = "info", file: Path | None = None, fmt: str = "text") -> None:
    """Send every log record of the process to `file` (stderr when None), as `fmt` ("text"
    or "json") lines; `probe.*` from `level` up, other loggers from warning up."""
    handler = _handler(file, fmt)
    threshold = _LEVELS.get(level.lower(), logging.INFO)
    root = logging.getLogger()
    # Only our own earlier handler is replaced: one a host (pytest's capture) put on the
    # root logger stays.
    for old in _installed:
        root.removeHandler(old)
        old.close()
    _installed[:] = [handler]
    root.addHandler(handler)
    root.setLevel(max(threshold, logging.WARNING))
    ours = logging.getLogger("probe")
    for old in list(ours.handlers):  # a handler of its own would write a second copy
        ours.removeHandler(old)
        old.close()
    ours.setLevel(threshold)
    ours.propagate = True
    logging.lastResort = _Forward(handler)
    logging.captureWarnings(True)
    sys.unraisablehook = _log_unraisable
    threading.excepthook = _log_thread_exception
