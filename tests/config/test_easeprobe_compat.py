"""EaseProbe compatibility, key by key (issue 9).

`EASEPROBE` below is one config in EaseProbe's layout that sets every key EaseProbe's Manual and
its resources/config.yaml document for the sections we support: the probe kinds http, tcp, tls,
shell and client (drivers mysql, postgres, redis), the notifiers slack, discord, telegram, teams,
email, log, shell and http, and settings. It is loaded through the real registries, as `probe run`
loads a file, and must load. Each key either works or gives exactly one warning, and the warnings
are pinned here: a key that starts working drops out of `IGNORED`, a key that becomes an error
fails the load. Every entry of `IGNORED` is a deliberate "accepted, not acted on" (the README
lists them).

What we do not have (the wecom, dingtalk, lark, sms, aws_sns, ringcentral and infoflow notifiers,
syslog delivery) is an error naming it, never a silent skip: see the second half.

Every address is loopback; nothing here sends traffic anywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from probe.assembly import load_config
from probe.config import Config
from probe.errors import ConfigError

ACCEPTED = "accepted for EaseProbe compatibility; not used"

# The EaseProbe keys we accept and deliberately do not act on, by key path, in file order.
IGNORED = [
    "version",
    "tcp[0].proxy",
    "tls[0].proxy",
    "notify.log[1].host",
    "notify.log[1].network",
    "settings.pid",
    "settings.http.log.age",
    "settings.http.log.compress",
    "settings.sla.data",
    "settings.sla.backups",
    "settings.log.self_rotate",
    "settings.log.size",
    "settings.log.age",
    "settings.log.backups",
    "settings.log.compress",
    "settings.timeformat",
]

EASEPROBE = """\
version: v1.5.0

http:
  - name: Special Website
    url: http://127.0.0.1:8080/health
    proxy: http://127.0.0.1:3128
    method: POST
    headers:
      User-Agent: Customized User-Agent
      X-head-one: xxxxxx
    content_encoding: text/json
    body: '{ "FirstName": "Mega", "LastName" : "Ease" }'
    username: username
    password: password
    ca: {ca}
    cert: {cert}
    key: {key}
    insecure: true
    success_code:
      - [200,206]
      - [300,308]
    contain: "success"
    not_contain: "failure"
    regex: false
    eval:
      doc: XML
      expression: "x_time('//feed/updated') > '2022-07-01'"
      variables:
        - name: updated
          type: time
          query: "//feed/updated"
    nolinger: true
    with_output: true
    timeout: 10s
    interval: 2m
    failure: 2
    success: 1
    channels: [Dev_Channel, Manager_Channel]
    labels:
      team: web
      tier: 1
      critical: true
    alert:
      strategy: increment
      factor: 2
      max: 5

tcp:
  - name: SSH Service
    host: 127.0.0.1:22
    timeout: 10s
    interval: 2m
    proxy: socks5://127.0.0.1:1080
    nolinger: true
    failure: 2
    success: 1

tls:
  - name: expired test
    host: 127.0.0.1:8443
    proxy: socks5://127.0.0.1:1080
    insecure_skip_verify: true
    expire_skip_verify: true
    alert_expire_before: 168h
    root_ca_pem_path: {ca}
    nolinger: true
  - name: untrust test
    host: 127.0.0.1:9443
    root_ca_pem: |
{ca_pem}

shell:
  - name: Redis (Local)
    cmd: "redis-cli"
    args:
      - "-h"
      - "127.0.0.1"
      - "ping"
    clean_env: true
    env:
      - "REDISCLI_AUTH=abc123"
    contain: "PONG"
    not_contain: "failure"
    regex: false
    with_output: true
    channels: [Ops_Channel]

client:
  - name: Redis Native Client (local)
    driver: "redis"
    host: "127.0.0.1:6379"
    password: "abc123"
    data:
      key: val
    ca: {ca}
    cert: {cert}
    key: {key}
  - name: MySQL Native Client (local)
    driver: "mysql"
    host: "127.0.0.1:3306"
    username: "root"
    password: "pass"
    data:
      "test:product:name:id:1": "EaseProbe"
      "test:employee:age:id:2": 45
    ca: {ca}
    cert: {cert}
    key: {key}
    insecure: false
  - name: PostgreSQL Native Client (local)
    driver: "postgres"
    host: "127.0.0.1:5432"
    username: "postgres"
    password: "pass"
    timeout: 5s
    data:
      "test:product:name:id:1": "EaseProbe"
      "test:employee:age:id:2": 45
    ca: {ca}
    cert: {cert}
    key: {key}

notify:
  slack:
    - name: "MegaEase#Alert"
      webhook: "http://127.0.0.1:9/services/xxx"
      dry: true
      timeout: 20s
      retry:
        times: 3
        interval: 10s
      channels: [Dev_Channel]
  discord:
    - name: "Server #Alert"
      webhook: "http://127.0.0.1:9/api/webhooks/xxx"
      avatar: "http://127.0.0.1:9/avatar.png"
      thumbnail: "http://127.0.0.1:9/thumbnail.png"
      retry:
        times: 3
        interval: 10s
  telegram:
    - name: "Group Name"
      token: 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1
      chat_id: -123456789
  teams:
    - name: "teams alert service"
      webhook: "http://127.0.0.1:9/webhook/xxx"
  email:
    - name: "XXX Mail List"
      server: 127.0.0.1:465
      username: user@example.com
      password: secret
      to: "user1@example.com;user2@example.com"
      from: "from@example.com"
      channels: [Mgmt_Channel]
  log:
    - name: "Local Log"
      file: {notify_log}
      dry: true
    - name: Remote syslog
      file: {notify_log}
      host: 127.0.0.1:514
      network: udp
  shell:
    - name: "shell alert service"
      cmd: "/bin/bash"
      args:
        - "-c"
        - "/path/to/script.sh"
      clean_env: true
      env:
        - "EASEPROBE=1"
        - "KEY=Value"
  http:
    - name: "http alert service"
      url: "http://127.0.0.1:9/notify"
      success_status: 200
      headers:
        - name: Authorization
          value: Bearer abc123

