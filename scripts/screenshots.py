"""The README's screenshots of the status page: 11, 100 and 1,000 probes, light and dark, a phone.

Run:  .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--days 90]

A fleet with 90 days of history (tests/support/fleet.py) goes into a temporary store; the
real web server serves its page on loopback and Debian's headless Chromium takes the
pictures at 1280x900 (the whole page for 11 probes, the first screen for 100 and 1,000, and a
390x844 phone), so they show the page exactly as the code draws it today. The 1,000 probes'
history has one check every 6 hours (a finer one takes minutes to write).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.browser import browser
from tests.support.fleet import served_fleet

TITLE = "Example Corp status"
SHOTS = [
    # (probes, file, width, height, dark, whole page, fragment)
    (11, "status-11-light.png", 1280, 900, False, True, ""),
    (11, "status-11-dark.png", 1280, 900, True, True, ""),
    (100, "status-100-light.png", 1280, 900, False, False, ""),
    (100, "status-100-dark.png", 1280, 900, True, False, "#w-24h"),
    (100, "status-100-phone.png", 390, 844, False, False, ""),
    (1000, "status-1000-light.png", 1280, 900, False, False, ""),
]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        async with contextlib.AsyncExitStack() as stack:
            urls = {}
            for count in sorted({shot[0] for shot in SHOTS}):
                step = 1800.0 if count <= 100 else 21600.0  # 1,000 x 90 days: every 6 h
                fleet = served_fleet(
                    Path(tmp), count, now=now, days=args.days, step=step, title=TITLE
                )
                urls[count] = (await stack.enter_async_context(fleet)).url
            chrome = await stack.enter_async_context(browser())
            for count, name, width, height, dark, whole, fragment in SHOTS:
                await chrome.open(urls[count] + fragment, width=width, height=height, dark=dark)
                # One probe's details open, as a reader would click it.
                await chrome.js("document.querySelector('details.probe summary').click()")
                await chrome.screenshot(args.out / name, full_page=whole)
                page_height = await chrome.js("document.documentElement.scrollHeight")
                print(f"{name}: {count} probes, page {page_height} px high at {width} px wide")


if __name__ == "__main__":
    asyncio.run(main())
