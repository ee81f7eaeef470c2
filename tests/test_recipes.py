"""The service recipes in contrib/: the systemd unit passes `systemd-analyze verify` and keeps
its hardening; the Dockerfile (no container engine runs here: it is parsed, not built) uses a
slim base, runs as a user of its own, checks /healthz, copies only what exists; the configs
both recipes ship load with the real loader."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from probe.assembly import load_config

REPO = Path(__file__).resolve().parents[1]
SYSTEMD = REPO / "contrib" / "systemd"
DOCKER = REPO / "contrib" / "docker"


def unit_keys(text: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def test_the_systemd_unit_verifies_clean(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists: this checkout's `probe` stands in for
    # /usr/local/bin/probe.
    probe = Path(sys.executable).with_name("probe")
    assert probe.exists()
    text = (SYSTEMD / "probe.service").read_text()
    unit = tmp_path / "probe.service"
    unit.write_text(text.replace("/usr/local/bin/probe", str(probe)))
    out = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    assert out.returncode == 0, out.stderr
    assert str(unit) not in out.stderr + out.stdout, out.stderr  # no warning about our unit


def test_the_systemd_unit_keeps_its_hardening_and_reload():
    keys = unit_keys((SYSTEMD / "probe.service").read_text())
    for key, value in {
        "DynamicUser": "yes",
        "StateDirectory": "probe",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "Restart": "on-failure",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "CapabilityBoundingSet": "",
    }.items():
        assert keys.get(key) == [value], (key, keys.get(key))


def test_the_configs_the_recipes_ship_load():
    systemd = load_config(SYSTEMD / "probes.yaml", environ={})
    assert str(systemd.settings.store.path).startswith("/var/lib/probe/")  # StateDirectory
    assert str(systemd.settings.status.path).startswith("/var/lib/probe/")
    env = {"POSTGRES_PASSWORD": "pw-for-the-test", "SLACK_WEBHOOK": "https://hooks.invalid/x/y"}
    docker = load_config(DOCKER / "probes.yaml", environ=env)
    assert docker.settings.http.ip == "0.0.0.0"  # published from the container
    assert str(docker.settings.store.path).startswith("/var/lib/probe/")


def test_the_dockerfile_runs_as_its_own_user_checks_healthz_and_copies_what_exists():
    parser = DockerfileParser(path=str(DOCKER / "Dockerfile"))
    assert parser.baseimage.startswith("python:3.11") and parser.baseimage.endswith("-slim")
    steps = [(item["instruction"], item["value"]) for item in parser.structure]
    names = [name for name, _ in steps]
    user = steps[names.index("USER")][1]
    assert user not in ("root", "0")
    assert names.index("USER") > max(i for i, name in enumerate(names) if name == "RUN")
    for name, value in steps:
        if name == "COPY":
            *sources, _ = value.split()
            for source in sources:
                assert (REPO / source).exists(), source
        assert name != "ADD"  # nothing fetched at build time
    healthcheck = steps[names.index("HEALTHCHECK")][1]
    assert "127.0.0.1:8181/healthz" in healthcheck
    assert steps[names.index("EXPOSE")][1] == "8181"
    assert json.loads(parser.cmd) == ["run", "-c", "/etc/probe/probes.yaml"]
    assert json.loads(steps[names.index("ENTRYPOINT")][1]) == ["probe"]


def test_compose_mounts_the_config_the_image_runs_and_builds_from_the_repository():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    service = compose["services"]["probe"]
    context = (DOCKER / service["build"]["context"]).resolve()
    assert context == REPO
    assert (context / service["build"]["dockerfile"]).is_file()
    mounts = dict(volume.split(":", 1) for volume in service["volumes"])
    assert (DOCKER / "probes.yaml").exists() and mounts["./probes.yaml"].startswith(
        "/etc/probe/probes.yaml"
    )
    assert service["ports"] == ["127.0.0.1:8181:8181"]
    assert set(service["depends_on"]) <= set(compose["services"])
