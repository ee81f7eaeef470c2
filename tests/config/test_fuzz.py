"""No input, however broken, gives anything but a Config or a located ConfigError (never a
traceback, never a hang), and whatever loads can be started.

Three families of properties:

- random text, bytes, YAML token soup and random structures, loaded with the loader's test
  kinds (tests/config/specs.py);
- mutations of every config the tests hold (probes.example.yaml and each YAML string in
  tests/, collected from their source: `CORPUS`), loaded with the real registries as
  `probe check` loads them;
- for each of those that loads: every constructor `probe run` uses at start (store, probers,
  notifiers, the web app) succeeds or fails with the project's own errors, and none of them
  touches the network (the scheduler is never started, nothing is checked or sent).

A problem is "located" when it names the file and a line/column or a key path; the only
problems about the whole file are those in `WHOLE_FILE`.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import copy
import itertools
import math
import os
import re
import socket
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from probe import assembly
from probe.alerting import policy_for
from probe.app import notify_client, notify_context, open_store, status_source
from probe.config import Config, load_config
from probe.errors import ConfigError, StartupError, StoreError
from probe.notify import ALIASES, NOTIFIERS, load_notifier_class
from probe.probers import CLIENT_DRIVERS, SECTIONS, load_prober_class
from probe.probers.base import SharedResources
from probe.web.server import create_app
from tests.config.specs import KINDS

# A pathological slowdown (a regex gone quadratic, an alias bomb let through) fails the
# example; a load takes milliseconds. The fixtures are module-scoped: nothing in them is
# reset between examples that a test relies on (each writes its own file first).
# Under CI (CI=true) the examples are the same each run: a case found by chance must not turn
# the CI of an unrelated change red. Every other run explores anew, and a failure prints the
# example to keep as a regression test (as tests/config/test_loader.py's boolean cases).
FUZZ = settings(
    deadline=2000,
    max_examples=200,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=os.environ.get("CI") == "true",
)

ROOT = Path(__file__).resolve().parents[2]
ENV = {"A": "1", "HOME": "/nonexistent", "TOKEN": "t0ken", "PORT": "8080", "EMPTY": ""}

# Problems about the whole file rather than a place in it (no line, no key path).
WHOLE_FILE = ("empty config", "cannot read config", "the config is larger than")

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


# -- the corpus: every config the tests hold

# One probe of every kind and one notifier of every kind, on loopback ports nothing listens
# on: the tests' own configs use few notifier kinds, and a mutation can only keep what is there.
EVERY_KIND = """\
settings:
  name: every kind
  probe: {interval: 30s, timeout: 5s}
  http: {ip: 127.0.0.1, port: 0, token: t0ken, username: u, password: p}
  sla: {schedule: daily, time: "23:59", channels: [ops]}
http:
  - {name: web, url: "http://127.0.0.1:9/", contain: ok, channels: [ops], labels: {tier: 1}}
tcp:
  - {name: port, host: "127.0.0.1:9", conditions: ["[RESPONSE_TIME] < 500"]}
tls:
  - {name: cert, host: "127.0.0.1:9", server_name: localhost}
shell:
  - {name: sh, cmd: sh, args: ["-c", "true"]}
ping:
  - {name: pg1, host: 127.0.0.1, count: 2, lost: 0.5, privileged: true}
dns:
  - {name: ns, query: www.example.com, server: "127.0.0.1:9", answers: {contain: [10.0.0.1]}}
websocket:
  - {name: ws, url: "ws://127.0.0.1:9/", headers: {Authorization: t0ken}, send: hi, contain: hi}
ssh:
  bastion:
    jump: {host: "u@127.0.0.1:9", password: p, insecure: true}
  servers:
    - {name: ssh, host: "127.0.0.1:9", username: u, password: p, cmd: "true", bastion: jump}
host:
  servers:
    - {name: box, host: "u@127.0.0.1:9", password: p, threshold: {cpu: 0.9}, disks: [/]}
grpc:
  - {name: rpc, host: "127.0.0.1:9", service: app, metadata: {authorization: Bearer t0ken}}
push:
  - {name: backup, token: "Zq3vT8kLm2Xw9RbN", interval: 24h, grace: 1h}
