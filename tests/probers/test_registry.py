"""Each prober's name in the config leads to its prober class and spec."""

from __future__ import annotations

import pytest

from probe.probers import CLIENT_DRIVERS, SECTIONS, load_prober_class
from probe.probers.etcd import EtcdProber, EtcdSpec
from probe.probers.grpc import GRPCProber, GRPCSpec
from probe.probers.http import HTTPProber, HTTPSpec
from probe.probers.influxdb import InfluxDBProber, InfluxDBSpec
from probe.probers.kafka import KafkaProber, KafkaSpec
from probe.probers.memcache import MemcacheProber, MemcacheSpec
from probe.probers.mongo import MongoProber, MongoSpec
from probe.probers.mqtt import MQTTProber, MQTTSpec
from probe.probers.mysql import MySQLProber, MySQLSpec
from probe.probers.ping import PingProber, PingSpec
from probe.probers.postgres import PostgresProber, PostgresSpec
from probe.probers.push import PushProber, PushSpec
from probe.probers.redis import RedisProber, RedisSpec
from probe.probers.shell import ShellProber, ShellSpec
from probe.probers.tcp import TCPProber, TCPSpec
from probe.probers.tls import TLSProber, TLSSpec
from probe.probers.zookeeper import ZooKeeperProber, ZooKeeperSpec

# Config sections (http, tcp, shell, tls, ping, grpc, ...), then the `driver:` names of client
# sections.
SECTION_PROBERS = [
    ("http", HTTPProber, HTTPSpec),
    ("tcp", TCPProber, TCPSpec),
    ("shell", ShellProber, ShellSpec),
    ("tls", TLSProber, TLSSpec),
    ("ping", PingProber, PingSpec),
    ("grpc", GRPCProber, GRPCSpec),
    ("push", PushProber, PushSpec),
]
DRIVER_PROBERS = [
    ("mysql", MySQLProber, MySQLSpec),
    ("postgres", PostgresProber, PostgresSpec),
    ("redis", RedisProber, RedisSpec),
    ("mqtt", MQTTProber, MQTTSpec),
    ("etcd", EtcdProber, EtcdSpec),
    ("influxdb", InfluxDBProber, InfluxDBSpec),
    ("zookeeper", ZooKeeperProber, ZooKeeperSpec),
    ("memcache", MemcacheProber, MemcacheSpec),
    ("mongo", MongoProber, MongoSpec),
    ("kafka", KafkaProber, KafkaSpec),
]


@pytest.mark.parametrize(
    ("registry", "name", "prober", "spec"),
    [(SECTIONS, *row) for row in SECTION_PROBERS]
    + [(CLIENT_DRIVERS, *row) for row in DRIVER_PROBERS],
    ids=[row[0] for row in SECTION_PROBERS + DRIVER_PROBERS],
)
def test_registry_points_at_the_prober(registry, name, prober, spec):
    assert load_prober_class(registry[name]) is prober
    assert prober.spec_type is spec
    assert spec.kind == name
