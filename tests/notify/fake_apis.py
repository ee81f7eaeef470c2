"""Local stand-ins for the chat APIs, as aiohttp.web apps: they record every request and answer
with the real services' response shapes and error shapes, so the notifiers are tested against
what they will meet, over real HTTP on loopback.

- Slack incoming webhook: 200 text `ok`; 400 `invalid_payload` / `no_text` / `invalid_blocks`;
  404 `no_service` for an unknown hook.
- Telegram Bot API `sendMessage`: `{"ok": true, "result": {message}}`; `{"ok": false,
  "error_code": 401, "description": "Unauthorized"}` for a bad token; 400 "Bad Request: ..."
  for an unknown chat, a message over 4,096 characters or HTML it cannot parse; 429 with
  `parameters.retry_after`.
- Discord webhook: 204; 400 JSON errors (`Invalid Form Body`, code 50035, field errors);
  401/404 for a bad token or webhook; 429 JSON with `retry_after`.
- Teams Workflows webhook: 202 Accepted; 400 JSON `{"error": {"code", "message"}}`; 401 for a
  bad signature.

Each fake can be told to answer the next requests differently (`script`): an outage (500),
rate limiting (429) or a hang (`delay`).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from probe.notify.base import Event, Notification

__all__ = [
    "DISCORD_TOKEN",
    "HOSTILE",
    "TEAMS_SIG",
    "TELEGRAM_TOKEN",
    "FakeDiscord",
    "FakeSlack",
    "FakeTeams",
    "FakeTelegram",
    "Recorded",
    "Reply",
    "down",
    "group",
    "recovery",
    "sla",
]

TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SLACK_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
DISCORD_TOKEN = "bWFkZS11cC1kaXNjb3JkLXdlYmhvb2stdG9rZW4tZm9yLXRlc3Rz"
DISCORD_PATH = f"/api/webhooks/1234567890/{DISCORD_TOKEN}"
TEAMS_SIG = "Zm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC1zaWduYXR1cmU"
TEAMS_PATH = "/workflows/0f1e2d3c4b5a/triggers/manual/paths/invoke"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """A scripted answer: status, a JSON or text body, headers, and a delay before it."""

    status: int = 200
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def response(self) -> web.Response:
        if self.json is not None:
            return web.json_response(self.json, status=self.status, headers=self.headers)
        return web.Response(status=self.status, text=self.text or "", headers=self.headers)


class FakeAPI:
    """Records requests; answers with scripted replies first, then as the service would."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: list[Reply] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.base = ""

    def script(self, reply: Reply, times: int = 1) -> None:
        """Answer the next `times` requests with `reply` (after recording them)."""
        self._script.extend([reply] * times)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
            )
        )
        if self._script:
            reply = self._script.pop(0)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            return reply.response()
        return await self.answer(request, body)

    async def answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        raise NotImplementedError


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


# -- Slack ---------------------------------------------------------------------------------


class FakeSlack(FakeAPI):
    """hooks.slack.com: POST {SLACK_PATH}."""

    @property
    def url(self) -> str:
        return self.base + SLACK_PATH

    async def answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        def text(status: int, value: str) -> web.Response:
            return web.Response(status=status, text=value, content_type="text/html")

        if request.method != "POST" or request.path != SLACK_PATH:
            return text(404, "no_service")
        payload = _json_or_none(body)
        if not isinstance(payload, dict):
            return text(400, "invalid_payload")
        if not (payload.get("text") or payload.get("blocks") or payload.get("attachments")):
            return text(400, "no_text")
        if not _slack_blocks_valid(payload):
            return text(400, "invalid_blocks")
        return text(200, "ok")


def _slack_blocks_valid(payload: Mapping[str, Any]) -> bool:
    holders = [payload, *(a for a in payload.get("attachments") or () if isinstance(a, dict))]
    count = 0
    for holder in holders:
        for block in holder.get("blocks") or ():
            count += 1
            kind = block.get("type")
            if kind not in ("header", "section", "context", "divider", "actions", "image"):
                return False
            text = block.get("text")
            if text is not None:
                if text.get("type") not in ("plain_text", "mrkdwn"):
                    return False
                if kind == "header" and (text["type"] != "plain_text" or len(text["text"]) > 150):
                    return False
                if len(text.get("text", "")) > 3000:
                    return False
            fields = block.get("fields") or []
            if len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields):
                return False
            if kind == "section" and text is None and not fields:
                return False
    return count <= 50


# -- Telegram ------------------------------------------------------------------------------

_TG_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
    "tg-spoiler", "span", "blockquote", "tg-emoji",
}  # fmt: skip
_TG_TOKEN = re.compile(r"<(/?)([A-Za-z][\w-]*)((?:\s[^<>]*)?)>|<|&(#\d+|#x[0-9a-fA-F]+|\w+);|&")
_TG_ENTITIES = {"lt", "gt", "amp", "quot"}


