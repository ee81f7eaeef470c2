"""Notifications: kinds of notifier, routing by channel, the durable dispatcher.

Registry of notifier kinds: the key under `notify:` -> "module:Class", imported only when a
config uses that kind (apprise and aiomqtt stay unimported otherwise).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probe.notify.base import Notifier

__all__ = ["ALIASES", "NOTIFIERS", "UNSUPPORTED_NOTIFIERS", "load_notifier_class"]

NOTIFIERS: dict[str, str] = {
    "slack": "probe.notify.slack:SlackNotifier",
    "telegram": "probe.notify.telegram:TelegramNotifier",
    "discord": "probe.notify.discord:DiscordNotifier",
    "teams": "probe.notify.teams:TeamsNotifier",
    "email": "probe.notify.email:EmailNotifier",
    "http": "probe.notify.webhook:WebhookNotifier",
    "mqtt": "probe.notify.mqtt:MQTTNotifier",
    "log": "probe.notify.log:LogNotifier",
    "shell": "probe.notify.shell:ShellNotifier",
    "apprise": "probe.notify.apprise:AppriseNotifier",
}

# Other names users write for a kind: `webhook` is the generic HTTP notifier (EaseProbe: http).
ALIASES: dict[str, str] = {"webhook": "http"}

# EaseProbe notifier kinds we do not support: an error naming them (and what reaches the
# service instead), never a silent skip.
UNSUPPORTED_NOTIFIERS: dict[str, str] = {
    "wecom": "EaseProbe's wecom notifier is not supported; use apprise with a wecombot:// URL",
    "dingtalk": "EaseProbe's dingtalk notifier is not supported; use apprise (dingtalk://)",
    "lark": "EaseProbe's lark notifier is not supported; use apprise with a lark:// URL",
    "aws_sns": "EaseProbe's aws_sns notifier is not supported; use apprise with an sns:// URL",
    "sms": "EaseProbe's sms notifier is not supported; use apprise (twilio://, vonage://, ...)",
    "ringcentral": "EaseProbe's ringcentral notifier is not supported",
    "infoflow": "EaseProbe's infoflow notifier is not supported",
}


def load_notifier_class(kind: str) -> type[Notifier[Any]]:
    target = NOTIFIERS[ALIASES.get(kind, kind)]
    module_name, _, attr = target.partition(":")
    cls: type[Notifier[Any]] = getattr(importlib.import_module(module_name), attr)
    return cls
