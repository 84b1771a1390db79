"""docker/compose.yaml without a Docker engine: schema, commands, settings, probes."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from backend.config import Mode
from tests.unit.docker.deployfiles import (
    DOCKER,
    REPO,
    cli_commands,
    command_path,
    env_file,
    hybridex_invocations,
    load_yaml,
    setting_names,
    settings_from,
)

COMPOSE = DOCKER / "compose.yaml"
OUR_IMAGE = "hybridex:0.1.0"
EXPECTED = {
    "postgres", "redis", "nats", "anvil", "setup", "api", "engine", "worker", "beat", "indexer",
    "relay",
}  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == OUR_IMAGE}


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(compose)


def test_every_part_of_the_stack_is_a_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= EXPECTED
    assert set(ours(compose)) == {"setup", "api", "engine", "worker", "beat", "indexer", "relay"}


def test_every_container_runs_a_command_the_cli_has(compose: dict[str, Any]) -> None:
    seen = set()
    for name, service in ours(compose).items():
        calls = hybridex_invocations(service["command"], service.get("entrypoint"))
        assert calls, name
        for args in calls:
            path = command_path(args)
            assert path in cli_commands(), f"{name}: `hybridex {' '.join(args)}` is no command"
            seen.add(path)
    assert seen >= {"db upgrade", "deploy", "api", "engine", "worker", "beat", "indexer", "relay"}


def test_env_files_and_overrides_are_valid_settings(compose: dict[str, Any]) -> None:
    known = setting_names()
    for name, service in ours(compose).items():
        env: dict[str, str] = {}
        for path in service["env_file"]:
            env.update(env_file(DOCKER / path))
        env.update({k: str(v) for k, v in service.get("environment", {}).items()})
        unknown = {k for k in env if k not in known}
        assert not unknown, f"{name}: not settings: {sorted(unknown)}"
        settings = settings_from(env)
        assert settings.mode is Mode.DEV  # compose's chain is its own anvil
    only_operator = {n for n, s in ours(compose).items() if "operator.env" in s["env_file"]}
    assert only_operator == {"setup", "worker"}, "the operator key goes where it signs, only"


def test_services_wait_for_what_they_need(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["setup"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("engine", "worker"):
        cond = services[name]["depends_on"]["setup"]["condition"]
        assert cond == "service_completed_successfully"
    assert services["setup"]["restart"] == "no"
    for name in (
        "api",
        "engine",
        "worker",
        "beat",
        "indexer",
        "relay",
        "postgres",
        "redis",
        "nats",
    ):
        assert services[name]["restart"] == "unless-stopped", name
    for name in ("postgres", "redis", "nats", "anvil", "engine", "api"):
        assert "healthcheck" in services[name], name
    assert services["relay"]["depends_on"]["nats"]["condition"] == "service_healthy"


def test_probes_and_ports_match_the_settings(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = env_file(DOCKER / "hybridex.env")
    settings = settings_from(env)
    # The image's probe (backend/healthcheck.py) reads the same settings as the process.
    for name in ("engine", "api"):
        probe = services[name]["healthcheck"]["test"]
        assert probe == ["CMD", "python", "-m", "backend.healthcheck", name]
    assert services["api"]["ports"] == [f"127.0.0.1:{settings.api_port}:{settings.api_port}"]
    assert settings.rpc_url == "http://anvil:8545"
    assert services["engine"]["environment"]["HYBRIDEX_ENGINE_HOST"] == "0.0.0.0"


def test_dockerfiles_build_from_files_that_exist() -> None:
    for dockerfile in ("Dockerfile", "anvil.Dockerfile"):
        for line in (DOCKER / dockerfile).read_text().splitlines():
            words = line.split()
            if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
                for source in words[1:-1]:
                    assert (REPO / source).exists(), f"{dockerfile}: COPY {source}"
    text = (DOCKER / "Dockerfile").read_text()
    stages = [ln for ln in text.splitlines() if ln.startswith("FROM ")]
    assert len(stages) >= 2, "multi-stage"
    final = text.rsplit("FROM ", 1)[1]
    assert "USER 10001:10001" in final, "non-root, numeric (runAsNonRoot can verify it)"
    # The compiled contracts live in the package (backend/chain/artifacts): no Node at run time.
    assert "COPY backend ./backend" in final
    assert any((REPO / "backend/chain/artifacts").glob("Exchange.json"))
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "contracts/node_modules", ".git"} <= set(ignored)


def test_containers_run_read_only_without_privileges(compose: dict[str, Any]) -> None:
    for name, service in ours(compose).items():
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert "user" not in service, f"{name}: the image's USER (uid 10001) applies"


def test_volumes_mount_where_the_settings_point(compose: dict[str, Any]) -> None:
    """Writable paths are volumes at the directories the image creates for uid 10001
    (tests/unit/docker/test_image_layout.py checks the Dockerfile side)."""
    services = ours(compose)
    settings = settings_from(env_file(DOCKER / "hybridex.env"))
    mounts = {
        name: {v.split(":")[1]: v.split(":")[0] for v in s.get("volumes", [])}
        for name, s in services.items()
    }
    assert mounts["engine"] == {str(settings.engine_journal_dir): "journal"}
    assert mounts["beat"] == {str(settings.beat_schedule.parent): "beat"}
    assert {n for n, m in mounts.items() if m} == {"engine", "beat"}
    assert set(compose["volumes"]) >= {"journal", "beat"}
