"""Discord: a channel webhook taking one embed, coloured by status.

`username` and `avatar` (EaseProbe's keys) override the webhook's own name and picture;
`thumbnail` (EaseProbe's key, an image URL) is shown in the message's first embed, as
Discord's `embed.thumbnail.url` (unless a template override set one).
Mentions are disabled (`allowed_mentions`), so a probed server's message cannot ping
@everyone. Discord refuses a whole message (400 "Invalid Form Body") when a text is too long,
so its limits are enforced here after rendering, whatever an override produced: content 2,000
characters; per embed title 256, description 4,096, 25 fields of name 256 and value 1,024,
footer 2,048; 6,000 over all embeds of a message; 10 embeds.

The webhook URL's path holds its token: `target()` and errors show only the host.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, ClassVar

from pydantic import Field, field_validator

from probe.notify._chat_webhook import ChatWebhookNotifier, ChatWebhookSpec
from probe.notify._http import check_http_url, error_text
from probe.notify.templates import clip

__all__ = ["DiscordNotifier", "DiscordSpec"]

_MAX_CONTENT = 2000
_MAX_EMBEDS = 10
_MAX_TOTAL = 6000
_EMBED_LIMITS = {"title": 256, "description": 4096}
_MAX_FIELDS = 25
_MAX_FIELD_NAME = 256
_MAX_FIELD_VALUE = 1024
_MAX_FOOTER = 2048
_MAX_AUTHOR = 256


class DiscordSpec(ChatWebhookSpec):
    """A `discord:` notifier: EaseProbe's `webhook` (or `webhook_file`), `username`,
    `avatar` and `thumbnail` (image URLs)."""

    kind: ClassVar[str] = "discord"

    username: str | None = Field(default=None, min_length=1, max_length=80)
    avatar: str | None = None
    thumbnail: str | None = None

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        # Discord refuses these with a 400 at every send; better said at load time.
        if value is not None and any(word in value.lower() for word in ("discord", "clyde")):
            raise ValueError('Discord refuses webhook names containing "discord" or "clyde"')
        return value

    @field_validator("avatar")
    @classmethod
    def _avatar_url(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else check_http_url(value, what="avatar")

    @field_validator("thumbnail")
    @classmethod
    def _thumbnail_url(cls, value: str | None) -> str | None:
        # Discord refuses a thumbnail URL that is not http(s) with a 400 at every send.
        if value is None or not value.strip():
            return None
        return check_http_url(value, what="thumbnail")


class DiscordNotifier(ChatWebhookNotifier[DiscordSpec]):
    spec_type = DiscordSpec
    format = "discord"
    service = "Discord"

    def fit(self, payload: Any) -> Any:
        if not isinstance(payload, MutableMapping):
            return payload
        if self.spec.username:
            payload["username"] = self.spec.username
        if self.spec.avatar:
            payload["avatar_url"] = self.spec.avatar
        embeds = payload.get("embeds")
        if self.spec.thumbnail and isinstance(embeds, list) and embeds:
            first = embeds[0]
            if isinstance(first, MutableMapping) and not first.get("thumbnail"):
                first["thumbnail"] = {"url": self.spec.thumbnail}
        # Text from probed servers must never ping anyone.
        payload["allowed_mentions"] = {"parse": []}
        _fit(payload)
        return payload

    def describe_failure(self, response: Any) -> str:
        # Without ?wait=true Discord answers 204 No Content; errors are JSON
        # ({"message": ..., "code": ...}, 429 with "retry_after").
        return _describe(response)


def _describe(response: Any) -> str:
    """Discord's `message`, its `code`, and the first field errors ("embeds.0.description:
    Must be 4096 or fewer in length.")."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return error_text(response)
    text = str(body.get("message") or "").strip()
    if isinstance(body.get("code"), int) and body["code"]:
        text += f" (code {body['code']})"
    details = list(_field_errors(body.get("errors"), ""))[:3]
    if details:
        text += ": " + "; ".join(details)
    return " ".join(text.split())[:300]


def _field_errors(node: Any, path: str) -> Any:
    if not isinstance(node, dict):
        return
    for error in node.get("_errors") or ():
        if isinstance(error, dict) and error.get("message"):
            yield f"{path or 'body'}: {error['message']}"
    for key, child in node.items():
        if key != "_errors":
            yield from _field_errors(child, f"{path}.{key}" if path else str(key))


def _fit(payload: MutableMapping[str, Any]) -> None:
    """Cut what Discord would refuse as too long, in place."""
    if isinstance(payload.get("content"), str):
        payload["content"] = clip(payload["content"], _MAX_CONTENT)
    embeds = payload.get("embeds")
    if not isinstance(embeds, list):
        return
    del embeds[_MAX_EMBEDS:]
    for embed in embeds:
        if isinstance(embed, MutableMapping):
            _fit_embed(embed)
    # The 6,000 total: shorten descriptions first (the longest text), then field values.
    excess = sum(_embed_size(e) for e in embeds if isinstance(e, MutableMapping)) - _MAX_TOTAL
    for embed in embeds:
        if excess <= 0 or not isinstance(embed, MutableMapping):
            continue
        description = embed.get("description")
        if isinstance(description, str) and description:
            keep = max(1, len(description) - excess)
            excess -= len(description) - len(clip(description, keep))
            embed["description"] = clip(description, keep)
    for embed in embeds:
        for field in (embed.get("fields") or ()) if isinstance(embed, MutableMapping) else ():
            if excess <= 0:
                break
            if isinstance(field, MutableMapping) and isinstance(field.get("value"), str):
                value = field["value"]
                keep = max(1, len(value) - excess)
                excess -= len(value) - len(clip(value, keep))
                field["value"] = clip(value, keep)


def _fit_embed(embed: MutableMapping[str, Any]) -> None:
    for key, limit in _EMBED_LIMITS.items():
        if isinstance(embed.get(key), str):
            embed[key] = clip(embed[key], limit)
    footer = embed.get("footer")
    if isinstance(footer, MutableMapping) and isinstance(footer.get("text"), str):
        footer["text"] = clip(footer["text"], _MAX_FOOTER)
    author = embed.get("author")
    if isinstance(author, MutableMapping) and isinstance(author.get("name"), str):
        author["name"] = clip(author["name"], _MAX_AUTHOR)
    fields = embed.get("fields")
    if isinstance(fields, list):
        del fields[_MAX_FIELDS:]
        for field in fields:
            if not isinstance(field, MutableMapping):
                continue
            # An empty name or value is a 400 too.
            field["name"] = clip(field.get("name") or "-", _MAX_FIELD_NAME)
            field["value"] = clip(field.get("value") or "-", _MAX_FIELD_VALUE)


def _embed_size(embed: MutableMapping[str, Any]) -> int:
    """Characters Discord counts toward the 6,000: title, description, field names and
    values, footer text, author name."""
    size = sum(len(str(embed.get(key) or "")) for key in ("title", "description"))
    for field in embed.get("fields") or ():
        if isinstance(field, MutableMapping):
            size += len(str(field.get("name") or "")) + len(str(field.get("value") or ""))
    for key, sub in (("footer", "text"), ("author", "name")):
        part = embed.get(key)
        if isinstance(part, MutableMapping):
            size += len(str(part.get(sub) or ""))
    return size
