"""End to end with the real prober specs, through the default (lazy) registry."""

from __future__ import annotations

import pytest

from probe.assembly import load_config
from probe.errors import ConfigError
from tests.config.conftest import ConfigFiles

http = pytest.importorskip("probe.probers.http")
tcp = pytest.importorskip("probe.probers.tcp")

TEXT = """\
settings:
  probe: {interval: 20s, timeout: 5s}
http:
  - name: web
    url: http://127.0.0.1:8080/health
    method: post
    headers: {Host: shop.example}
    username: admin
    password_file: secrets/web
    eval: {doc: json, expression: "x_str('/status') == 'ok'"}
tcp:
  - name: db
    host: 127.0.0.1:5432
    proxy: socks5://127.0.0.1:1080
    timeout: 1m
    enabled: false
"""


def test_easeprobe_style_file_loads(files: ConfigFiles) -> None:
    files.write("pa55\n", name="secrets/web")
    cfg = load_config(files.write(TEXT), environ={})
    web, db = cfg.probes
    assert isinstance(web, http.HTTPSpec) and isinstance(db, tcp.TCPSpec)
    assert (web.kind, db.kind) == ("http", "tcp")
    assert web.method == "POST"
    assert web.headers == {"Host": "shop.example"}
    assert web.password is not None and web.password.get_secret_value() == "pa55"
    assert (web.interval, web.timeout) == (20.0, 5.0)
    assert (db.interval, db.timeout, db.enabled) == (20.0, 20.0, False)
    assert [p.name for p in cfg.enabled_probes] == ["web"]
    assert web.eval is not None and web.eval.doc == "json"  # acted on, no warning
    assert [files.short(str(w)) for w in cfg.warnings] == [
        "probes.yaml:14:5: tcp[0].proxy: accepted for EaseProbe compatibility; not used",
        "probes.yaml:15:14: tcp[0].timeout: timeout 1m0s is longer than the interval 20s; "
        "using 20s",
    ]


def test_real_spec_errors_are_located(files: ConfigFiles) -> None:
    text = (
        "http:\n"
        "  - name: web\n"
        "    url: http://127.0.0.1:8080/\n"
        "    contian: ok\n"
        "  - name: web2\n"
        "    url: 3\n"
        "tcp:\n"
        "  - name: db\n"
        "    hots: 127.0.0.1:5432\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(files.write(text), environ={})
    lines = [files.short(str(p)) for p in info.value.problems]
    assert (
        lines[0]
        == 'probes.yaml:4:5: http[0].contian: unknown key "contian" (did you mean "contain"?)'
    )
    assert lines[1].startswith("probes.yaml:6:10: http[1].url: ")
    assert lines[2:] == [
        "probes.yaml:8:5: tcp[0].host: missing required key",
        'probes.yaml:9:5: tcp[0].hots: unknown key "hots" (did you mean "host"?)',
    ]
