"""The access log: one line per request, written to its file by a thread."""

from __future__ import annotations

import logging
import logging.handlers
import queue
import re
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from probe.config.models import HTTPAccessLogSettings
from probe.errors import StartupError
from probe.logs import redact
from probe.web.push_route import redact_push_token

__all__ = ["AccessLogger", "open_access_log"]


_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")


def _printable(text: str) -> str:
    # One line per request whatever the client sent: anything but visible ASCII %-encoded.
    return _UNPRINTABLE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


class AccessLogger(AbstractAccessLogger):
    """`ADDRESS METHOD PATH STATUS BYTES DURATION`: the path without its query string (a
    token may be in it), a push URL's token as `***`, every secret of the config as the main
    log shows it (a push token in a path spelled otherwise, `//api/v1/push/...` or
    `/api/v1/%70ush/...`, is still one), and never a header (Authorization). This logger
    does not pass the main log's redaction, so it applies it here."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %d %.1fms",
            _printable(request.remote or "-"),
            _printable(request.method),
            _printable(redact(redact_push_token(request.rel_url.raw_path))),
            response.status,
            response.body_length,
            time * 1000,
        )


def open_access_log(settings: HTTPAccessLogSettings) -> tuple[logging.Logger, Callable[[], None]]:
    """A logger whose lines a thread writes to the file (the event loop only queues them),
    and the function that stops the thread and closes the file. Raises StartupError when the
    file cannot be opened."""
    path = settings.file
    handler: logging.Handler
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if settings.self_rotate:
            handler = logging.handlers.RotatingFileHandler(
                path,
                maxBytes=settings.size * 1024 * 1024,
                backupCount=settings.backups,
                encoding="utf-8",
            )
        else:
            # An outside tool rotates: the file is reopened once it has been moved away.
            handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    except OSError as err:
        reason = err.strerror or str(err)
        raise StartupError(f"settings.http.log.file: cannot open {path}: {reason}") from None
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = _gmtime
    handler.setFormatter(formatter)
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(lines, handler)
    # Not in the logging manager's tree: its lines go to the file only, never to probe's log.
    logger = logging.Logger("probe.web.access", logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.handlers.QueueHandler(lines))
    listener.start()

    def stop() -> None:
        listener.stop()  # writes what is queued, then ends the thread
        handler.close()

    return logger, stop


def _gmtime(seconds: float | None) -> time.struct_time:
    return time.gmtime(seconds)
