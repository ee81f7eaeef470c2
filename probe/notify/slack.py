"""Slack: an incoming webhook taking a Block Kit message.

The header is a top-level block; the details are blocks inside an attachment, whose `color`
draws the status bar beside them (Block Kit has no colour of its own). The top-level `text` is
what notifications and screen readers show.

Slack refuses a whole message (400 `invalid_blocks`) when one text is too long, so the limits
are enforced here after rendering, whatever an override produced: header 150 characters,
section text 3,000, a field 2,000 (10 fields at most), 50 blocks.

The webhook URL is the secret (its path): `target()` and errors show only the host. Slack's
hooks live on https://hooks.slack.com; any http(s) URL is accepted so that a Slack-compatible
service (Mattermost, Rocket.Chat) or a local test server can stand in.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, ClassVar

from probe.notify._chat_webhook import ChatWebhookNotifier, ChatWebhookSpec
from probe.notify._http import is_loopback
from probe.notify.base import NotifyContext
from probe.notify.templates import clip

__all__ = ["SlackNotifier", "SlackSpec"]

log = logging.getLogger(__name__)

_MAX_BLOCKS = 50
_MAX_FIELDS = 10
_MAX_HEADER = 150
_MAX_SECTION = 3000
_MAX_FIELD = 2000
_MAX_TEXT = 40000  # Slack truncates a message's `text` beyond this


class SlackSpec(ChatWebhookSpec):
    """A `slack:` notifier: EaseProbe's `webhook` (or `webhook_file`)."""

    kind: ClassVar[str] = "slack"


class SlackNotifier(ChatWebhookNotifier[SlackSpec]):
    spec_type = SlackSpec
    format = "slack"
    # Slack answers a text body: "ok", or an error code ("invalid_payload", "no_service").
    service = "Slack"

    def __init__(self, spec: SlackSpec, context: NotifyContext) -> None:
        super().__init__(spec, context)
        url = spec.webhook.get_secret_value()
        if url.startswith("http://") and not is_loopback(url):
            log.warning(
                "slack notifier %r: the webhook is plain http; its secret path travels "
                "unencrypted (Slack's webhooks are https://hooks.slack.com/...)",
                spec.name,
            )

    def fit(self, payload: Any) -> Any:
        if isinstance(payload, MutableMapping):
            _fit(payload)
        return payload


def _fit(payload: MutableMapping[str, Any]) -> None:
    """Cut what Slack would refuse as too long, in place."""
    if isinstance(payload.get("text"), str):
        payload["text"] = clip(payload["text"], _MAX_TEXT)
    budget = _MAX_BLOCKS
    budget -= _fit_blocks(payload, budget)
    for attachment in payload.get("attachments") or ():
        if isinstance(attachment, MutableMapping):
            budget -= _fit_blocks(attachment, budget)


def _fit_blocks(holder: MutableMapping[str, Any], budget: int) -> int:
    blocks = holder.get("blocks")
    if not isinstance(blocks, list):
        return 0
    del blocks[max(0, budget) :]
    for block in blocks:
        if not isinstance(block, MutableMapping):
            continue
        kind = block.get("type")
        _clip_text(block.get("text"), _MAX_HEADER if kind == "header" else _MAX_SECTION)
        fields = block.get("fields")
        if isinstance(fields, list):
            del fields[_MAX_FIELDS:]
            for item in fields:
                _clip_text(item, _MAX_FIELD)
        for element in block.get("elements") or ():
            _clip_text(element, _MAX_FIELD)
    return len(blocks)


def _clip_text(obj: Any, limit: int) -> None:
    if isinstance(obj, MutableMapping) and isinstance(obj.get("text"), str):
        obj["text"] = clip(obj["text"], limit)