settings:
  name: "EaseProbe"
  icon: "http://127.0.0.1:9/icon.png"
  pid: {pid}
  http:
    ip: 127.0.0.1
    port: 8181
    refresh: 5s
    log:
      file: {access_log}
      self_rotate: true
      size: 10
      age: 7
      backups: 5
      compress: true
  sla:
    schedule: "daily"
    time: "23:59"
    debug: false
    data: {sla_data}
    backups: 5
    channels: [Mgmt_Channel]
  notify:
    dry: true
    retry:
      times: 5
      interval: 10s
  probe:
    timeout: 30s
    interval: 1m
    failure: 2
    success: 1
    alert:
      strategy: "regular"
      factor: 1
      max: 5
  log:
    file: {app_log}
    level: "debug"
    self_rotate: true
    size: 10
    age: 7
    backups: 5
    compress: true
  timeformat: "2006-01-02 15:04:05 Z07:00"
  timezone: "America/New_York"
"""


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    root = tmp_path_factory.mktemp("tls")
    paths = {"ca": root / "ca.pem", "cert": root / "client.crt", "key": root / "client.key"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return paths


def _write(tmp_path: Path, tls_files: dict[str, Path], text: str = EASEPROBE) -> Path:
    ca_pem = tls_files["ca"].read_text(encoding="ascii").strip().splitlines()
    values = {
        **{name: str(path) for name, path in tls_files.items()},
        "ca_pem": "\n".join("      " + line for line in ca_pem),
        "notify_log": str(tmp_path / "notify.log"),
        "pid": str(tmp_path / "easeprobe.pid"),
        "access_log": str(tmp_path / "access.log"),
        "sla_data": str(tmp_path / "data" / "data.yaml"),
        "app_log": str(tmp_path / "easeprobe.log"),
    }
    # str.format would need every YAML brace doubled; the placeholders are plain words.
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def loaded(tmp_path: Path, tls_files: dict[str, Path]) -> Config:
    return load_config(_write(tmp_path, tls_files))


def test_every_easeprobe_key_loads(loaded: Config) -> None:
    assert [p.name for p in loaded.probes] == [
        "Special Website",
        "SSH Service",
        "expired test",
        "untrust test",
        "Redis (Local)",
        "Redis Native Client (local)",
        "MySQL Native Client (local)",
        "PostgreSQL Native Client (local)",
    ]
    assert [p.kind for p in loaded.probes] == [
        "http",
        "tcp",
        "tls",
        "tls",
        "shell",
        "redis",
        "mysql",
        "postgres",
    ]
    assert [(n.kind, n.name) for n in loaded.notifiers] == [
        ("slack", "MegaEase#Alert"),
        ("discord", "Server #Alert"),
        ("telegram", "Group Name"),
        ("teams", "teams alert service"),
        ("email", "XXX Mail List"),
        ("log", "Local Log"),
        ("log", "Remote syslog"),
        ("shell", "shell alert service"),
        ("http", "http alert service"),
    ]


def test_only_the_deliberately_ignored_keys_warn(loaded: Config) -> None:
    assert [w.path for w in loaded.warnings] == IGNORED
    assert {w.message for w in loaded.warnings} == {ACCEPTED}


def test_sla_debug_sends_a_report_every_minute(tmp_path: Path, tls_files: dict[str, Path]) -> None:
    # EaseProbe's `debug: true`: the SLA report every minute, whatever the schedule says.
    text = EASEPROBE.replace("    debug: false\n", "    debug: true\n")
    assert load_config(_write(tmp_path, tls_files, text)).settings.sla.schedule == "minutely"


# What we do not have: (a config, the key path of its error, words the error must contain).
UNSUPPORTED = [
    *(
        (
            f"notify:\n  {kind}:\n    - name: x\n      webhook: http://127.0.0.1:9/\n",
            f"notify.{kind}",
            [f"EaseProbe's {kind} notifier", "not supported"],
        )
        for kind in ("wecom", "dingtalk", "lark", "sms", "aws_sns", "ringcentral", "infoflow")
    ),
    (
        "notify:\n  log:\n    - name: x\n      file: syslog\n      host: 127.0.0.1:514\n",
        "notify.log[0].file",
        ["syslog is not supported"],
    ),
]


@pytest.mark.parametrize(("text", "where", "words"), UNSUPPORTED)
def test_what_we_do_not_have_is_an_error_naming_it(
    tmp_path: Path, text: str, where: str, words: list[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = [p for p in info.value.problems if p.path == where]
    assert len(problems) == 1, [str(p) for p in info.value.problems]
    assert all(word in problems[0].message for word in words), problems[0].message
