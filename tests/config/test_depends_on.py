"""`depends_on:`: names of probes in the same file, no probe its own dependency, no cycles;
every mistake a located config error."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.assembly import load_config
from probe.errors import ConfigError


def load(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "probes.yaml"
    path.write_text(text)
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        return [str(problem).replace(f"{path}:", "") for problem in exc.problems]
    return []


def test_dependencies_across_sections_load(tmp_path: Path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "tcp:\n"
        "  - {name: router, host: '127.0.0.1:1'}\n"
        "http:\n"
        "  - {name: api, url: 'http://127.0.0.1:1/', depends_on: [router, db]}\n"
        "client:\n"
        "  - {name: db, driver: redis, host: '127.0.0.1:1', depends_on: [router]}\n"
    )
    config = load_config(path, environ={})
    assert {spec.name: spec.depends_on for spec in config.probes} == {
        "router": [],
        "api": ["router", "db"],
        "db": ["router"],
    }


@pytest.mark.parametrize(
    ("probes", "expected"),
    [
        (
            "  - {name: a, host: 'h:1', depends_on: [routr]}\n  - {name: router, host: 'h:1'}\n",
            ['3:41: tcp[0].depends_on[0]: no probe is named "routr" (did you mean "router"?)'],
        ),
        (
            "  - {name: a, host: 'h:1', depends_on: [a]}\n",
            ["3:5: tcp[0]: depends_on: a probe cannot depend on itself"],
        ),
        (
            "  - {name: a, host: 'h:1', depends_on: [b, b]}\n  - {name: b, host: 'h:1'}\n",
            ['3:40: tcp[0].depends_on: "b" is listed twice'],
        ),
        (
            "  - {name: a, host: 'h:1', depends_on: [c]}\n"
            "  - {name: b, host: 'h:1', depends_on: [a]}\n"
            "  - {name: c, host: 'h:1', depends_on: [b]}\n",
            ['3:40: tcp[0].depends_on: a cycle of dependencies: "a" -> "c" -> "b" -> "a"'],
        ),
        (
            "  - {name: a, host: 'h:1', depends_on: ''}\n",
            ["3:40: tcp[0].depends_on: expected a list"],
        ),
    ],
)
def test_mistakes_are_located(tmp_path: Path, probes: str, expected: list[str]):
    problems = load(tmp_path, "# dependencies\ntcp:\n" + probes)
    assert len(problems) == len(expected), problems
    for problem, wanted in zip(problems, expected, strict=True):
        assert problem.startswith(wanted), problem


def test_a_dependency_on_an_entry_with_errors_is_not_unknown(tmp_path: Path):
    problems = load(
        tmp_path,
        "tcp:\n  - {name: a, host: 'h:1', depends_on: [b]}\n  - {name: b, host: 'no port'}\n",
    )
    assert len(problems) == 1
    assert "tcp[1].host" in problems[0]