def telegram_parse(text: str) -> tuple[str | None, str]:
    """(error, visible text) as Telegram's HTML parse mode would see `text`."""
    stack: list[str] = []
    visible: list[str] = []
    pos = 0
    for match in _TG_TOKEN.finditer(text):
        visible.append(text[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token == "<":
            return f"Unsupported start tag at byte offset {match.start()}", ""
        if token == "&":
            visible.append("&")  # a lone & is taken literally
            continue
        if token.startswith("&"):
            name = match.group(4)
            if not name.startswith("#") and name not in _TG_ENTITIES:
                return f'Unsupported HTML entity "&{name};"', ""
            visible.append(html.unescape(token))
            continue
        closing, name = match.group(1), match.group(2).lower()
        if name not in _TG_TAGS:
            return f'Unsupported start tag "{name}" at byte offset {match.start()}', ""
        if closing:
            if not stack or stack[-1] != name:
                return f"Unexpected end tag at byte offset {match.start()}", ""
            stack.pop()
        else:
            stack.append(name)
    visible.append(text[pos:])
    if stack:
        return f'Can\'t find end tag corresponding to start tag "{stack[-1]}"', ""
    return None, "".join(visible)


class FakeTelegram(FakeAPI):
    """api.telegram.org: POST /bot<token>/sendMessage. Knows one bot and some chats."""

    def __init__(self, token: str = TELEGRAM_TOKEN, chats: tuple[int | str, ...] = (42,)) -> None:
        super().__init__()
        self.token = token
        self.chats = {str(chat) for chat in chats}
        self.messages: list[dict[str, Any]] = []

    async def answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        def error(status: int, description: str) -> web.Response:
            return web.json_response(
                {"ok": False, "error_code": status, "description": description}, status=status
            )

        match = re.fullmatch(r"/bot([^/]+)/(\w+)", request.path)
        if match is None:
            return error(404, "Not Found")
        if match.group(1) != self.token:
            return error(401, "Unauthorized")
        if match.group(2) != "sendMessage":
            return error(404, "Not Found: method not found")
        payload = _json_or_none(body)
        if not isinstance(payload, dict):
            return error(400, "Bad Request: message text is empty")
        if str(payload.get("chat_id")) not in self.chats:
            return error(400, "Bad Request: chat not found")
        text = payload.get("text") or ""
        visible = text
        if payload.get("parse_mode") == "HTML":
            problem, visible = telegram_parse(text)
            if problem is not None:
                return error(400, f"Bad Request: can't parse entities: {problem}")
        if not visible.strip():
            return error(400, "Bad Request: message text is empty")
        if len(visible.encode("utf-16-le")) // 2 > 4096:
            return error(400, "Bad Request: message is too long")
        self.messages.append(payload)
        message = {
            "message_id": len(self.messages),
            "chat": {"id": payload["chat_id"], "type": "group"},
            "date": 1714557600,
            "text": visible,
        }
        return web.json_response({"ok": True, "result": message})


# -- Discord -------------------------------------------------------------------------------


def _max_length(limit: int) -> dict[str, Any]:
    return {
        "_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}
        ]
    }


class FakeDiscord(FakeAPI):
    """discord.com: POST /api/webhooks/<id>/<token>."""

    @property
    def url(self) -> str:
        return self.base + DISCORD_PATH

    async def answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        match = re.fullmatch(r"/api/webhooks/(\d+)/([^/]+)", request.path)
        if match is None or match.group(1) != "1234567890":
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        if match.group(2) != DISCORD_TOKEN:
            return web.json_response(
                {"message": "Invalid Webhook Token", "code": 50027}, status=401
            )
        payload = _json_or_none(body)
        if not isinstance(payload, dict):
            return web.json_response(
                {"message": "Cannot send an empty message", "code": 50006}, status=400
            )
        errors = _discord_errors(payload)
        if errors:
            return web.json_response(
                {"message": "Invalid Form Body", "code": 50035, "errors": errors}, status=400
            )
        if not payload.get("content") and not payload.get("embeds"):
            return web.json_response(
                {"message": "Cannot send an empty message", "code": 50006}, status=400
            )
        return web.Response(status=204)


def _discord_errors(payload: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    if len(payload.get("content") or "") > 2000:
        errors["content"] = _max_length(2000)
    username = payload.get("username")
    if isinstance(username, str) and "discord" in username.lower():
        errors["username"] = {
            "_errors": [{"code": "USERNAME_INVALID_CONTAINS", "message": "Username cannot "
                         'contain "discord"'}]
        }  # fmt: skip
    embeds = payload.get("embeds") or []
    total = 0
    embed_errors: dict[str, Any] = {}
    for index, embed in enumerate(embeds):
        found: dict[str, Any] = {}
        for key, limit in (("title", 256), ("description", 4096)):
            value = embed.get(key) or ""
            total += len(value)
            if len(value) > limit:
                found[key] = _max_length(limit)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            found["fields"] = _max_length(25)
        for position, item in enumerate(fields):
            name, value = item.get("name") or "", item.get("value") or ""
            total += len(name) + len(value)
            if not name or not value or len(name) > 256 or len(value) > 1024:
                found.setdefault("fields", {})[str(position)] = _max_length(1024)
        total += len((embed.get("footer") or {}).get("text") or "")
        if "thumbnail" in embed:
            # An embed image: an object whose `url` is http(s) (or attachment://).
            thumbnail = embed["thumbnail"]
            url = thumbnail.get("url") if isinstance(thumbnail, dict) else None
            if not isinstance(url, str) or not re.match(r"(https?|attachment)://", url):
                found["thumbnail"] = {
                    "url": {"_errors": [{"code": "URL_TYPE_INVALID_SCHEME", "message": "Scheme "
                            "must be one of ('http', 'https', 'attachment')."}]}
                }  # fmt: skip
        if not isinstance(embed.get("color", 0), int):
            found["color"] = {"_errors": [{"code": "NUMBER_TYPE_COERCE", "message": "bad"}]}
        if found:
            embed_errors[str(index)] = found
    if len(embeds) > 10:
        errors["embeds"] = _max_length(10)
    elif embed_errors:
        errors["embeds"] = embed_errors
    elif total > 6000:
        errors["embeds"] = {
            "_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED", "message": "Embed size exceeds "
                         "maximum size of 6000"}]
        }  # fmt: skip
    return errors


