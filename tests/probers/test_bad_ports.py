"""Ports out of range: a config error at load, located, never an error at run time; and no
internal exception text (ExceptionGroup, TaskGroup, class names) in a check's message."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import httpx
import pytest

from probe.assembly import load_config
from probe.core.scheduler import run_check
from probe.errors import ConfigError
from probe.probers._net import first_error, plain_error
from probe.probers.http import HTTPProber, HTTPSpec
from tests.support import probers as scenarios

INTERNALS = ("ExceptionGroup", "TaskGroup", "OverflowError", "Error:", "Exception")


def load_errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "probes.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("port", ["99999", "0", "65536"])
def test_http_url_port_out_of_range_is_a_located_config_error(tmp_path, port):
    errors = load_errors(
        tmp_path,
        f"""\
        http:
          - name: web
            url: http://127.0.0.1:{port}/
        """,
    )
    assert errors == [
        f"{tmp_path / 'probes.yaml'}:3:10: http[0].url: "
        f"the http URL's port {port} is not in 1-65535"
    ]


@pytest.mark.parametrize(
    ("section", "entry"),
    [
        ("tcp", "{name: t, host: '127.0.0.1:99999'}"),
        ("tls", "{name: t, host: '127.0.0.1:0'}"),
        ("client", "{name: c, driver: redis, host: '127.0.0.1:70000'}"),
    ],
)
def test_host_port_out_of_range_is_a_located_config_error(tmp_path, section, entry):
    (error,) = load_errors(tmp_path, f"{section}:\n  - {entry}\n")
    assert f"{section}[0].host: " in error
    assert "is not in 1-65535" in error
    assert error.startswith(f"{tmp_path / 'probes.yaml'}:2:")


def test_proxy_port_out_of_range_is_a_config_error():
    message = scenarios.config_error_messages(
        HTTPSpec, name="w", url="http://127.0.0.1/", proxy="http://127.0.0.1:123456"
    )
    assert "port 123456 is not in 1-65535" in message


async def test_redirect_to_a_port_out_of_range_says_so_in_plain_words(raw_server, resources):
    async def away(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:99999/\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()

    server = await raw_server(away)
    spec = HTTPSpec(name="w", url=f"http://{server.address}/", timeout="5s")
    result = (await run_check(HTTPProber(spec, resources))).result
    assert result.status.value == "down"
    assert result.message == "connect failed: connect(): port must be 0-65535."
    assert not any(word in result.message for word in INTERNALS), result.message


def test_exception_groups_unwrap_to_their_first_real_error():
    inner = ValueError("the real cause")
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ExceptionGroup("x", [inner])])
    assert first_error(group) is inner
    assert plain_error(group) == "the real cause"
    assert plain_error(httpx.ReadError("")) == "read error"
