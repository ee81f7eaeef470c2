"""The push endpoint: `GET|POST /api/v1/push/{token}[/start]`, where jobs report in.

The token in the path is the caller's credential (the API's bearer token and basic auth do
not apply here: auth.py lets these paths through). This module reads the request (the query
keys, each checked: a bad one is a 400 naming it) and turns the receiver's answer into the
response; the receiver (the App's PushMonitors, probe/push.py) finds the probe and records
the heartbeat. An unknown token is a 404 that says only "not found", and a client address
that keeps sending unknown tokens gets 429 for them, so guessing tokens costs time as well as
luck; a known token is never refused for its address's misses (a proxy's or a NAT's address
is every job's).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from probe.core.result import Status
from probe.rate_limit import Bucket, KeyedBuckets
from probe.text import printable
from probe.web.query import BadRequest
from probe.web.responses import json_error

__all__ = [
    "MAX_MESSAGE",
    "PUSH_PREFIX",
    "UNKNOWN_BURST",
    "UNKNOWN_RATE",
    "Heartbeat",
    "PushReceiver",
    "PushReply",
    "add_push_routes",
    "redact_push_token",
]

PUSH_PREFIX = "/api/v1/push/"
# A job's own message, shown as the result's: one line of a reasonable length.
MAX_MESSAGE = 300
# Latency a job reports, in ms: a week is more than any job should report as its duration.
MAX_LATENCY_MS = 7 * 86400 * 1000.0
# Unknown tokens per client address: a few mistakes are free, then one a second.
UNKNOWN_BURST = 10.0
UNKNOWN_RATE = 1.0

_TOKEN_IN_PATH = re.compile(r"^(/api/v1/push/)[^/?]+")


def redact_push_token(path: str) -> str:
    """`path` with a push token replaced by `***` (the access log logs paths)."""
    return _TOKEN_IN_PATH.sub(r"\1***", path)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a job's call says: a start (`/start`), or a result (`status` None: up)."""

    start: bool = False
    status: Status | None = None
    message: str | None = None
    latency: float | None = None  # seconds, as the job measured them


@dataclass(frozen=True, slots=True)
class PushReply:
    """The receiver's answer: whether the token is a probe's, and, when the probe's calls
    come too fast, the seconds until one would be taken (0.0: it was)."""

    found: bool
    retry_after: float = 0.0


class PushReceiver(Protocol):
    """What records heartbeats (the App's PushMonitors). `misses` counts unknown tokens per
    client address: the receiver's, so a reload that rebuilds the web server does not give
    a guesser a fresh allowance."""

    misses: KeyedBuckets

    def receive(self, token: str, beat: Heartbeat) -> PushReply: ...


_RECEIVER = web.AppKey("push-receiver", PushReceiver)


def _heartbeat(request: web.Request, start: bool) -> Heartbeat:
    query = request.query
    status: Status | None = None
    raw_status = query.get("status")
    if raw_status is not None:
        if raw_status.lower() not in ("up", "down"):
            raise BadRequest("status: expected up or down")
        status = Status(raw_status.lower())
    message = query.get("msg")
    if message is not None:
        message = printable(message, MAX_MESSAGE).strip() or None
    latency: float | None = None
    # `ping` is Uptime Kuma's name for it: its users' scripts work unchanged.
    raw_latency = query.get("latency", query.get("ping"))
    if raw_latency is not None and raw_latency != "":
        try:
            value = float(raw_latency)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not 0 <= value <= MAX_LATENCY_MS:
            raise BadRequest("latency: expected a number of milliseconds")
        latency = value / 1000.0
    return Heartbeat(start=start, status=status, message=message, latency=latency)


async def _push(request: web.Request, start: bool) -> web.Response:
    beat = _heartbeat(request, start)
    reply = request.app[_RECEIVER].receive(request.match_info["token"], beat)
    if not reply.found:
        # Only misses count against an address: behind a proxy or a NAT every job shares one,
        # and someone guessing there must not keep the real jobs' calls out (the token's
        # strength is what makes guessing hopeless; this only makes it slow).
        unknown = request.app[_RECEIVER].misses
        client = request.remote or "-"
        slowed = unknown.wait(client)
        if slowed > 0:
            return _too_many(slowed)
        unknown.take(client)
        # The same answer whatever was wrong with the token.
        return json_error(404, "not found")
    if reply.retry_after > 0:
        return _too_many(reply.retry_after)
    return web.json_response({"status": "started" if start else "ok"})


def _too_many(seconds: float) -> web.Response:
    response = json_error(429, "too many requests")
    response.headers["Retry-After"] = Bucket.retry_after(seconds)
    return response


async def _beat(request: web.Request) -> web.Response:
    return await _push(request, start=False)


async def _start(request: web.Request) -> web.Response:
    return await _push(request, start=True)


def add_push_routes(app: web.Application, receiver: PushReceiver) -> None:
    """The push routes on `app`, recording into `receiver`."""
    app[_RECEIVER] = receiver
    for method in ("GET", "POST"):
        # No HEAD: a link checker's HEAD must not count as the job's call.
        app.router.add_route(method, PUSH_PREFIX + "{token}", _beat)
        app.router.add_route(method, PUSH_PREFIX + "{token}/start", _start)
