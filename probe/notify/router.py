"""Routing by channel: which notifiers hear about a probe, and which get the SLA reports.

Probes and notifiers list `channels`; either side without any is on the default channel (as in
EaseProbe). A notifier gets a probe's events when they share at least one channel, and gets
each event once however many channels they share: routing only filters, it never multiplies
(the README's channels). SLA reports go to `settings.sla.channels`, the default channel when
that list is empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from probe.notify.base import Notifier

__all__ = ["DEFAULT_CHANNEL", "Router", "effective_channels"]

# EaseProbe's name for it, so that a file naming the default channel explicitly still works.
DEFAULT_CHANNEL = "__default_channel__"


def effective_channels(channels: Iterable[str]) -> frozenset[str]:
    """The channels a probe or notifier is on: its own, or the default channel."""
    own = frozenset(channels)
    return own or frozenset({DEFAULT_CHANNEL})


class Router:
    """Maps a probe's channels to the notifiers to tell, in config order, each at most once."""

    def __init__(self, notifiers: Sequence[Notifier[Any]], *, sla_channels: Sequence[str] = ()):
        self._notifiers = [(n, effective_channels(n.spec.channels)) for n in notifiers]
        self._sla = self.route(sla_channels)

    @property
    def notifiers(self) -> list[Notifier[Any]]:
        return [n for n, _ in self._notifiers]

    def route(self, channels: Iterable[str]) -> list[Notifier[Any]]:
        """The notifiers sharing a channel with `channels` (the default one when empty)."""
        wanted = effective_channels(channels)
        return [n for n, theirs in self._notifiers if not wanted.isdisjoint(theirs)]

    def for_sla(self) -> list[Notifier[Any]]:
        """The notifiers that get SLA reports."""
        return list(self._sla)
