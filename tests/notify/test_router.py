"""Routing by channel: the default channel, shared channels, one message per notifier, SLA
reports; and the same through the dispatcher to real webhook servers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from probe.notify.dispatch import Dispatcher
from probe.notify.metrics import NotifyMetrics
from probe.notify.router import DEFAULT_CHANNEL, Router, effective_channels
from tests.notify.webhook_server import WebhookServer, notification, webhook_notifier

URL = "http://127.0.0.1:9/hook"


def names(notifiers) -> list[str]:
    return [n.name for n in notifiers]


def test_either_side_without_channels_is_on_the_default_channel() -> None:
    assert effective_channels([]) == {DEFAULT_CHANNEL}
    assert effective_channels(["ops", "ops"]) == {"ops"}


async def test_route_by_shared_channel(client) -> None:
    notifiers = [
        webhook_notifier(client, "default", URL),
        webhook_notifier(client, "ops", URL, channels=["ops"]),
        webhook_notifier(client, "ops-and-db", URL, channels=["db", "ops"]),
        webhook_notifier(client, "explicit-default", URL, channels=[DEFAULT_CHANNEL, "db"]),
    ]
    router = Router(notifiers)
    assert names(router.route([])) == ["default", "explicit-default"]
    assert names(router.route(["ops"])) == ["ops", "ops-and-db"]
    assert names(router.route(["db"])) == ["ops-and-db", "explicit-default"]
    # A notifier sharing several channels with the probe is chosen once, in config order.
    assert names(router.route(["ops", "db", "ops"])) == ["ops", "ops-and-db", "explicit-default"]
    assert router.route(["nobody"]) == []


async def test_sla_reports_go_to_the_sla_channels(client) -> None:
    notifiers = [
        webhook_notifier(client, "default", URL),
        webhook_notifier(client, "reports", URL, channels=["reports"]),
    ]
    assert names(Router(notifiers).for_sla()) == ["default"]
    assert names(Router(notifiers, sla_channels=["reports"]).for_sla()) == ["reports"]


async def test_dispatch_sends_one_message_per_notifier_however_many_channels_match(
    client, web_server
) -> None:
    servers = {name: WebhookServer() for name in ("a", "b", "c")}
    for server in servers.values():
        await server.start(web_server)
    notifiers = [
        webhook_notifier(client, "a", servers["a"].base + "/a", channels=["ops", "db"]),
        webhook_notifier(client, "b", servers["b"].base + "/b", channels=["db"]),
        webhook_notifier(client, "c", servers["c"].base + "/c"),  # default channel only
    ]
    metrics = NotifyMetrics(CollectorRegistry())
    dispatcher = Dispatcher(notifiers, metrics=metrics)
    await dispatcher.start()
    assert dispatcher.notify(notification(probe="db1"), ["ops", "db"]) == 2
    assert dispatcher.notify(notification(probe="plain"), []) == 1
    await dispatcher.drain()
    await dispatcher.stop()
    assert [h.json["probe"] for h in servers["a"].hits] == ["db1"]
    assert [h.json["probe"] for h in servers["b"].hits] == ["db1"]
    assert [h.json["probe"] for h in servers["c"].hits] == ["plain"]


async def test_sla_report_through_the_dispatcher(client, web_server) -> None:
    ops, reports = WebhookServer(), WebhookServer()
    await ops.start(web_server)
    await reports.start(web_server)
    notifiers = [
        webhook_notifier(client, "ops", ops.base + "/x"),
        webhook_notifier(client, "reports", reports.base + "/x", channels=["reports"]),
    ]
    dispatcher = Dispatcher(
        notifiers, sla_channels=["reports"], metrics=NotifyMetrics(CollectorRegistry())
    )
    await dispatcher.start()
    report = notification("sla", probe=None, report={"window": "day", "rows": []})
    assert dispatcher.notify_sla(report) == 1
    await dispatcher.drain()
    await dispatcher.stop()
    assert ops.hits == []
    assert [h.json["event"] for h in reports.hits] == ["sla"]
