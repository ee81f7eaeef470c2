"""Registry of prober kinds: config section (or `client` driver) -> "module:Class".

Modules are imported only when a config uses them, so a config with only HTTP probes never
imports a database driver. A new kind is one module and one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probe.probers.base import Prober

__all__ = [
    "CLIENT_DRIVERS",
    "SECTIONS",
    "UNSUPPORTED_DRIVERS",
    "UNSUPPORTED_SECTIONS",
    "load_prober_class",
    "target_for_kind",
]

# Top-level config sections holding a list of probes of one kind.
SECTIONS: dict[str, str] = {
    "http": "probe.probers.http:HTTPProber",
    "tcp": "probe.probers.tcp:TCPProber",
    "tls": "probe.probers.tls:TLSProber",
    "shell": "probe.probers.shell:ShellProber",
    "ping": "probe.probers.ping:PingProber",
    "dns": "probe.probers.dns:DNSProber",
    "websocket": "probe.probers.websocket:WebSocketProber",
    "ssh": "probe.probers.ssh:SSHProber",
    "host": "probe.probers.host:HostProber",
    "grpc": "probe.probers.grpc:GRPCProber",
    # Not checked by probe: jobs call /api/v1/push/TOKEN (probe/push.py times the silences).
    "push": "probe.probers.push:PushProber",
}

# `client:` entries, chosen by their `driver:` key. The kind of such a probe is its driver.
CLIENT_DRIVERS: dict[str, str] = {
    "mysql": "probe.probers.mysql:MySQLProber",
    "postgres": "probe.probers.postgres:PostgresProber",
    "redis": "probe.probers.redis:RedisProber",
    "influxdb": "probe.probers.influxdb:InfluxDBProber",
    "etcd": "probe.probers.etcd:EtcdProber",
    "mqtt": "probe.probers.mqtt:MQTTProber",
    "zookeeper": "probe.probers.zookeeper:ZooKeeperProber",
    "memcache": "probe.probers.memcache:MemcacheProber",
    "mongo": "probe.probers.mongo:MongoProber",
    "kafka": "probe.probers.kafka:KafkaProber",
}

# EaseProbe `client:` drivers we do not support: an error naming the driver. Every driver
# EaseProbe has is supported now; the map stays for the next one it adds.
UNSUPPORTED_DRIVERS: dict[str, str] = {}

# EaseProbe sections we do not support (yet): an error naming them, never a silent skip.
# Every section EaseProbe has is supported now; the map stays for the next one it adds.
UNSUPPORTED_SECTIONS: dict[str, str] = {}


def load_prober_class(target: str) -> type[Prober[Any]]:
    """Import "module:Class" and return the class."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Prober[Any]] = getattr(module, attr)
    return cls


def target_for_kind(kind: str) -> str:
    """The "module:Class" of a probe kind (a section name, or a `client` driver)."""
    target = SECTIONS.get(kind) or CLIENT_DRIVERS.get(kind)
    if target is None:
        raise KeyError(f"unknown probe kind {kind!r}")
    return target