client:
  - {name: pg, driver: postgres, host: "127.0.0.1:9", username: u, password: p}
  - {name: my, driver: mysql, host: "127.0.0.1:9", username: u}
  - {name: rd, driver: redis, host: "127.0.0.1:9"}
  - {name: mq, driver: mqtt, host: "127.0.0.1:9"}
  - {name: et, driver: etcd, host: "127.0.0.1:9"}
  - {name: ix, driver: influxdb, host: "127.0.0.1:9"}
  - {name: zk, driver: zookeeper, host: "127.0.0.1:9", data: {/a/b: ok}}
  - {name: mc, driver: memcache, host: "127.0.0.1:9", data: {"app:mode": active}}
  - {name: mg, driver: mongo, host: "127.0.0.1:9", data: {"shop:orders": '{"state": "open"}'}}
  - {name: kf, driver: kafka, host: "127.0.0.1:9", topics: [orders], username: u, password: p}
notify:
  log: [{name: log, file: notifications.log, channels: [ops]}]
  http: [{name: hook, url: "http://127.0.0.1:9/hook"}]
  webhook: [{name: hook2, url: "http://127.0.0.1:9/hook2"}]
  slack: [{name: slack, webhook: "http://127.0.0.1:9/slack"}]
  discord: [{name: discord, webhook: "http://127.0.0.1:9/discord"}]
  teams: [{name: teams, webhook: "http://127.0.0.1:9/teams"}]
  telegram: [{name: tg, token: "111111:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", chat_id: "42"}]
  email: [{name: mail, server: "127.0.0.1:9", from: a@example.com, to: b@example.com}]
  mqtt: [{name: mq, host: "127.0.0.1:9", topic: t}]
  shell: [{name: sh, cmd: "true"}]
  apprise: [{name: ap, url: "json://127.0.0.1:9/"}]
"""


def _corpus() -> list[str]:
    """probes.example.yaml and every string literal in tests/ that reads as a config (a
    mapping of known top-level keys), dedented as a test's `textwrap.dedent` would."""
    known = {*SECTIONS, "client", "notify", "settings", "version"}
    section = re.compile(rf"^\s*(?:{'|'.join(map(re.escape, known))})\s*:", re.MULTILINE)
    texts = {EVERY_KIND, (ROOT / "probes.example.yaml").read_text(encoding="utf-8")}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path == Path(__file__).resolve():
            continue  # this file's fragments are mutations, not configs
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if not section.search(node.value):
                continue
            text = textwrap.dedent(node.value).lstrip("\n")
            try:
                data = yaml.safe_load(text)
            except Exception:  # PyYAML's constructors raise ValueError and more on hostile text
                continue
            if isinstance(data, dict) and data and {str(k) for k in data} <= known:
                texts.add(text)
    return sorted(texts)


CORPUS = _corpus()


def test_corpus_is_representative() -> None:
    # A change in how tests write configs must not silently empty the corpus.
    assert len(CORPUS) >= 100
    joined = "\n".join(CORPUS)
    for section in ("http:", "tcp:", "client:", "notify:", "settings:", "shell:", "tls:"):
        assert section in joined


def test_every_kind_loads_and_starts(path: Path, store_dir: Path) -> None:
    config = check_real(path, EVERY_KIND)
    assert config is not None
    assert {*SECTIONS, *CLIENT_DRIVERS} - {"client"} <= {p.kind for p in config.probes}
    assert set(NOTIFIERS) <= {n.kind for n in config.notifiers}
    check_starts(config, store_dir)


def test_corpus_loads_and_starts(path: Path, store_dir: Path) -> None:
    # The unmutated corpus: the mutation properties start from configs that load here.
    loaded = 0
    for text in CORPUS:
        config = check_real(path, text)
        if config is not None:
            loaded += 1
            check_starts(config, store_dir)
    assert loaded >= 50


# -- checks


def assert_located(exc: ConfigError, path: Path, data: bytes) -> None:
    """Each problem (and warning) names the file and a place in it, on one line."""
    assert exc.problems
    # An upper bound on the line count as YAML counts lines (\r, NEL, U+2028 end lines too).
    text = data.decode("utf-8", errors="replace")
    lines = sum(text.count(br) for br in "\r\n\x85\u2028\u2029") + 1
    for problem in [*exc.problems, *exc.warnings]:
        shown = str(problem)
        assert problem.file == str(path)
        assert shown.startswith(str(path)) and "\n" not in shown, shown
        assert (problem.line is None) == (problem.column is None), shown
        if problem.line is None:
            assert problem.path or problem.message.startswith(WHOLE_FILE), shown
        else:
            assert problem.column is not None
            assert 1 <= problem.line <= lines and problem.column >= 1, shown


