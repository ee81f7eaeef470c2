"""settings.log takes every record of the process: one line each, no control characters, no
secrets. The end-to-end test runs `probe run` and attacks its web server; the others set the
logging up in this process (and put back what pytest had) and log through real loggers."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from probe.assembly import load_config
from probe.logs import REDACTED, redact, register_secrets, secret_values, setup_logging
from tests.support.cli import spawn_probe


async def _wait_for_line(path: Path, text: str, timeout: float = 30.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if text in line:
                    return line
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {text!r} in {path} within {timeout}s")


async def _send(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(64), 10)  # the status line is enough
    writer.close()
    await writer.wait_closed()
    return reply


@pytest.mark.slow
async def test_probe_run_logs_a_malformed_request_in_its_file_redacted_and_on_one_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "p.yaml").write_text(
        "settings:\n"
        "  log: {file: logs/probe.log, format: json}\n"
        "  http: {port: 0, token: tok-s3cr3t-api}\n"
        "tcp:\n"
        "  - {name: c, host: '127.0.0.1:1', interval: 1s, timeout: 1s}\n"
    )
    log_file = tmp_path / "logs" / "probe.log"
    proc = await spawn_probe("run", "-c", "p.yaml", cwd=tmp_path)
    try:
        serving = json.loads(await _wait_for_line(log_file, "serving http://"))
        port = int(serving["message"].split(":")[2].split("/")[0])
        await _wait_for_line(log_file, "probing 1 endpoint")
        # A header aiohttp's parser rejects, the whole header line quoted in its error.
        bad_header = await _send(
            port,
            b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cr3t\x01\r\n\r\n",
        )
        assert bad_header.startswith(b"HTTP/1.0 400")
        # A target with a terminal escape (set red) in it.
        await _send(port, b"GET /\x1b[31mred HTTP/1.1\r\nAuthorization: Bearer s3cr3t\r\n\r\n")
        # The configured token, sent as a query value (refused: not how the API takes it).
        await _send(port, b"GET /api/v1/status?token=tok-s3cr3t-api HTTP/1.1\r\nHost: x\r\n\r\n")
        await _wait_for_line(log_file, "Invalid char in url path")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert err == b"" and out == b""
    raw = log_file.read_bytes()
    assert b"s3cr3t" not in raw and b"\x1b" not in raw
    lines = raw.decode().splitlines()
    events = [json.loads(line) for line in lines]  # every line one whole JSON object
    assert events[-1]["message"] == "stopped"
    errors = [e for e in events if e["logger"] == "aiohttp.server"]
    assert len(errors) == 2 and all(e["level"] == "error" for e in errors)
    assert "BadHttpMessage" in errors[0]["error"]
    assert f"Authorization: {REDACTED}" in errors[0]["error"]
    assert errors[0]["error"].startswith("Traceback (most recent call last):\n")


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """`logged(level, fmt)` sets up logging to out.log in tmp_path (read with `_lines`);
    afterwards pytest's handlers, levels and hooks are as they were."""
    root = logging.getLogger()
    ours = logging.getLogger("probe")
    saved = (
        list(root.handlers),
        root.level,
        ours.level,
        ours.propagate,
        logging.lastResort,
        sys.unraisablehook,
        threading.excepthook,
    )
    path = tmp_path / "out.log"

    def setup(level: str = "info", fmt: str = "text") -> None:
        setup_logging(level, path, fmt)

    yield setup
    for handler in root.handlers:
        if handler not in saved[0]:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved[1])
    ours.setLevel(saved[2])
    ours.propagate = saved[3]
    logging.lastResort = saved[4]
    sys.unraisablehook = saved[5]
    threading.excepthook = saved[6]
    logging.captureWarnings(False)


def _lines(tmp_path: Path) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return (tmp_path / "out.log").read_text(encoding="utf-8").splitlines()


def _boom() -> BaseException:
    try:
        raise ValueError("bad \x1b]0;owned\x07 value\nsecond line")
    except ValueError as exc:
        return exc


def test_text_lines_fold_tracebacks_and_escape_control_characters(
    logged: Callable[..., None], tmp_path: Path
) -> None:
    logged("info", "text")
    log = logging.getLogger("probe.test")
    log.error("reply: %s", "\x1b[2J\x1b[31mred\rhidden\nforged 2026 INFO line", exc_info=_boom())
    (line,) = _lines(tmp_path)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in line)
    assert "ERROR   probe.test: reply: ?[2J?[31mred hidden forged 2026 INFO line | " in line
    assert "Traceback (most recent call last): | File " in line
    assert line.endswith("ValueError: bad ?]0;owned? value | second line")


def test_json_lines_keep_the_traceback_lines_in_one_field(
    logged: Callable[..., None], tmp_path: Path
) -> None:
    logged("info", "json")
    logging.getLogger("probe.test").warning("a \x9b31m b", exc_info=_boom())
    (line,) = _lines(tmp_path)
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "probe.test"
    assert entry["message"] == "a ?31m b"
    error = entry["error"].splitlines()
    assert error[0] == "Traceback (most recent call last):"
    assert error[-2:] == ["ValueError: bad ?]0;owned? value", "second line"]
    assert "\x1b" not in entry["error"] and "\x07" not in entry["error"]


