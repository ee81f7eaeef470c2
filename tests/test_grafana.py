"""The Grafana dashboard in contrib/grafana/probe.json.

Its structure is checked as Grafana needs it (every panel, rows' nested ones included, on the
`datasource` variable, unique ids, a grid position). Then every PromQL expression in it (the
panels' targets and the template variables' queries) runs against a real Prometheus
(Debian's `prometheus`) scraping a real `probe run` on loopback, with the template variables
set as Grafana sets them for "All", and must return data: a metric or label renamed in probe,
or a typo in the dashboard, shows here instead of as an empty panel. The probe's config is
made to give every panel something to show: an up, a down, a degraded probe, a tls probe in a
maintenance window, and a webhook that refuses every notification.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.support.cli import PROBE, REPO
from tests.support.daemons import free_port, require_binary, stop_process

DASHBOARD = REPO / "contrib" / "grafana" / "probe.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# What Grafana puts in place of its own variables; any value of the right shape will do,
# as long as a range holds a few scrapes (every second here).
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
# $name, ${name}, ${name:format} and the old [[name]].
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$", re.DOTALL)

START_TIMEOUT = 30.0  # seconds for probe or Prometheus to answer
DATA_TIMEOUT = 60.0  # seconds for every query to have data (a few scrapes: usually ~5 s)


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, a collapsed row's nested panels included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", ())


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target."""
    return [
        (f"{panel['title']!r} {target['refId']}", target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", ())
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(variable, query) of every query variable, the editor's form and the definition."""
    out = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        out.append((variable["name"], query["query"] if isinstance(query, dict) else query))
        if variable.get("definition"):
            out.append((variable["name"], variable["definition"]))
    return out


def all_values(dashboard: dict[str, Any]) -> dict[str, str]:
    """Each variable as Grafana substitutes it with "All" selected (plus its own)."""
    values = dict(GRAFANA_VARIABLES)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            values[variable["name"]] = variable["allValue"]
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        assert name in values, f"${name} is not a variable of the dashboard: {expr}"
        return values[name]

    return VARIABLE.sub(one, expr)


# -- structure --------------------------------------------------------------------------


def test_every_panel_uses_the_datasource_variable_and_has_a_place():
    dashboard = load()
    assert dashboard["schemaVersion"] >= 39
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    source = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    assert source["current"]["value"] == "${DS_PROMETHEUS}"  # what import asks for

    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = [panel["title"] for panel in panels(dashboard)]
    assert len(titles) == len(set(titles)), "titles tell the panels apart (here and in Grafana)"
    for panel in panels(dashboard):
        where = panel["title"]
        assert panel["datasource"] == DATASOURCE, where
        for target in panel.get("targets", ()):
            assert target["datasource"] == DATASOURCE, where
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid), where
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, where
        if panel["type"] != "row":
            assert panel.get("targets"), f"{where} has no query"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
            assert (variable["includeAll"], variable["allValue"]) == (True, ".*")


def test_every_variable_used_is_defined():
    dashboard = load()
    values = all_values(dashboard)
    for _, expr in expressions(dashboard) + variable_queries(dashboard):
        substitute(expr, values)  # asserts each $name is known


# -- against Prometheus ------------------------------------------------------------------


class _Targets(BaseHTTPRequestHandler):
    """/ok answers 200, anything else 503; a webhook POST is refused for good (400)."""

    def do_GET(self) -> None:
        self._answer(200 if self.path == "/ok" else 503)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(400)

    def _answer(self, status: int) -> None:
        body = b"ok" if status == 200 else b"no"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


class _Served:
    """An http.server on a free 127.0.0.1 port in a thread of its own (TLS with `context`)."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Targets)
        self.server.daemon_threads = True
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _probe_config(directory: Path, port: int, web: int, tls: int) -> Path:
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }
    base = f"http://127.0.0.1:{web}"
    config = {
        "settings": {
            "http": {"ip": "127.0.0.1", "port": port, "token_file": "token"},
            "store": {"path": str(directory / "probe.db")},
            "probe": {"interval": "250ms", "timeout": "2s"},
            "notify": {"group": {"wait": "0s"}},
        },
        "http": [
            {"name": "shop", "url": f"{base}/ok", "labels": {"group": "web"}},
            {"name": "orders", "url": f"{base}/down", "labels": {"group": "web"}},
            {
                "name": "search",
                "url": f"{base}/ok",
                "degraded": ["[RESPONSE_TIME] < 0"],  # never holds: always degraded
                "labels": {"group": "backend"},
            },
        ],
        "tls": [
            {
                "name": "shop certificate",
                "host": f"127.0.0.1:{tls}",
                "root_ca_pem_path": "ca.pem",
                "labels": {"group": "web"},
                "maintenance": [window],
            }
        ],
        "notify": {"webhook": [{"name": "team-hook", "url": f"{base}/hook"}]},
    }
    path = directory / "probes.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _answers(url: str, process: subprocess.Popen[bytes]) -> bool:
    """Whether `url` answers 200 before START_TIMEOUT (False at once if the process exits)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _on_a_free_port(
    start: Callable[[int], subprocess.Popen[bytes]],
    ready: str,
    log: Path,
    processes: list[subprocess.Popen[bytes]],
) -> int:
    """The port `start(port)` serves on, `ready` (a path) answering; another port is tried
    when the process exits (a free port can be taken before it binds)."""
    for _attempt in range(3):
        port = free_port()
        processes.append(start(port))
        if _answers(f"http://127.0.0.1:{port}{ready}", processes[-1]):
            return port
        if processes[-1].poll() is None:
            break  # running but not answering: another port will not help
        stop_process(processes.pop())
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    pytest.fail(f"{ready} did not answer:\n{tail}", pytrace=False)


def _start(command: list[str], log: Path, cwd: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Prometheus scraping a `probe run` every second (bearer token, as the
    README's scrape config has it)."""
    binary = require_binary("prometheus", "prometheus")
    directory = tmp_path_factory.mktemp("grafana")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    web, tls = _Served(), _Served(context)
    (directory / "token").write_text("scrape-secret-token\n")
    processes: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def probe_run(port: int) -> subprocess.Popen[bytes]:
        config = _probe_config(directory, port, web.port, tls.port)
        return _start(
            [*PROBE, "run", "-c", str(config)], directory / "probe.log", directory, env=env
        )

    def prometheus_on(port: int) -> subprocess.Popen[bytes]:
        command = [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        return _start(command, directory / "prometheus.log", directory)

    try:
        port = _on_a_free_port(probe_run, "/healthz", directory / "probe.log", processes)
        scrape = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "probe",
                    "authorization": {"credentials_file": str(directory / "token")},
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(json.dumps(scrape))
        log = directory / "prometheus.log"
        url = f"http://127.0.0.1:{_on_a_free_port(prometheus_on, '/-/ready', log, processes)}"
        yield url
    finally:
        for process in reversed(processes):
            stop_process(process)
        web.close()
        tls.close()


def _instant(url: str, expr: str) -> list[dict[str, Any]]:
    """The samples of an instant query; a query Prometheus refuses fails the test at once."""
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
    data = answer["data"]
    if data["resultType"] == "scalar":
        return [{"value": data["result"]}]
    return list(data["result"])


def _label_values(url: str, query: str) -> list[str]:
    match = LABEL_VALUES.match(query.strip())
    assert match, f"not a label_values(...) query: {query}"
    selector, label = match.groups()
    params = {"match[]": selector} if selector else {}
    answer = httpx.get(f"{url}/api/v1/label/{label}/values", params=params, timeout=10).json()
    assert answer["status"] == "success", f"{query}: {answer.get('error')}"
    return list(answer["data"])


def _until_all_have_data(check: dict[str, Any]) -> dict[str, Any]:
    """Runs each check (name -> function giving a result, empty while it has no data) until
    all have data; returns the results. A check still empty after DATA_TIMEOUT fails."""
    results: dict[str, Any] = {}
    deadline = time.monotonic() + DATA_TIMEOUT
    while True:
        for name, run in check.items():
            if name not in results and (found := run()):
                results[name] = found
        missing = sorted(set(check) - set(results))
        if not missing:
            return results
        if time.monotonic() > deadline:
            pytest.fail("no data for:\n" + "\n".join(missing), pytrace=False)
        time.sleep(0.5)


@pytest.mark.slow  # a `probe run` and a Prometheus, a few seconds of scrapes
def test_every_query_of_the_dashboard_returns_data(prometheus: str):
    dashboard = load()
    values = all_values(dashboard)
    checks: dict[str, Any] = {}
    for where, expr in expressions(dashboard):
        query = substitute(expr, values)
        checks[f"panel {where}: {query}"] = lambda q=query: _instant(prometheus, q)
    for name, expr in variable_queries(dashboard):
        query = substitute(expr, values)
        checks[f"${name}: {query}"] = lambda q=query: _label_values(prometheus, q)
    _until_all_have_data(checks)


def _stat(dashboard: dict[str, Any], title: str) -> str:
    panel = next(p for p in panels(dashboard) if p["title"] == title)
    return substitute(panel["targets"][0]["expr"], all_values(dashboard))


@pytest.mark.slow  # a `probe run` and a Prometheus, a few seconds of scrapes
def test_the_overview_counts_and_variables_match_the_config(prometheus: str):
    dashboard = load()
    want = {"Up": 3.0, "Down": 1.0, "Degraded": 1.0, "In maintenance": 1.0}

    def counted(title: str) -> bool:
        samples = _instant(prometheus, _stat(dashboard, title))
        return bool(samples) and float(samples[0]["value"][1]) == want[title]

    _until_all_have_data({title: lambda t=title: counted(t) for title in want})
    queries = dict(variable_queries(dashboard))
    values = all_values(dashboard)
    assert _label_values(prometheus, substitute(queries["job"], values)) == ["probe"]
    assert _label_values(prometheus, substitute(queries["kind"], values)) == ["http", "tls"]
    assert _label_values(prometheus, substitute(queries["group"], values)) == ["backend", "web"]
    names = _label_values(prometheus, substitute(queries["name"], values))
    assert names == ["orders", "search", "shop", "shop certificate"]