def write(path: Path, data: str | bytes) -> bytes:
    raw = data if isinstance(data, bytes) else data.encode("utf-8", errors="surrogatepass")
    path.write_bytes(raw)
    return raw


def check(path: Path, data: str | bytes) -> None:
    """Random input, loaded with the test kinds."""
    raw = write(path, data)
    try:
        cfg = load_config(path, environ=ENV, **KINDS)
    except ConfigError as exc:
        assert_located(exc, path, raw)
    else:
        assert isinstance(cfg, Config)


def check_real(path: Path, data: str | bytes) -> Config | None:
    """As `probe check` loads: the real registries. The Config, or None (a located error)."""
    raw = write(path, data)
    try:
        cfg = assembly.load_config(path, environ=ENV)
    except ConfigError as exc:
        assert_located(exc, path, raw)
        return None
    assert isinstance(cfg, Config)
    for warning in cfg.warnings:
        assert str(warning).startswith(str(path))
    return cfg


# -- what `probe run` builds at start, with the network forbidden


class NetworkUsed(AssertionError):
    pass


@contextlib.contextmanager
def no_network() -> Iterator[list[str]]:
    """Every name lookup and connect attempt fails (OSError, as an unreachable network would)
    and is recorded: building probers, clients and the web app must attempt none."""
    attempts: list[str] = []

    def refuse(what: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args[1:] if what.startswith('socket.') else args}")
            raise OSError(f"network use is not allowed here: {what}")

        return call

    saved = {
        (socket, "getaddrinfo"): socket.getaddrinfo,
        (socket, "gethostbyname"): socket.gethostbyname,
        (socket, "create_connection"): socket.create_connection,
        (socket.socket, "connect"): socket.socket.connect,
        (socket.socket, "connect_ex"): socket.socket.connect_ex,
        (socket.socket, "sendto"): socket.socket.sendto,
    }
    for owner, name in saved:
        prefix = "socket." if owner is socket.socket else ""
        setattr(owner, name, refuse(f"{prefix}{name}"))
    try:
        yield attempts
    finally:
        for (owner, name), original in saved.items():
            setattr(owner, name, original)


_db_numbers = itertools.count()


async def start_and_close(config: Config, store_dir: Path) -> None:
    """The constructors of `probe run`'s start (probe.app.App.run), without the scheduler,
    the dispatcher or the web server's socket: then everything is closed again."""
    settings = config.settings
    store_settings = settings.store.model_copy(
        update={"path": store_dir / f"probe-{next(_db_numbers)}.db"}
    )
    settings = settings.model_copy(update={"store": store_settings})
    ZoneInfo(settings.timezone)
    for spec in config.enabled_probes:
        policy_for(spec)
    store = open_store(settings)
    resources = SharedResources()
    http = notify_client(settings)
    probers: list[Any] = []
    notifiers: list[Any] = []
    try:
        await store.start()
        notifiers = assembly.build_notifiers(config.notifiers, notify_context(settings, http))
        probers = assembly.build_probers(config.enabled_probes, resources)
        source = status_source(config, store)
        token = settings.http.token
        create_app(
            source,
            registry=CollectorRegistry(),
            token=None if token is None else token.get_secret_value(),
            basic=settings.http.basic_auth(),
            title=settings.name,
            icon=settings.icon,
        )
    finally:
        for notifier in notifiers:
            await notifier.aclose()
        await http.aclose()
        for prober in probers:
            await prober.aclose()
        await resources.aclose()
        await store.close()


def check_starts(config: Config, store_dir: Path) -> None:
    with no_network() as attempts:
        try:
            asyncio.run(start_and_close(config, store_dir))
        except (StartupError, StoreError) as exc:
            assert str(exc)
        except ConfigError as exc:
            assert_located(exc, config.path, config.path.read_bytes())
    assert not attempts, f"network used while building for {config.path}: {attempts}"


# -- fixtures


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "probes.yaml"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stores")


@pytest.fixture(scope="module", autouse=True)
def imported() -> None:
    """Every prober and notifier module imported once, so a first import (apprise takes a
    second) is not timed against the deadline."""
    for target in [*SECTIONS.values(), *CLIENT_DRIVERS.values()]:
        with contextlib.suppress(ImportError):
            load_prober_class(target)
    for kind in [*NOTIFIERS, *ALIASES]:
        with contextlib.suppress(ImportError):
            load_notifier_class(kind)
    with contextlib.suppress(ImportError):
        import probe.notify.templates  # noqa: F401


