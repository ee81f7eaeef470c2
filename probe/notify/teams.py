"""Microsoft Teams: a Power Automate Workflows webhook taking an Adaptive Card.

Microsoft is retiring the Office 365 connectors (the old `*.webhook.office.com` incoming
webhooks and their MessageCard format), announced in 2024: no new ones since August 2024,
and the existing ones stop working at a retirement date Microsoft has moved more than once.
The replacement is a Workflows
webhook: in Teams, a channel's "Workflows" -> "Post to a channel when a webhook request is
received", whose URL (on `*.logic.azure.com` or `*.powerplatform.com`) carries its secret in
the `sig` query parameter. It takes `{"type": "message", "attachments": [<Adaptive Card>]}`
and answers 202 Accepted. An old connector URL still works with this payload until Microsoft
switches it off; a warning says so when one is configured.

The card's title sits in a Container whose style colours it by status (attention = red,
good = green). A card larger than Teams' 28 KB is refused, so long texts are cut here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping, MutableSequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from probe.notify._chat_webhook import ChatWebhookNotifier, ChatWebhookSpec
from probe.notify.base import NotifyContext
from probe.notify.templates import clip

__all__ = ["TeamsNotifier", "TeamsSpec"]

log = logging.getLogger(__name__)

# Teams refuses messages over about 28 KB; keep a margin for the envelope.
_MAX_BYTES = 27 * 1024


class TeamsSpec(ChatWebhookSpec):
    """A `teams:` notifier: EaseProbe's `webhook` (or `webhook_file`), a Workflows URL."""

    kind: ClassVar[str] = "teams"


class TeamsNotifier(ChatWebhookNotifier[TeamsSpec]):
    spec_type = TeamsSpec
    format = "teams"
    service = "Teams"

    def __init__(self, spec: TeamsSpec, context: NotifyContext) -> None:
        super().__init__(spec, context)
        host = (urlsplit(spec.webhook.get_secret_value()).hostname or "").lower()
        if host.endswith(".webhook.office.com") or host == "outlook.office.com":
            log.warning(
                "teams notifier %r uses an Office 365 connector webhook, which Microsoft is "
                "retiring; create a Workflows webhook instead (channel -> Workflows -> "
                '"Post to a channel when a webhook request is received")',
                spec.name,
            )

    def fit(self, payload: Any) -> Any:
        _fit(payload)
        return payload

    def secrets(self, url: str) -> list[str]:
        return [url, *_query_values(url)]


def _query_values(url: str) -> list[str]:
    # The `sig` of a Workflows URL is its secret; mask every query value to be safe.
    query = urlsplit(url).query
    return [part.partition("=")[2] for part in query.split("&") if len(part.partition("=")[2]) > 3]


def _fit(payload: Any) -> None:
    """Cut the longest texts until the card fits Teams' size limit, in place."""
    for _ in range(20):
        excess = len(json.dumps(payload, ensure_ascii=False).encode()) - _MAX_BYTES
        if excess <= 0:
            return
        holder, key, text = _longest_string(payload)
        if holder is None or len(text) <= 16:
            return
        # Bytes, not characters, are over: cutting as many characters always suffices.
        holder[key] = clip(text, max(16, len(text) - excess - 16))


def _longest_string(node: Any) -> tuple[Any, Any, str]:
    best: tuple[Any, Any, str] = (None, None, "")
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        items: Any
        if isinstance(current, MutableMapping):
            items = current.items()
        elif isinstance(current, MutableSequence):
            items = enumerate(current)
        else:
            continue
        for key, value in items:
            if isinstance(value, str):
                if len(value) > len(best[2]):
                    best = (current, key, value)
            else:
                stack.append(value)
    return best
