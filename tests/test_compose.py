"""docker-compose.yml, the Dockerfile and deploy/prometheus.yml hold together, and the very same
driftline commands and settings work outside Docker.

No YAML parser is a dependency: docker-compose.yml keeps to a small, regular subset (two-space
indents, ``command:`` as a one-line JSON list, ``environment:`` as a mapping) that
:func:`parse_compose` reads; ``docker-compose config -q`` checks the full syntax where the binary
is installed (required in CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from driftline.cli.main import build_parser, main
from driftline.learners.snapshot import new_key
from driftline.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
PROMETHEUS = REPO / "deploy" / "prometheus.yml"
DOCKERFILE = REPO / "Dockerfile"
WORKERS = ("worker-1", "worker-2")

_DEFAULT = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    # What `docker compose up` sees without the variable set: its default.
    return _DEFAULT.sub(lambda m: m.group(2) or "", text)


def parse_compose(text: str) -> dict[str, dict[str, Any]]:
    """Services of docker-compose.yml: each key at 4 spaces, with ``environment`` as a dict and
    the other blocks (ports, volumes, depends_on) as lists of their entries."""
    services: dict[str, dict[str, Any]] = {}
    section = service = key = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if indent == 0:
            section = stripped.rstrip(":")
        elif section != "services":
            continue
        elif indent == 2:
            service = stripped.rstrip(":")
            services[service] = {"environment": {}}
        elif indent == 4:
            assert service is not None
            key, _, value = stripped.partition(":")
            block: Any = {} if key == "environment" else []
            services[service][key] = _scalar(value) if value.strip() else block
        elif indent == 6 and service is not None and key is not None:
            entries = services[service][key]
            if isinstance(entries, dict):
                name, _, value = stripped.partition(":")
                entries[name.strip()] = _scalar(value)
            elif isinstance(entries, list):
                entries.append(_scalar(stripped[2:]) if stripped.startswith("- ") else stripped)
    return services


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return parse_compose(COMPOSE.read_text())


def driftline_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if "build" in s}


def test_parser_reads_the_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "kafka",
        "topics",
        *WORKERS,
        "prometheus",
        "grafana",
        "producer",
        "dashboard",
    }
    assert services["kafka"]["image"].startswith("apache/kafka:3.9.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["producer"]["command"][0] == "produce"


def test_docker_compose_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: install docker-compose (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env={**os.environ, "DRIFTLINE_SNAPSHOT_KEY": new_key()},
    )
    assert done.returncode == 0, done.stderr
    unset = {k: v for k, v in os.environ.items() if k != "DRIFTLINE_SNAPSHOT_KEY"}
    refused = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env=unset,
    )
    assert refused.returncode != 0 and "DRIFTLINE_SNAPSHOT_KEY" in refused.stderr


def test_every_driftline_command_is_a_valid_cli_call(services: dict[str, dict[str, Any]]) -> None:
    ours = driftline_services(services)
    assert {"topics", *WORKERS, "producer"} <= set(ours)
    parser = build_parser()
    for name, service in ours.items():
        assert service["image"] == "driftline:local", name
        args = parser.parse_args(service["command"])
        assert args.command in args._commands, name


def test_every_driftline_environment_is_valid_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    loaded = {}
    for name, service in driftline_services(services).items():
        env = service["environment"]
        assert all(k.startswith("DRIFTLINE_") for k in env), name
        loaded[name] = load_settings(environ=env)
    kafka = {name: (s.kafka.bootstrap, s.kafka.partitions) for name, s in loaded.items()}
    assert len(set(kafka.values())) == 1, f"every service must see the same Kafka: {kafka}"
    # Two workers only share the stream if there are at least two partitions to hand out.
    assert loaded["producer"].kafka.partitions >= len(WORKERS)


def test_workers_form_one_group_on_distinct_ports(services: dict[str, dict[str, Any]]) -> None:
    settings = {w: load_settings(environ=services[w]["environment"]) for w in WORKERS}
    assert len({s.service.app_id for s in settings.values()}) == 1
    ports = [p for s in settings.values() for p in (s.service.web_port, s.service.metrics_port)]
    assert len(ports) == len(set(ports)), "two workers on one machine need their own ports"
    assert len({s.service.data_dir for s in settings.values()}) == len(WORKERS)
    for w, s in settings.items():
        published = services[w].get("ports", [])
        assert f"{s.service.metrics_port}:{s.service.metrics_port}" in published, w
        # Required from the environment: a default key written in the file would be everyone's.
        key = services[w]["environment"].get("DRIFTLINE_SNAPSHOT_KEY")
        assert key and key.startswith("${DRIFTLINE_SNAPSHOT_KEY:?"), w


def test_dashboard_follows_the_workers_group_and_publishes_its_port(
    services: dict[str, dict[str, Any]],
) -> None:
    dashboard = services["dashboard"]
    groups = {load_settings(environ=services[w]["environment"]).service.app_id for w in WORKERS}
    assert {load_settings(environ=dashboard["environment"]).service.app_id} == groups
    args = build_parser().parse_args(dashboard["command"])
    assert args.host == "0.0.0.0"  # reachable from outside its container
    assert f"{args.port}:{args.port}" in dashboard["ports"]


def test_prometheus_scrapes_every_worker(services: dict[str, dict[str, Any]]) -> None:
    lines = [ln.strip() for ln in PROMETHEUS.read_text().splitlines()]
    targets = next(json.loads(ln.split(":", 1)[1]) for ln in lines if ln.startswith("- targets:"))
    expected = {
        f"{w}:{load_settings(environ=services[w]['environment']).service.metrics_port}"
        for w in WORKERS
    }
    assert set(targets) == expected
    volumes = services["prometheus"]["volumes"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes


def test_bootstrap_is_what_the_broker_advertises(services: dict[str, dict[str, Any]]) -> None:
    kafka_env = services["kafka"]["environment"]
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    bootstrap = services["producer"]["environment"]["DRIFTLINE_BOOTSTRAP"]
    assert any(entry.endswith(f"//{bootstrap}") for entry in advertised)
    # The host (`driftline alerts --bootstrap localhost:9094`) reaches a published listener.
    host = [e.split("//")[1] for e in advertised if "localhost" in e]
    assert host and f"{host[0].split(':')[1]}:{host[0].split(':')[1]}" in services["kafka"]["ports"]


def test_dockerfile_installs_the_package_with_driftline_as_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert 'ENTRYPOINT ["driftline"]' in text
    assert re.search(r"^RUN pip install \.", text, re.M)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    copied = " ".join(ln for ln in text.splitlines() if ln.startswith("COPY"))
    folders = set(project["tool"]["setuptools"]["package-dir"].values())
    assert folders == {"stream", "learners", "detectors"}
    for folder in folders:
        assert f"COPY {folder} " in copied, f"the image misses the folder {folder}"
    readme = project["project"].get("readme")
    if readme:
        assert readme in copied and (REPO / readme).is_file()
    scripts = project["project"]["scripts"]
    assert scripts["driftline"] == "driftline.cli.main:main"


@pytest.mark.integration
def test_compose_client_commands_work_on_a_real_broker(
    services: dict[str, dict[str, Any]],
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The topics and producer services' commands with their environment, outside Docker: only
    the broker address and (to keep tests apart) the topic names differ."""
    from driftline.live.kafka_clients import read_topic

    suffix = uuid.uuid4().hex[:10]
    for name in ("topics", "producer"):
        for key, value in services[name]["environment"].items():
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("DRIFTLINE_BOOTSTRAP", kafka_bootstrap)
    for field in ("events", "labels", "predictions", "alerts", "snapshots", "dead_letter"):
        monkeypatch.setenv(
            f"DRIFTLINE_KAFKA__TOPICS__{field.upper()}", f"it-compose-{field}-{suffix}"
        )

    assert main(services["topics"]["command"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("created") == 6 and "4 partitions" in listing

    # The demo producer, cut short: 200 events at its 200 events/s.
    assert main([*services["producer"]["command"], "--limit", "200"]) == 0
    assert "200 events" in capsys.readouterr().out
    settings = load_settings()
    records = read_topic(settings, settings.kafka.topics.events, timeout_s=30)
    assert len(records) == 200
    assert len({r.partition for r in records}) > 1
