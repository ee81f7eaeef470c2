"""Text a remote service chooses (an error reply, a body) reaches people only as printable
text: no terminal escapes, no line breaks, whatever prober or path produced the Result."""

from __future__ import annotations

import asyncio

from probe.core.scheduler import run_check
from probe.probers.redis import RedisProber, RedisSpec

# Clear screen, set the terminal title, ring the bell, a C1 CSI, a forged log line.
HOSTILE = "\x1b[2J\x1b]0;pwned\x07boom\x9b31m\r\nINFO forged line"


def assert_clean(text: str) -> None:
    assert all(ch.isprintable() for ch in text), repr(text)


async def test_a_servers_error_reply_reaches_the_result_without_controls(raw_server, resources):
    async def fake_redis(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        writer.write(f"-ERR {HOSTILE}\r\n".replace("\r\nINFO", " INFO").encode("utf-8"))
        await writer.drain()
        await reader.read(1000)

    server = await raw_server(fake_redis)
    spec = RedisSpec.model_validate(
        {"name": "cache", "driver": "redis", "host": server.address, "timeout": "5s"}
    )
    result = (await run_check(RedisProber(spec, resources))).result
    assert result.status.value == "down"
    assert "boom" in result.message
    assert_clean(result.message)
    for value in result.details.values():
        if isinstance(value, str):
            assert_clean(value)


def test_a_result_keeps_no_control_characters_in_message_or_details() -> None:
    from datetime import UTC, datetime

    from probe.core.result import Result, Status

    result = Result(
        name="p",
        kind="http",
        endpoint="http://127.0.0.1/",
        status=Status.DOWN,
        latency=None,
        message=HOSTILE,
        time=datetime.now(UTC),
        details={"body": HOSTILE, "names": [HOSTILE], "nested": {"x": HOSTILE}, "code": 500},
    )
    assert result.message == "?[2J?]0;pwned?boom?31m  INFO forged line"
    assert result.details["body"] == result.message
    assert result.details["names"] == [result.message]
    assert result.details["nested"] == {"x": result.message}
    assert result.details["code"] == 500
