"""What the MQTT prober and the MQTT notifier share: the protocol's defaults and codes, how a
client id is made, and the two places that reach inside aiomqtt.

A neutral module: `probe.probers.mqtt` and `probe.notify.mqtt` both import it, and it imports
neither (docs/ARCHITECTURE.md). Only those two import it, and each only for a config that uses
MQTT, so aiomqtt is still imported only then.
"""

from __future__ import annotations

import contextlib
import re
import secrets

import aiomqtt
import paho.mqtt.client as paho_mqtt

__all__ = [
    "BAD_CREDENTIALS",
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "DISCONNECT_WAIT",
    "NOT_AUTHORISED",
    "NOT_IN_TOPIC",
    "SCHEMES",
    "V3_RETURN_CODES",
    "client_id",
    "force_close",
    "paho_client",
]

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883

# URL schemes of a broker address and whether they mean TLS.
SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True, "tls": True}
# What a topic to publish to cannot hold: the wildcards and NUL.
NOT_IN_TOPIC = re.compile(r"[+#\x00]")
# How long a normal end may take to send DISCONNECT before the socket is simply closed.
DISCONNECT_WAIT = 0.5

# CONNACK reason codes (MQTT 5 numbering; paho maps the 3.1.1 return codes 1-5 onto 132-136).
BAD_CREDENTIALS = 134
NOT_AUTHORISED = 135
# MQTT 3.1.1 CONNACK return codes, should paho ever hand them over as plain ints.
V3_RETURN_CODES = {1: 132, 2: 133, 3: 136, 4: BAD_CREDENTIALS, 5: NOT_AUTHORISED}

_CLIENT_ID_CHARS = re.compile(r"[^0-9A-Za-z_-]+")


def client_id(prefix: str, name: str, fallback: str) -> str:
    """`<prefix>-<name>-<8 random hex digits>`: new for every session (a broker allows one
    session per client id), the name cut to 32 characters any broker accepts (`fallback`
    when none is left)."""
    shown = _CLIENT_ID_CHARS.sub("-", name).strip("-")[:32] or fallback
    return f"{prefix}-{shown}-{secrets.token_hex(4)}"


def paho_client(client: aiomqtt.Client) -> paho_mqtt.Client:
    """The paho client under aiomqtt's (aiomqtt has no public accessor)."""
    return client._client


def force_close(client: aiomqtt.Client) -> None:
    """Close the socket now, without sending anything or waiting (idempotent).

    paho's `_sock_close()` also tells aiomqtt, which stops watching the socket and its
    housekeeping task. Only for a client no connect thread runs for any more.
    """
    with contextlib.suppress(Exception):
        paho_client(client)._sock_close()
