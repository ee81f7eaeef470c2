"""Telegram: the Bot API's `sendMessage` with `parse_mode: HTML`.

HTML rather than Markdown: Telegram's Markdown breaks on a `_` in a URL (EaseProbe #628) and
needs every special character escaped; in HTML only `<`, `>`, `&` and quotes are, and the
templates autoescape everything user-provided. Link previews are off (an endpoint's URL would
otherwise unfurl).

A message longer than Telegram's 4,096 characters is split into several, at line ends where
there are any, each valid HTML on its own: tags still open at a cut are closed there and
reopened in the next part, and no cut falls inside a tag or an entity. Should a later part
fail, a retry sends the earlier parts again (delivery is at least once).

The token is in the request path: it never appears in `target()`, logs or errors.
"""

from __future__ import annotations

import html
import re
from typing import Any, ClassVar

from pydantic import SecretStr, field_validator

from probe.notify._http import check_http_url, error_text, post_json, public_url
from probe.notify.base import DeliveryError, Notification, Notifier
from probe.notify.templates import TemplatedSpec

__all__ = ["DEFAULT_API_URL", "MAX_MESSAGE", "TelegramNotifier", "TelegramSpec", "split_html"]

MAX_MESSAGE = 4096
DEFAULT_API_URL = "https://api.telegram.org"

# <digits>:<35 characters>, e.g. 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw
_TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{30,64}")
_CHAT_ID = re.compile(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,63}")


class TelegramSpec(TemplatedSpec):
    """A `telegram:` notifier: EaseProbe's `token` (or `token_file`) and `chat_id`, plus
    `api_url` for a self-hosted Bot API server or a proxy."""

    kind: ClassVar[str] = "telegram"

    token: SecretStr
    chat_id: str
    api_url: str = DEFAULT_API_URL

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not _TOKEN.fullmatch(value.get_secret_value().strip()):
            raise ValueError(
                "not a Telegram bot token: expected the bot's id, a colon and about 35 "
                "letters, digits, _ or - (as @BotFather gives it: 123456789:AAH...)"
            )
        return SecretStr(value.get_secret_value().strip())

    @field_validator("chat_id")
    @classmethod
    def _chat_id_shape(cls, value: str) -> str:
        value = value.strip()
        if not _CHAT_ID.fullmatch(value):
            raise ValueError(
                "expected a numeric chat id (123456789, or -100... for groups and channels) "
                "or a public channel's @username"
            )
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return check_http_url(value, what="api_url").rstrip("/")

    def target(self) -> str:
        if self.api_url == DEFAULT_API_URL:
            return f"telegram chat {self.chat_id}"
        return f"telegram chat {self.chat_id} via {public_url(self.api_url)}"


class TelegramNotifier(Notifier[TelegramSpec]):
    spec_type = TelegramSpec
    format = "telegram"

    def render(self, notification: Notification) -> list[dict[str, Any]]:
        """One `sendMessage` body per part (one unless the text exceeds 4,096)."""
        text = self.context.templates.render(
            self.format,
            notification.event,
            notification,
            override=self.spec.override(notification.event),
        )
        parts = split_html(text.strip(), MAX_MESSAGE) or ["(empty message)"]
        chat_id = self.spec.chat_id
        chat: int | str = chat_id if chat_id.startswith("@") else int(chat_id)
        return [
            {
                "chat_id": chat,
                "text": part,
                "parse_mode": "HTML",
                # Bot API 7.0's replacement of `disable_web_page_preview`.
                "link_preview_options": {"is_disabled": True},
            }
            for part in parts
        ]

    async def send(self, payload: Any) -> None:
        token = self.spec.token.get_secret_value()
        url = f"{self.spec.api_url}/bot{token}/sendMessage"
        messages = payload if isinstance(payload, list) else [payload]
        for index, message in enumerate(messages, 1):
            try:
                response = await post_json(
                    self.context.http,
                    url,
                    message,
                    service="Telegram",
                    timeout=self.timeout,
                    secrets=[token],
                    describe=_describe,
                )
            except DeliveryError as exc:
                if len(messages) == 1:
                    raise
                raise DeliveryError(
                    f"{exc.message} (part {index} of {len(messages)})",
                    permanent=exc.permanent,
                    retry_after=exc.retry_after,
                ) from None
            body = _json(response)
            if isinstance(body, dict) and body.get("ok") is False:
                # Never seen with a 2xx, but the Bot API's contract is the `ok` field.
                raise DeliveryError(
                    f"Telegram refused the message: {_describe(response)}", permanent=True
                )


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _describe(response: Any) -> str:
    """The Bot API's `description`, with what to do when a group became a supergroup."""
    text = error_text(response)
    body = _json(response)
    parameters = body.get("parameters") if isinstance(body, dict) else None
    if isinstance(parameters, dict) and isinstance(parameters.get("migrate_to_chat_id"), int):
        new_id = parameters["migrate_to_chat_id"]
        text += f" (the group is now a supergroup: set chat_id to {new_id})"
    return text


