"""What the chat webhook notifiers (slack, teams, discord) share: a `webhook` URL (EaseProbe's
key, or `webhook_file`) whose path or query is its secret, a JSON payload rendered from the
kind's templates, and one POST through `post_json`.

Each kind keeps what differs: how its payload is cut to the service's limits (`fit`), which
parts of the URL to mask besides the whole (`secrets`), and how to read the service's error
answers (`describe_failure`).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import SecretStr, field_validator

from probe.notify._http import check_http_url, error_text, post_json, public_url
from probe.notify.base import Notification, Notifier
from probe.notify.templates import TemplatedSpec, render_json

__all__ = ["ChatWebhookNotifier", "ChatWebhookSpec"]


class ChatWebhookSpec(TemplatedSpec):
    """A notifier posting to a webhook URL; `target()` shows only the URL's host."""

    kind: ClassVar[str] = ""

    webhook: SecretStr

    @field_validator("webhook")
    @classmethod
    def _webhook_url(cls, value: SecretStr) -> SecretStr:
        return SecretStr(check_http_url(value.get_secret_value(), what="webhook"))

    def target(self) -> str:
        return f"{self.kind} webhook on {public_url(self.webhook.get_secret_value())}"


ChatSpecT = TypeVar("ChatSpecT", bound=ChatWebhookSpec)


class ChatWebhookNotifier(Notifier[ChatSpecT]):
    """Renders the kind's JSON template, fits it to the service, and posts it."""

    # The service as named in delivery errors ("Slack answered 400: invalid_blocks").
    service: ClassVar[str]

    def render(self, notification: Notification) -> Any:
        payload = render_json(
            self.context.templates,
            self.format,
            notification.event,
            notification,
            override=self.spec.override(notification.event),
        )
        return self.fit(payload)

    def fit(self, payload: Any) -> Any:
        """The rendered payload as the service accepts it (its limits, keys of its own).
        Overrides happen after rendering, so they are held to the limits too."""
        return payload

    async def send(self, payload: Any) -> None:
        url = self.spec.webhook.get_secret_value()
        await post_json(
            self.context.http,
            url,
            payload,
            service=self.service,
            timeout=self.timeout,
            secrets=self.secrets(url),
            describe=self.describe_failure,
        )

    def secrets(self, url: str) -> list[str]:
        """What to mask should the service echo it in an error: the URL itself."""
        return [url]

    def describe_failure(self, response: httpx.Response) -> str:
        """The service's own words for a failed request."""
        return error_text(response)