# -- Teams ---------------------------------------------------------------------------------


class FakeTeams(FakeAPI):
    """A Power Automate Workflows webhook ("When a Teams webhook request is received")."""

    @property
    def url(self) -> str:
        return (
            f"{self.base}{TEAMS_PATH}?api-version=2016-06-01"
            f"&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}"
        )

    async def answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        def error(status: int, code: str, message: str) -> web.Response:
            return web.json_response({"error": {"code": code, "message": message}}, status=status)

        if request.path != TEAMS_PATH:
            return error(404, "WorkflowNotFound", "The workflow could not be found.")
        if request.query.get("sig") != TEAMS_SIG:
            return error(
                401,
                "DirectApiInvalidAuthorizationSignature",
                "The provided authorization signature is not valid.",
            )
        payload = _json_or_none(body)
        if not isinstance(payload, dict):
            return error(
                400,
                "InvalidRequestContent",
                "The input body for trigger 'manual' of type 'Request' must be of type JSON.",
            )
        attachments = payload.get("attachments")
        if (
            payload.get("type") != "message"
            or not isinstance(attachments, list)
            or not attachments
            or any(
                a.get("contentType") != "application/vnd.microsoft.card.adaptive"
                or (a.get("content") or {}).get("type") != "AdaptiveCard"
                for a in attachments
            )
        ):
            return error(
                400,
                "TriggerInputSchemaMismatch",
                "The input body for trigger 'manual' of type 'Request' did not match its "
                "schema definition.",
            )
        if len(body) > 28 * 1024:
            return error(413, "MessageSizeTooBig", "The message is larger than 28 KB.")
        return web.Response(status=202)


# -- sample notifications ------------------------------------------------------------------

HOSTILE = 'api <b>&amp; "x" \'y\' _*[]`~|#{{ "zz" ~ "yy" }}{% if %}'


def down(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "event": Event.DOWN,
        "time": 1714557600.0,  # 2024-05-01 10:00:00 UTC
        "probe": "api",
        "kind": "http",
        "endpoint": "https://api.example.test/health?x=1&y=<2>",
        "status": "down",
        "message": "status 503 not in 200-399",
        "outage_start": 1714557600.0,
        "position": 1,
        "labels": {"team": "core"},
    }
    values.update(overrides)
    return Notification(**values)


def recovery(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "event": Event.RECOVERY,
        "time": 1714557600.0 + 7500,
        "status": "up",
        "message": "status 200",
        "outage_start": 1714557600.0,
        "duration": 7500.0,  # 2h 5m
        "position": 0,
    }
    values.update(overrides)
    return down(**values)


def sla(rows: int = 3, **overrides: Any) -> Notification:
    report = {
        "window": "day",
        "label": "2024-05-01",
        "rows": [
            {
                "name": f"probe-{index:04d}",
                "kind": "http",
                "endpoint": f"https://svc{index}.example.test/",
                "sla": None if index == 1 else 100.0 - index / 100,
                "up_s": 86000.0,
                "down_s": float(index * 60),
                "checks": 1440,
                "incidents": index % 3,
                "p95_ms": None if index == 1 else 100.0 + index,
            }
            for index in range(rows)
        ],
    }
    values: dict[str, Any] = {"event": Event.SLA, "time": 1714608000.0, "report": report}
    values.update(overrides)
    return Notification(**values)


def group(
    downs: int = 2, recoveries: int = 1, *, name: str = "probe", message: str = ""
) -> Notification:
    """A summary (settings.notify.group) of `downs` downs and `recoveries` recoveries, the
    later downs' outages starting earlier (so worst first reverses their order)."""
    from probe.notify.grouping import summarize

    members = [
        down(
            probe=f"{name}-{index:03d}",
            outage_start=1714557600.0 - index * 60,
            message=message or f"connect: connection refused ({index})",
        )
        for index in range(downs)
    ] + [
        recovery(probe=f"{name}-up-{index:03d}", message=message or "status 200")
        for index in range(recoveries)
    ]
    return summarize(members, now=1714557600.0 + 7500)
