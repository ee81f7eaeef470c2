"""Reaching the real services the tests use (README: Development).

Each service is found through an environment variable with a loopback default. A test whose
service does not answer is skipped with the reason, unless PROBE_TEST_REQUIRE_SERVICES=1 (set
by .ci/run), where it fails instead: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

__all__ = ["DEFAULTS", "require_service", "service_url", "services_required"]

DEFAULTS = {
    "postgres": ("PROBE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": ("PROBE_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test"),
    "redis": ("PROBE_TEST_REDIS", "redis://127.0.0.1:6379/0"),
    "mqtt": ("PROBE_TEST_MQTT", "mqtt://127.0.0.1:1883"),
    "etcd": ("PROBE_TEST_ETCD", "http://127.0.0.1:2379"),
    "influxdb": ("PROBE_TEST_INFLUXDB", "http://127.0.0.1:8086"),
}


def services_required() -> bool:
    return os.environ.get("PROBE_TEST_REQUIRE_SERVICES") == "1"


def service_url(name: str) -> str:
    variable, default = DEFAULTS[name]
    return os.environ.get(variable) or default


def require_service(name: str, *, timeout: float = 1.0) -> str:
    """The service's URL if its port answers; otherwise skip (or fail in CI)."""
    url = service_url(name)
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port
    if port is None:
        raise ValueError(f"{name}: no port in {url}")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = (
            f"{name} not reachable at {host}:{port} ({exc.strerror or exc}); `make services` "
            f"starts it where it is installed, or point {DEFAULTS[name][0]} at one"
        )
        if services_required():
            pytest.fail(reason + " and PROBE_TEST_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(reason)
    return url
