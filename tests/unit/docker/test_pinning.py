"""Builds are reproducible: hashed lock files, exact base images, versioned image tags."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.unit.docker.deployfiles import DOCKER, K8S, REPO, k8s_documents

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
RUNTIME_LOCK = REPO / "requirements.lock"
DEV_LOCK = REPO / "requirements-dev.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(\[[^\]]*\])?==([^\s;\\]+)")
# An exact version (3.11.11, v2.55.1, 15.10), optionally a variant, or a digest.
EXACT_TAG = re.compile(r"^[^:@\s]+:v?\d+\.\d+(\.\d+)?(-[a-z0-9.\-]+)?(@sha256:[0-9a-f]{64})?$")
DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


def locked(path: Path) -> dict[str, list[str]]:
    """name → hashes of each `name==version` entry of a pip lock file."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            current = str(canonicalize_name(m.group(1)))
            out[current] = []
        elif line.strip().startswith("--hash=") and current is not None:
            out[current].append(line.strip().removeprefix("--hash=").rstrip(" \\"))
        elif line and not line.startswith((" ", "#")):
            pytest.fail(f"{path.name}: not an exact pin: {line}")
    return out


def requirements(group: list[str]) -> set[str]:
    return {str(canonicalize_name(Requirement(r).name)) for r in group}


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_lock_pins_every_package_with_sha256_hashes(lock: Path) -> None:
    entries = locked(lock)
    assert len(entries) > 50
    for name, hashes in entries.items():
        assert hashes, f"{name} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name


def test_locks_cover_every_dependency_and_extra_in_pyproject() -> None:
    runtime = requirements(PYPROJECT["project"]["dependencies"])
    extras = set().union(
        *(requirements(g) for g in PYPROJECT["project"]["optional-dependencies"].values())
    )
    runtime_lock, dev_lock = locked(RUNTIME_LOCK), locked(DEV_LOCK)
    assert runtime - set(runtime_lock) == set()
    assert (runtime | extras) - set(dev_lock) == set()
    # The image and the development venv run the same versions of what they share.
    for name in runtime_lock:
        assert RUNTIME_LOCK.read_text().count(f"\n{name}==") <= 1
    dev_versions = {
        str(canonicalize_name(m.group(1))): m.group(3)
        for m in map(PIN.match, DEV_LOCK.read_text().splitlines())
        if m
    }
    for m in filter(None, map(PIN.match, RUNTIME_LOCK.read_text().splitlines())):
        assert dev_versions[str(canonicalize_name(m.group(1)))] == m.group(3), m.group(1)


def test_dockerfile_installs_dependencies_only_from_the_lock() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert any("--require-hashes -r requirements.lock" in line for line in installs)
    # Every other install takes the project alone.
    for line in installs:
        assert "--require-hashes" in line or "--no-deps" in line, line
    assert "COPY requirements.lock" in text


def test_make_setup_installs_dependencies_only_from_the_lock() -> None:
    text = (REPO / "Makefile").read_text()
    recipe = text.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "requirements-dev.lock" in recipe.splitlines()[0]  # a changed lock re-installs
    installs = [line for line in recipe.splitlines() if "pip install" in line]
    assert any("--require-hashes -r requirements-dev.lock" in line for line in installs)
    for line in installs:
        assert "--require-hashes" in line or "--no-deps" in line, line
    assert re.search(r"^lock:", text, re.M), "a target refreshes the lock"


def test_every_base_image_is_an_exact_version() -> None:
    froms = []
    for path in DOCKER.glob("*Dockerfile"):
        for line in path.read_text().splitlines():
            if line.startswith("FROM "):
                froms.append(line.split()[1])
    assert len(froms) >= 3
    for image in froms:
        assert EXACT_TAG.match(image) or DIGEST.match(image), image


def test_compose_and_kubernetes_run_versioned_images() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    images = [s["image"] for s in compose["services"].values() if "image" in s]
    images.append(compose["x-hybridex"]["image"])
    for _, doc in k8s_documents():
        spec = doc.get("spec", {})
        for section in (spec, spec.get("jobTemplate", {}).get("spec", {})):
            pod = section.get("template", {}).get("spec", {})
            images += [
                c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])
            ]
    assert len(images) > 8
    for image in images:
        assert EXACT_TAG.match(image) or DIGEST.match(image), image
        if image.split(":")[0] in ("hybridex", "hybridex-anvil"):
            assert image.split(":")[1] == VERSION, image
    for root in (K8S, K8S / "migrate"):  # the app and its migration: one version
        kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
        assert {"name": "hybridex", "newTag": VERSION} in kustomization["images"], root
