"""The status page's colours, read from its template, meet WCAG 2 contrast in light and dark
mode: text 4.5:1 (AA), the coloured bars and badges 3:1 against what they sit on."""

from __future__ import annotations

import re

import pytest

from probe.shipped_templates import template_root

CSS = template_root().joinpath("status", "page.html.j2").read_text(encoding="utf-8")


def palette(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([a-z]+):(#[0-9a-fA-F]{6})\b", block))


def modes() -> dict[str, dict[str, str]]:
    light = re.search(r"^:root\{([^}]*)\}", CSS, re.M)
    dark = re.search(r"prefers-color-scheme:dark\)\{:root\{([^}]*)\}", CSS)
    assert light and dark, "the template's colour variables moved"
    base = palette(light.group(1))
    return {"light": base, "dark": {**base, **palette(dark.group(1))}}


def luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# (foreground, background, minimum): the pairs the CSS uses.
TEXT = [("on", bg, 4.5) for bg in ("ok", "warn", "bad", "unk")] + [  # banner, status badges
    (fg, bg, 4.5) for fg in ("fg", "mut", "ok", "warn", "bad") for bg in ("bg", "card")
]
GRAPHICS = [(bar, "card", 3.0) for bar in ("ok", "warn", "bad")]  # 90-day bars, chart line


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize(("fg", "bg", "minimum"), TEXT + GRAPHICS)
def test_contrast(mode: str, fg: str, bg: str, minimum: float) -> None:
    colours = modes()[mode]
    ratio = contrast(colours[fg], colours[bg])
    assert ratio >= minimum, f"{mode}: --{fg} on --{bg} is {ratio:.2f}:1, under {minimum}:1"
