"""No input, however broken, gives anything but a Config or a ConfigError (never a traceback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.config import Config, load_config
from probe.errors import ConfigError
from tests.config.specs import KINDS

FUZZ = settings(
    deadline=None, max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

KEYS = [
    "http", "tcp", "notify", "settings", "ssh", "x-a", "name", "url", "host", "interval",
    "timeout", "failure", "success", "enabled", "labels", "channels", "alert", "strategy",
    "factor", "max", "headers", "password", "password_file", "auth", "username", "ca",
    "success_code", "probe", "sla", "log", "store", "path", "time", "timeformat", "proxy",
    "slack", "webhook", "token_file",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["10s", "3 sec", "${A}", "${NOPE}", "$$", "${", "h:1", "25:00", "..", "/"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=30,
)
TOKENS = st.sampled_from(
    [
        "http:", "tcp:", "settings:", "notify:", "- ", "  ", "\n", "\t", "name: a", "url: u",
        "host: h:1", "timeout: 1s", "&a ", "*a", "<<: ", "? ", ": ", "[", "]", "{", "}", ",",
        "'", '"', "#", "---", "...", "!!int ", "!foo ", "%YAML 1.2", "|", ">", "${A}", "\x00",
        "\ufeff", "é", "probe:", "interval: 5s", "password_file: /", "*b",
    ]
)  # fmt: skip


def check(path: Path, data: str | bytes) -> None:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8", errors="surrogatepass")
    try:
        cfg = load_config(path, environ={"A": "1"}, **KINDS)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            line = str(problem)
            assert line.startswith(str(path)) and "\n" not in line
            assert (problem.line is None) == (problem.column is None)
    else:
        assert isinstance(cfg, Config)


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "probes.yaml"


@FUZZ
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200))
def test_random_text(path: Path, text: str) -> None:
    check(path, text)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(path: Path, data: bytes) -> None:
    check(path, data)


@FUZZ
@given(st.lists(TOKENS, max_size=40))
def test_yaml_token_soup(path: Path, tokens: list[str]) -> None:
    check(path, "".join(tokens))


@FUZZ
@given(VALUES)
@pytest.mark.slow
def test_random_structures(path: Path, value: Any) -> None:
    check(path, yaml.safe_dump(value, allow_unicode=True))


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["http", "tcp", "settings", "notify"]),
        st.one_of(st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)), VALUES),
        max_size=4,
    )
)
@pytest.mark.slow
def test_random_sections(path: Path, value: Any) -> None:
    check(path, yaml.safe_dump(value, allow_unicode=True))
