"""The status page at 100 and 1,000 probes, as a person sees it in a real browser: one
compact row per probe, details opened in place, the uptime window picked by a link, groups
folded, dark mode, a phone's width, and the static file the same. Debian's headless
Chromium lays the page out (tests/support/browser.py); the page itself runs no script, the
test's script only reads the layout and clicks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from probe.web.render import write_status_files
from tests.support.browser import Browser, browser
from tests.support.fleet import ServedFleet, is_degraded, is_down, served_fleet

# One fleet and one browser for the module (each test only reads and clicks): filling the
# store and starting Chromium are most of the time these tests take.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

WIDTH, HEIGHT = 1280, 900
NOW = time.time()


@contextlib.asynccontextmanager
async def serve(folder: Path, count: int, *, days: int = 3) -> AsyncIterator[ServedFleet]:
    async with served_fleet(folder, count, now=NOW, days=days, step=3600.0) as served:
        yield served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet100(tmp_path_factory) -> AsyncIterator[ServedFleet]:
    async with serve(tmp_path_factory.mktemp("fleet"), 100) as served:
        yield served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chrome() -> AsyncIterator[Browser]:
    async with browser() as session:
        yield session


# What the tests read of the laid-out page (visible: has a box on screen).
ROWS = "[...document.querySelectorAll('details.probe')]"
# (A closed <details> keeps its content laid out but hidden: checkVisibility knows.)
VISIBLE = "(e => e.checkVisibility())"


async def shown_uptime(chrome: Browser, index: int = 0) -> str:
    """The uptime figure row `index` shows (one of four is displayed)."""
    return str(
        await chrome.js(
            f"[...{ROWS}[{index}].querySelectorAll('summary .u')]"
            f".filter({VISIBLE}).map(e => e.textContent).join('|')"
        )
    )


async def test_100_probes_fit_three_screens_one_row_each(fleet100, chrome):
    await chrome.open(fleet100.url, width=WIDTH, height=HEIGHT)
    assert await chrome.js(f"{ROWS}.length") == 100
    height = await chrome.js("document.documentElement.scrollHeight")
    assert height <= 3.1 * HEIGHT, f"100 probes take {height} px: over three screens"
    rows = await chrome.js(f"{ROWS}.map(d => d.querySelector('summary').offsetHeight)")
    assert max(rows) <= 26, f"a row is {max(rows)} px high"
    # Nothing wider than the window, long names cut with an ellipsis instead.
    assert await chrome.js("document.documentElement.scrollWidth") <= WIDTH
    # Down probes first, then degraded, across groups: the page's top is what needs eyes.
    statuses = await chrome.js(f"{ROWS}.map(d => d.dataset.status)")
    down = sum(1 for i in range(100) if is_down(i))
    degraded = sum(1 for i in range(100) if is_degraded(i))
    first_group = await chrome.js(
        "[...document.querySelector('details.grp').querySelectorAll('details.probe')]"
        ".map(d => d.dataset.status)"
    )
    assert first_group[0] == "down"
    assert statuses.count("down") == down and statuses.count("degraded") == degraded
    for group_statuses in await chrome.js(
        "[...document.querySelectorAll('details.grp')].map(g =>"
        " [...g.querySelectorAll('details.probe')].map(d => d.dataset.status))"
    ):
        order = {"down": 0, "degraded": 1, "unknown": 2, "up": 3}
        ranks = [order[s] for s in group_statuses]
        assert ranks == sorted(ranks)


async def test_details_open_in_place(fleet100, chrome):
    await chrome.open(fleet100.url, width=WIDTH, height=HEIGHT)
    more = f"{ROWS}[0].querySelector('.more')"
    assert await chrome.js(f"{VISIBLE}({more})") is False
    before = await chrome.js("document.documentElement.scrollHeight")
    await chrome.js(f"{ROWS}[0].querySelector('summary').click()")
    assert await chrome.js(f"{VISIBLE}({more})") is True
    text = await chrome.js(f"{more}.innerText")
    assert "Response time, 24h" in text and "Recent incidents" in text
    assert "connection refused" in text  # the first row is down: its message
    assert "ongoing" in text
    for window in ("24h", "7d", "30d", "90d"):
        assert f"Uptime {window}" in text
    assert await chrome.js(f"{VISIBLE}({more}.querySelector('svg'))") is True
    assert await chrome.js("document.documentElement.scrollHeight") > before
    # The same click closes it.
    await chrome.js(f"{ROWS}[0].querySelector('summary').click()")
    assert await chrome.js(f"{VISIBLE}({more})") is False


async def test_window_selector_links(fleet100, chrome):
    await chrome.open(fleet100.url, width=WIDTH, height=HEIGHT)
    figures = await chrome.js(
        f"Object.fromEntries([...{ROWS}[0].querySelectorAll('summary .u')]"
        ".map(e => [e.dataset.window, e.textContent]))"
    )
    assert set(figures) == {"24h", "7d", "30d", "90d"}
    assert await shown_uptime(chrome) == figures["30d"]  # the default window
    header = "[...document.querySelectorAll('.cols .u')].filter(" + VISIBLE + ")[0].textContent"
    assert await chrome.js(header) == "Uptime 30d"
    for window in ("24h", "7d", "90d", "30d"):
        await chrome.js(f"document.querySelector('.windows a[href=\"#w-{window}\"]').click()")
        assert await shown_uptime(chrome) == figures[window]
        assert await chrome.js(header) == f"Uptime {window}"
        weight = await chrome.js(
            f"getComputedStyle(document.querySelector('.windows a[href=\"#w-{window}\"]'))"
            ".fontWeight"
        )
        assert weight == "700"  # the chosen window stands out
    # A link to the page with a window chosen opens with it (and a refresh keeps it).
    await chrome.open(fleet100.url + "#w-7d", width=WIDTH, height=HEIGHT)
    assert await shown_uptime(chrome) == figures["7d"]


async def test_groups_fold(fleet100, chrome):
    await chrome.open(fleet100.url, width=WIDTH, height=HEIGHT)
    group = "document.querySelector('details.grp')"
    heading = await chrome.js(f"{group}.querySelector('summary').innerText")
    assert "probes" in heading and "down" in heading
    shown = await chrome.js(f"{ROWS}.filter({VISIBLE}).length")
    await chrome.js(f"{group}.querySelector('summary').click()")
    inside = await chrome.js(f"{group}.querySelectorAll('details.probe').length")
    assert await chrome.js(f"{ROWS}.filter({VISIBLE}).length") == shown - inside


async def test_dark_mode(fleet100, chrome):
    colours = {}
    for dark in (False, True):
        await chrome.open(fleet100.url, width=WIDTH, height=HEIGHT, dark=dark)
        colours[dark] = await chrome.js(
            "[getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.body).color]"
        )
    assert colours[False] == ["rgb(255, 255, 255)", "rgb(26, 26, 26)"]
    assert colours[True] == ["rgb(13, 17, 23)", "rgb(230, 237, 243)"]


async def test_phone_layout(fleet100, chrome):
    await chrome.open(fleet100.url, width=390, height=844)
    assert await chrome.js("document.documentElement.scrollWidth") <= 390
    # The 90-day bar gets a line of its own under the status, name and uptime.
    first = f"{ROWS}[0]"
    name_box = await chrome.js(f"{first}.querySelector('.name').getBoundingClientRect().bottom")
    bar_box = await chrome.js(f"{first}.querySelector('.days').getBoundingClientRect().toJSON()")
    assert bar_box["top"] >= name_box and bar_box["width"] > 250
    assert await shown_uptime(chrome) != ""


async def test_static_file_is_the_same_page(fleet100, chrome, tmp_path):
    target = tmp_path / "site" / "status.html"
    target.parent.mkdir()
    files = await write_status_files(fleet100.page, target)
    assert files == [target]
    await chrome.open(target.as_uri(), width=WIDTH, height=HEIGHT)
    assert await chrome.js(f"{ROWS}.length") == 100
    assert await chrome.js("document.querySelector('form')") is None  # no server to ask
    await chrome.js(f"{ROWS}[0].querySelector('summary').click()")
    assert await chrome.js(f"{VISIBLE}({ROWS}[0].querySelector('.more'))") is True
    await chrome.js("document.querySelector('.windows a[href=\"#w-24h\"]').click()")
    figure = await chrome.js(f"{ROWS}[0].querySelector('summary .u-24h').textContent")
    assert await shown_uptime(chrome) == figure
    served = await chrome.js(f"{ROWS}.map(d => d.dataset.name)")
    await chrome.open(fleet100.url, width=WIDTH, height=HEIGHT)
    assert await chrome.js(f"{ROWS}.map(d => d.dataset.name)") == served


async def test_1000_probes_page_and_filter(tmp_path, chrome):
    async with serve(tmp_path, 1000, days=1) as served:
        await chrome.open(served.url, width=WIDTH, height=HEIGHT)
        assert await chrome.js(f"{ROWS}.length") == 100  # a page at a time
        meta = await chrome.js("document.querySelector('.meta').innerText")
        assert "showing 100 of 1000 matching" in meta and "page 1 of 10" in meta
        assert await chrome.js("document.documentElement.scrollHeight") <= 3.1 * HEIGHT
        # The filter form, as a person uses it: only the down probes, on one page.
        await chrome.js("document.querySelector('select[name=status]').value = 'down'")
        await chrome.follow("document.querySelector('form').requestSubmit()")
        statuses = await chrome.js(f"{ROWS}.map(d => d.dataset.status)")
        assert statuses and set(statuses) == {"down"}
        assert len(statuses) == sum(1 for i in range(1000) if is_down(i))
        assert "status=down" in await chrome.js("location.search")
        # Next page link keeps working past the first hundred.
        await chrome.open(served.url + "?pg=10", width=WIDTH, height=HEIGHT)
        assert await chrome.js(f"{ROWS}.length") == 100
        assert await chrome.js("document.querySelector('a[rel=prev]') !== null")