# -- random input


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


# -- mutations of the corpus

# What a value may be replaced with, as YAML text: other types, edge numbers, tags, aliases,
# substitutions, control characters, very long text.
NASTY_TEXT = [
    "", "~", "null", "true", "False", "0", "-1", "1.5", "1e309", "-1e309", "99999999999999999999",
    "9" * 5000, ".nan", ".inf", "-.inf", "0x1F", "0o17", "1_000", "[]", "{}", "[1, [2, {a: b}]]",
    "{a: 1, a: 2}", "[[200, 299]]", "[[0, 0, 0]]", "!!python/object:os.system {}",
    "!!python/object/apply:os.system [true]", "!!binary aGVsbG8=", "!!str 1", "!!int x",
    "!!float y", "!!bool maybe", "!!set {a}", "!!omap [a: 1]", "!!timestamp 2001-12-14",
    "!local x", "*nowhere", "&anchor x", '"\\ud800"', '"\\x00"', '"a\\x1b[31mb"', '"\\u202e"',
    '"\\r\\nx"', "${A}", "${UNSET}", "${A:-x}", "${EMPTY:-}", "$$", "${", "$UNSET", "${1}",
    "é" * 40, "x" * 10_000, "10s", "0s", "-5s", "1ns", "1e400h", "999999999999d", "25:00",
    "/dev/zero", "/", ".", "~nosuchuser/x", "http://[::1", "127.0.0.1:99999", "'", '"', "|",
    "- a\n- b", "<<: *a", "? a", "%",
]  # fmt: skip
# Lines that may be inserted anywhere: keys, tags, anchors, aliases, merges, directives.
NASTY_LINES = [
    "x-a: &a {name: dup, url: 'http://127.0.0.1:1/'}", "  <<: *a", "- *a", "  - *a",
    "  - name: dup", "- name: dup", "  name: dup", "--- ", "...", "%YAML 1.1", "%TAG ! !x!",
    "name: !!python/name:os.system", "  password_file: /dev/null", "  token_file: nope",
    "settings: {probe: {interval: 1s}}", "notify:", "  log:", "    - name: l", "\t", " ",
    "#", "? [a, b]", ": x", "&b", "*b", "  ${A}: x", "  labels: {a.b: 1, '': 2}",
]  # fmt: skip


def _mutate_text(text: str, data: st.DataObject) -> str | bytes:
    lines = text.split("\n")
    at = data.draw(st.integers(0, max(len(lines) - 1, 0)), label="line")
    how = data.draw(
        st.sampled_from(
            ["truncate", "delete", "duplicate", "indent", "dedent", "tab", "value", "insert"]
        ),
        label="how",
    )
    if how == "truncate":
        raw = text.encode("utf-8")
        return raw[: data.draw(st.integers(0, len(raw)), label="byte")]
    if how == "delete":
        del lines[at]
    elif how == "duplicate":
        lines.insert(at, lines[at])
    elif how == "indent":
        lines[at] = " " * data.draw(st.integers(1, 4), label="spaces") + lines[at]
    elif how == "dedent":
        lines[at] = lines[at][data.draw(st.integers(1, 4), label="spaces") :]
    elif how == "tab":
        lines[at] = "\t" + lines[at].lstrip(" ")
    elif how == "value":
        key, sep, _ = lines[at].partition(": ")
        if not sep:
            key, sep = lines[at].rstrip(":"), ": "
        lines[at] = key + sep + data.draw(st.sampled_from(NASTY_TEXT), label="value")
    else:
        lines.insert(at, data.draw(st.sampled_from(NASTY_LINES), label="inserted"))
    return "\n".join(lines)


NASTY_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**70, -(2**63), 1.5, math.nan, math.inf, -math.inf, "",
    " ", "x" * 5000, "\x00", "\x1b[2J", "\u202eevil", "${A}", "${UNSET}", "$$", [], {},
    [None], [[200, 299]], {"a": {}}, {"name": "dup"}, "10s", "0s", "1ms", "24:00",
]  # fmt: skip


def _paths(
    value: Any, here: tuple[Any, ...] = (), inside: frozenset[int] = frozenset()
) -> Iterator[tuple[Any, ...]]:
    yield here
    if id(value) in inside:
        return  # a recursive alias (`tcp: &a [*a]`): its own parent
    inside = inside | {id(value)}
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*here, key), inside)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*here, index), inside)


