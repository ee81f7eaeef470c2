"""A generic webhook receiver for the alerting tests: an aiohttp.web app that records every
request and answers as told (a status per request, an error body, Retry-After, a hang).

It behaves like the services a generic webhook meets: 200/204 on success, a JSON or text error
body on failure. It also counts requests in flight, so tests can see the dispatcher's bound on
concurrent sends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Answer", "Hit", "WebhookServer", "notification", "webhook_notifier"]


@dataclass
class Hit:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived
    status: int = 0  # what it was answered

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Answer:
    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class WebhookServer:
    """`await server.start(web_server)` -> URL base. `answer(...)` sets the answer to the next
    requests (`times`), `default` the answer after those."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.default = Answer(200, "ok")
        self._script: list[Answer] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.base = ""
        self._arrived = asyncio.Condition()

    async def start(self, web_server: Callable[..., Any]) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.base = await web_server(app)
        return self.base

    def answer(self, answer: Answer, times: int = 1) -> None:
        self._script.extend([answer] * times)

    @property
    def accepted(self) -> list[Hit]:
        return [hit for hit in self.hits if hit.accepted]

    async def wait_for(
        self, count: int, *, accepted: bool = True, timeout: float = 10.0
    ) -> list[Hit]:
        """Wait until `count` requests were accepted (or merely received)."""

        def enough() -> bool:
            return len(self.accepted if accepted else self.hits) >= count

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(enough), timeout)
        return self.accepted if accepted else list(self.hits)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        hit = Hit(
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers=dict(request.headers),
            body=await request.read(),
            at=time.monotonic(),
        )
        answer = self._script.pop(0) if self._script else self.default
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if answer.delay:
                await asyncio.sleep(answer.delay)
        finally:
            self.in_flight -= 1
        hit.status = answer.status
        self.hits.append(hit)
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)


# -- building notifiers and notifications for the tests -------------------------------------


def webhook_notifier(
    client: Any,
    name: str,
    url: str,
    *,
    dry: bool = False,
    timeout: float = 2.0,
    templates: Any = None,
    **keys: Any,
) -> Any:
    """A real WebhookNotifier, validated from config keys like the loader does."""
    from probe.notify.base import NotifyContext
    from probe.notify.templates import Templates
    from probe.notify.webhook import WebhookNotifier, WebhookSpec

    spec = WebhookSpec.model_validate({"name": name, "url": url, **keys})
    context = NotifyContext(
        http=client, templates=templates or Templates(), timeout=timeout, dry=dry
    )
    return WebhookNotifier(spec, context)


def notification(event: str = "down", probe: str | None = "api", **values: Any) -> Any:
    from probe.notify.base import Event, Notification

    defaults: dict[str, Any] = {
        "time": time.time(),
        "kind": "tcp",
        "endpoint": "127.0.0.1:1",
        "status": "down" if event == "down" else "up",
        "message": "connection refused",
        "position": 1 if event == "down" else 0,
    }
    defaults.update(values)
    return Notification(event=Event(event), probe=probe, **defaults)
