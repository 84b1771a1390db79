"""The image's writable paths: what the Dockerfile creates for uid 10001 is what its settings,
compose's volumes and the Kubernetes mounts point at (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from tests.unit.docker.deployfiles import (
    DOCKER,
    K8S,
    containers,
    created_directories,
    image_env,
    load_yaml,
    render_kustomization,
    runtime_stage,
)

UID = "10001"


def writable_dirs(env: dict[str, str]) -> set[str]:
    return {
        env["HYBRIDEX_ENGINE_JOURNAL_DIR"],
        str(PurePosixPath(env["HYBRIDEX_BEAT_SCHEDULE"]).parent),
    }


def test_the_image_creates_every_writable_path_for_its_user() -> None:
    dirs = created_directories()
    env = image_env()
    for path in writable_dirs(env):
        assert dirs.get(path, ("?", "?"))[0] == UID, f"{path} is not uid 10001's"
    # Only those: the code and the virtualenv stay root-owned and read-only to the process.
    assert {p for p, (owner, _) in dirs.items() if owner == UID} == writable_dirs(env)
    assert "chown -R root:root /app" in " ".join(runtime_stage())
    assert f"USER {UID}:{UID}" in runtime_stage()
    assert any(line.startswith("HEALTHCHECK ") for line in runtime_stage())


def test_image_defaults_are_where_compose_and_kubernetes_mount() -> None:
    from tests.unit.docker.deployfiles import env_file

    env = image_env()
    compose = load_yaml(DOCKER / "compose.yaml")
    mounted = {v.split(":")[1] for s in compose["services"].values() for v in s.get("volumes", [])}
    assert writable_dirs(env) <= mounted
    for source in (env_file(DOCKER / "hybridex.env"), config_map()):
        for name in ("HYBRIDEX_ENGINE_JOURNAL_DIR", "HYBRIDEX_BEAT_SCHEDULE"):
            assert source[name] == env[name], name
    k8s_mounts = {
        m["mountPath"]
        for d in render_kustomization(K8S)
        for c in containers(d)
        for m in c.get("volumeMounts", [])
    }
    assert writable_dirs(env) | {"/tmp"} == k8s_mounts


def test_the_settings_default_paths_are_relative_to_the_working_directory() -> None:
    """The image must override them: its working directory, /app, is root-owned."""
    from backend.config import Settings

    fields = Settings.model_fields
    for name in ("engine_journal_dir", "beat_schedule"):
        default = fields[name].default
        assert isinstance(default, Path), name
        assert not default.is_absolute(), name
        assert "HYBRIDEX_" + name.upper() in image_env(), f"the image does not set {name}"


def config_map() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(K8S / "config" / "configmap.yaml")["data"]
    return data