def _mutate_structure(value: Any, data: st.DataObject) -> Any:
    """Replace, delete or duplicate one value anywhere in the parsed config."""
    paths = [p for p in _paths(value) if p]
    if not paths:
        return value
    where = data.draw(st.sampled_from(paths), label="path")
    parent = value
    for part in where[:-1]:
        parent = parent[part]
    last = where[-1]
    how = data.draw(st.sampled_from(["replace", "delete", "duplicate"]), label="how")
    if how == "delete":
        del parent[last]
    elif how == "duplicate" and isinstance(parent, list):
        parent.insert(last, parent[last])  # a second probe of the same name, say
    else:
        # A copy: a later round may mutate it, and NASTY_VALUES must stay as it is.
        parent[last] = copy.deepcopy(data.draw(st.sampled_from(NASTY_VALUES), label="value"))
    return value


@FUZZ
@given(st.sampled_from(CORPUS), st.data())
@pytest.mark.parametrize("rounds", [1, 3])
def test_text_mutations(path: Path, store_dir: Path, rounds: int, text: str, data: Any) -> None:
    mutated: str | bytes = text
    for _ in range(rounds):
        if isinstance(mutated, bytes):
            break
        mutated = _mutate_text(mutated, data)
    config = check_real(path, mutated)
    if config is not None:
        check_starts(config, store_dir)


@FUZZ
@given(st.sampled_from(CORPUS), st.data())
def test_structure_mutations(path: Path, store_dir: Path, text: str, data: Any) -> None:
    value = yaml.safe_load(text)
    for _ in range(data.draw(st.integers(1, 3), label="rounds")):
        value = _mutate_structure(value, data)
    config = check_real(path, yaml.safe_dump(value, allow_unicode=True, sort_keys=False))
    if config is not None:
        check_starts(config, store_dir)


# A bomb at the bound costs ~0.4 s to refuse (250,000 values converted first): fewer examples.
@settings(FUZZ, max_examples=25)
@given(
    fan_out=st.integers(2, 12),
    depth=st.integers(1, 9),
    uses=st.integers(1, 4),
    where=st.sampled_from(
        [
            "x-use: {use}",
            "tcp:\n  - {{name: a, host: '127.0.0.1:9', labels: {{big: {use}}}}}",
            "tcp:\n  - {{name: a, host: '127.0.0.1:9', channels: {use}}}",
            "http: {use}",
            "settings:\n  probe: {use}",
        ]
    ),
)
def test_alias_bombs(
    path: Path, store_dir: Path, fan_out: int, depth: int, uses: int, where: str
) -> None:
    # "Billion laughs": each level repeats the one below `fan_out` times. Refused with a
    # located error once the expansion passes the reader's bound, else loaded or refused as
    # any other value: within the deadline either way.
    rows = [f"x-a0: &a0 [{', '.join(['lol'] * fan_out)}]"]
    for i in range(1, depth):
        rows.append(f"x-a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan_out) + "]")
    rows.append(where.format(use="[" + ", ".join([f"*a{depth - 1}"] * uses) + "]"))
    config = check_real(path, "\n".join(rows) + "\n")
    if config is not None:
        check_starts(config, store_dir)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["tcp", "http", "shell"]),
            st.sampled_from(["a", "b", "${NAME}", "$NAME", "${UNSET}", "${UNSET:-a}", "$$a"]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["", "a", "b", "${NAME}", "é\u202e", "x" * 300]),
)
def test_names_and_substitutions(
    path: Path, store_dir: Path, probes: list[tuple[str, str]], value: str
) -> None:
    # Duplicate names, also ones that are only duplicates after `${VAR}` substitution.
    targets = {
        "tcp": "host: '127.0.0.1:${PORT}'",
        "http": "url: 'http://127.0.0.1:${PORT}/'",
        "shell": "cmd: 'true'",
    }
    sections: dict[str, list[str]] = {}
    for section, name in probes:
        sections.setdefault(section, []).append(f"  - {{name: '{name}', {targets[section]}}}")
    text = "\n".join(f"{s}:\n" + "\n".join(rows) for s, rows in sections.items()) + "\n"
    raw = write(path, text)
    try:
        config = assembly.load_config(path, environ={**ENV, "NAME": value})
    except ConfigError as exc:
        assert_located(exc, path, raw)
        return
    names = [p.name for p in config.probes]
    assert len(names) == len(set(names))
    check_starts(config, store_dir)