# -- splitting long messages ---------------------------------------------------------------

# A tag, an entity, or one character: the atoms a message may be cut between.
_ATOM = re.compile(r"<[^<>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);|[\s\S]")
_TAG_NAME = re.compile(r"<\s*(/?)\s*([A-Za-z][\w-]*)")


def _units(text: str) -> int:
    # Telegram counts UTF-16 code units: an emoji outside the BMP counts 2.
    return len(text.encode("utf-16-le")) // 2


def _visible(text: str) -> str:
    return html.unescape(re.sub(r"<[^<>]*>", "", text))


def split_html(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """`text` (Telegram HTML) in parts of at most `limit` UTF-16 units, each valid HTML.

    Cuts fall at the last line end that fits, else at the last space, else anywhere between
    two characters; never inside a tag or an entity, and never so early that the part would
    be less than half full. Tags open at a cut are closed before it
    and reopened after it. Parts with no visible text are dropped (Telegram refuses them).
    """
    if _units(text) <= limit:
        return [text] if _visible(text).strip() else []
    atoms = _ATOM.findall(text)
    parts: list[str] = []
    start = 0
    start_stack: list[tuple[str, str]] = []  # (name, opening tag) of the tags open at `start`
    while start < len(atoms):
        stack = list(start_stack)
        prefix = "".join(opening for _, opening in stack)
        used = _units(prefix)
        line_cut: tuple[int, list[tuple[str, str]]] | None = None
        space_cut: tuple[int, list[tuple[str, str]]] | None = None
        end = start
        while end < len(atoms):
            atom = atoms[end]
            size = _units(atom)
            tag = _TAG_NAME.match(atom) if atom.startswith("<") else None
            next_stack = stack
            if tag is not None:
                name = tag.group(2).lower()
                if tag.group(1):  # a closing tag: pop to its opening one
                    names = [open_name for open_name, _ in stack]
                    if name in names:
                        next_stack = stack[: len(names) - 1 - names[::-1].index(name)]
                else:
                    next_stack = [*stack, (name, atom)]
            closing = sum(_units(f"</{name}>") for name, _ in next_stack)
            if used + size + closing > limit and end > start:
                break
            used += size
            stack = next_stack
            # A cut leaves the part at least half full, so that a short line before a
            # long one does not go out as a message of its own.
            if atom in ("\n", " ") and used >= limit // 2:
                if atom == "\n":
                    line_cut = (end, list(stack))
                else:
                    space_cut = (end, list(stack))
            end += 1
        if end >= len(atoms):
            parts.append(prefix + "".join(atoms[start:]) + _closers(stack))
            break
        cut = line_cut or space_cut
        if cut is not None:
            index, cut_stack = cut
            parts.append(prefix + "".join(atoms[start:index]) + _closers(cut_stack))
            start, start_stack = index + 1, cut_stack  # the newline or space itself is dropped
        else:
            parts.append(prefix + "".join(atoms[start:end]) + _closers(stack))
            start, start_stack = end, stack
    return [part for part in parts if _visible(part).strip()]


def _closers(stack: list[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))
