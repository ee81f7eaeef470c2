"""Debian's headless Chromium, driven over the DevTools protocol (a WebSocket, aiohttp's
client): open a page at a window size, in light or dark mode, read what the browser laid out
(`js`), click, and take screenshots. The status page itself runs no script; the tests' script
only reads the layout and clicks as a person would.

Skipped when /usr/bin/chromium is missing, unless PROBE_TEST_REQUIRE_SERVICES=1 (CI), where
that is a failure (tests/support/services.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.services import services_required

CHROMIUM = Path(os.environ.get("PROBE_TEST_CHROMIUM", "/usr/bin/chromium"))
START_TIMEOUT = 30.0
# Headless, and quiet: none of Chromium's own calls home (updates, sync, autofill look-ups
# for the page's filter form, network time, translation): nothing may leave loopback.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-features=AutofillServerCommunication,NetworkTimeServiceQuerying,"
    "OptimizationHints,Translate,MediaRouter,CertificateTransparencyComponentUpdater",
    "--no-first-run",
    "--no-default-browser-check",
    # And whatever Chromium still asks for on its own (update and time checks come anyway)
    # cannot leave: no name resolves, and anything not on loopback goes to a closed port.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
)
CALL_TIMEOUT = 30.0


def chromium() -> Path:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        reason = f"chromium not found at {CHROMIUM} (`make services` as root installs it)"
        if services_required():
            pytest.fail(reason + " (PROBE_TEST_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    return CHROMIUM


class Browser:
    """One headless Chromium with one page (tab)."""

    def __init__(self, proc: asyncio.subprocess.Process, profile: Path) -> None:
        self._proc = proc
        self._profile = profile
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def _connect(self) -> None:
        port_file = self._profile / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not port_file.exists() or not port_file.read_text().strip():
            if self._proc.returncode is not None or loop.time() > deadline:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            targets = await answer.json()
        page = next(t for t in targets if t["type"] == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        await self.call("Page.enable")

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                for future in self._events.pop(data.get("method", ""), []):
                    if not future.done():
                        future.set_result(data.get("params", {}))

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._ws is not None
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        await self._ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, CALL_TIMEOUT)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def _event(self, method: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._events.setdefault(method, []).append(future)
        return future

    async def open(
        self, url: str, *, width: int = 1280, height: int = 900, dark: bool = False
    ) -> None:
        """Load `url` in a window of width x height CSS pixels (a phone's touch screen
        when narrower than 600), with `prefers-color-scheme` light or dark."""
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        scheme = "dark" if dark else "light"
        await self.call(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )
        # From a blank page: a URL that differs from the current one by its fragment alone
        # would only scroll, and never fire a load.
        for address in ("about:blank", url):
            loaded = self._event("Page.loadEventFired")
            await self.call("Page.navigate", url=address)
            await asyncio.wait_for(loaded, CALL_TIMEOUT)

    async def js(self, expression: str) -> Any:
        """The value of a script expression in the page (JSON-able)."""
        answer = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression[:80]}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def follow(self, expression: str) -> None:
        """Run `expression` (a click, a form's submit) and wait for the page it loads."""
        loaded = self._event("Page.loadEventFired")
        await self.js(expression)
        await asyncio.wait_for(loaded, CALL_TIMEOUT)

    async def screenshot(self, path: Path, *, full_page: bool = False) -> None:
        """A PNG of the window, or of the whole page's height."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = await self.js(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        shot = await self.call("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(shot["data"]))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self._proc.returncode is None:
            self._proc.kill()
        await self._proc.wait()


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium for the block, in a profile of its own, closed after."""
    profile = Path(tempfile.mkdtemp(prefix="probe-chromium."))
    proc = await asyncio.create_subprocess_exec(
        str(chromium()),
        *CHROMIUM_FLAGS,
        "--hide-scrollbars",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    session = Browser(proc, profile)
    try:
        await session._connect()
        yield session
    finally:
        await session.close()
        shutil.rmtree(profile, ignore_errors=True)