def test_every_logger_goes_through_the_handler_foreign_ones_from_warning(
    logged: Callable[..., None], tmp_path: Path
) -> None:
    logged("debug", "text")
    logging.getLogger("probe.x").debug("ours at debug")
    logging.getLogger("httpx").info("HTTP Request: GET https://example.test/ 200")
    logging.getLogger("aiohttp.server").error("Error handling request", exc_info=_boom())
    # A logger with propagation off and no handler of its own used logging.lastResort:
    # stderr, unformatted.
    hidden = logging.getLogger("test.unpropagated")
    hidden.propagate = False
    try:
        hidden.warning("tgram://123456:AAbbccdd@x/chat refused")
    finally:
        hidden.propagate = True
    lines = _lines(tmp_path)
    assert len(lines) == 3, lines
    assert "DEBUG   probe.x: ours at debug" in lines[0]
    assert "ERROR   aiohttp.server: Error handling request | Traceback" in lines[1]
    assert "WARNING test.unpropagated: tgram://***@x/chat refused" in lines[2]


async def test_asyncio_warnings_threads_and_unraisable_errors_are_logged(
    logged: Callable[..., None], tmp_path: Path
) -> None:
    logged("info", "json")
    loop = asyncio.get_running_loop()
    # What asyncio does for "Task exception was never retrieved" and unclosed sessions.
    loop.default_exception_handler(
        {"message": "Task exception was never retrieved", "exception": _boom()}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("token=abcdef1234 in a warning", UserWarning, stacklevel=1)

    def fail() -> None:
        raise RuntimeError("in a thread")

    thread = threading.Thread(target=fail, name="worker")
    thread.start()
    thread.join()

    class Bad:
        def __del__(self) -> None:
            raise RuntimeError("in __del__")

    Bad()
    gc.collect()
    entries = [json.loads(line) for line in _lines(tmp_path)]

    def logged_by(logger: str, text: str) -> bool:
        return any(
            e["logger"] == logger and text in e["message"] + e.get("error", "") for e in entries
        )

    assert logged_by("asyncio", "Task exception was never retrieved")
    assert logged_by("asyncio", "ValueError: bad")
    assert logged_by("py.warnings", "token=*** in a warning")
    assert logged_by("py.threading", "RuntimeError: in a thread")
    assert logged_by("py.unraisable", "RuntimeError: in __del__")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Authorization: Bearer abc.def", f"Authorization: {REDACTED}"),
        (
            "{'Proxy-Authorization': 'Basic dXNlcjpwYXNz', 'Host': 'x'}",
            "{'Proxy-Authorization': ***",
        ),
        ("sent with bearer eyJhbGciOi.x.y, then", f"sent with bearer {REDACTED}, then"),
        ("GET /x?a=1&token=t0k3n&b=2", f"GET /x?a=1&token={REDACTED}&b=2"),
        ("host=db password=hunter22 user=u", f"host=db password={REDACTED} user=u"),
        ("access_token=zzz client_secret=yyy", f"access_token={REDACTED} client_secret={REDACTED}"),
        ("postgres://app:p@ss@db:5432/x", f"postgres://{REDACTED}@db:5432/x"),
        ("https://TOKEN@github.com/x", f"https://{REDACTED}@github.com/x"),
        ("see https://example.com/a@b", "see https://example.com/a@b"),
        ("Authorization header missing", "Authorization header missing"),
    ],
)
def test_credential_shaped_text_is_redacted(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_the_configs_secrets_are_registered_in_every_form(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "settings:\n"
        "  http: {token: api-Tok-4711, username: u, password: 'pa ss/w@rd'}\n"
        "http:\n"
        "  - name: site\n"
        "    url: https://127.0.0.1/\n"
        "    headers: {Authorization: 'Bearer hdr-Tok-0815', Accept: text/plain}\n"
        "    password: probe-Pass-1\n"
        "    username: someone\n"
        "notify:\n"
        "  slack:\n"
        "    - name: team\n"
        "      webhook: https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX\n"
        "  telegram:\n"
        "    - {name: tg, token: '123456:AAtelegramTokenTelegramToken0123456789', chat_id: '42'}\n"
    )
    config = load_config(tmp_path / "p.yaml")
    found = set(secret_values(config))
    assert {
        "api-Tok-4711",
        "pa ss/w@rd",
        "Bearer hdr-Tok-0815",
        "probe-Pass-1",
        "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX",
        "123456:AAtelegramTokenTelegramToken0123456789",
    } <= found
    assert "text/plain" not in found and "someone" not in found
    register_secrets(found)
    message = (
        "GET /services/T000/B000/XXXXsecretXXXX failed; api-Tok-4711, pa%20ss%2Fw%40rd,"
        " pa+ss%2Fw%40rd, hdr-Tok-0815, probe-Pass-1,"
        " bot123456:AAtelegramTokenTelegramToken0123456789/send"
    )
    assert redact(message) == "GET *** failed; ***, ***, ***, ***, ***, bot***/send"


def test_secrets_too_short_to_be_secrets_are_not_registered() -> None:
    register_secrets(["up", "abc", None, ""])
    assert redact("db: down -> up (abc)") == "db: down -> up (abc)"
