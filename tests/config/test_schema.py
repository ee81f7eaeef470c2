"""`probe schema`: the config's JSON Schema, checked with a real validator (jsonschema).

Besides these tests, every config any test loads with the real probers is validated against
the schema too (tests/support/schema.py, an autouse fixture in tests/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from probe.assembly import load_config
from probe.assembly.schema import config_schema
from probe.config.source import Source
from probe.config.yaml_reader import Converter, YAMLLoader
from tests.support.schema import schema_errors

ROOT = Path(__file__).resolve().parents[2]


def parse(text: str) -> Any:
    """A document parsed as the loader parses it (YAML 1.2 scalars), without validation."""
    path = Path("/nonexistent")  # only used for messages
    src = Source(str(path))
    node = yaml.compose(text, Loader=YAMLLoader)
    return Converter(src).convert(node, ())


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(config_schema())


def test_the_example_config_validates() -> None:
    text = (ROOT / "probes.example.yaml").read_text()
    assert schema_errors(parse(text)) == []


@pytest.mark.slow
def test_probe_schema_prints_the_schema_as_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "probe", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # no config needed, none read
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == config_schema()


GOOD = """
version: 1
x-common: &common {interval: 30s, timeout: 5s}
settings:
  name: shop
  probe: {interval: 1m, alert: {strategy: exponent, factor: 2, max: 5}}
  log: {level: fatal, self_rotate: true}
  timeformat: x
http:
  - name: web
    url: http://127.0.0.1:8080/health
    <<: *common
    password_file: /run/secrets/web
    username: u
    labels: {critical: true, tier: 1}
    timeout:
tcp:
  - {name: port, host: "127.0.0.1:22"}
client:
  - {name: db, driver: PostgreS, host: "127.0.0.1:5432", username: postgres}
  - {name: cache, driver: redis, host: "127.0.0.1:6379", password_file: /run/secrets/r}
notify:
  slack:
    - {name: ops, webhook_file: /run/secrets/slack}
  webhook:
    - {name: hook, url: "http://127.0.0.1:9/x"}
"""


def test_a_config_using_what_the_loader_adds_to_the_models_validates() -> None:
    document = parse(GOOD)
    # The merge key is the loader's; `<<` is already resolved in the parsed document.
    assert schema_errors(document) == []


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("http:\n  - {name: a, url: u, timout: 5s}\n", "http.0", "timout"),
        ("http:\n  - {name: a, url: u, timeout: 5}\n", "http.0.timeout", "5"),
        ("tcp:\n  - {host: '127.0.0.1:1'}\n", "tcp.0", "'name' is a required property"),
        ("nosuch:\n  - {name: a}\n", "(top)", "nosuch"),
        ("client:\n  - {name: a, driver: docdb, host: 'h:1'}\n", "client.0.driver", "docdb"),
        (
            "client:\n  - {name: a, driver: redis, host: 'h:1', password: x, password_file: f}\n",
            "client.0",
            "",
        ),
        ("notify:\n  wecom:\n    - {name: a}\n", "notify", "wecom"),
        ("settings:\n  probe: {interval: fast}\n", "settings", ""),
    ],
)
def test_what_the_loader_refuses_the_schema_refuses(text: str, where: str, what: str) -> None:
    errors = schema_errors(parse(text))
    assert errors, f"the schema accepted {text!r}"
    assert any(e.startswith(f"{where}: ") and what in e for e in errors), errors


@pytest.mark.parametrize("word", ["yes", "No", "ON", "off", "y", "T", "1", 0, 1.0])
def test_booleans_take_what_the_loader_takes(tmp_path: Path, word: object) -> None:
    # Found by tests/config/test_fuzz.py: `enabled: yes` loads (pydantic reads it, as Go's
    # yaml.v3 does for EaseProbe) and the schema refused it.
    path = tmp_path / "probes.yaml"
    text = f"tcp:\n  - {{name: a, host: '127.0.0.1:9', enabled: {word}}}\n"
    path.write_text(text)
    load_config(path, environ={})  # the autouse fixture checks the schema agrees
    assert schema_errors(parse(text)) == []


@pytest.mark.parametrize("word", ["maybe", "2", 2, "' yes'"])
def test_booleans_refuse_what_the_loader_refuses(word: object) -> None:
    text = f"tcp:\n  - {{name: a, host: '127.0.0.1:9', enabled: {word}}}\n"
    assert schema_errors(parse(text)) != []
