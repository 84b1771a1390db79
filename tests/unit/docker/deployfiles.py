"""What the deployment files may refer to: CLI commands, settings, routes and metric names."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import typer.main
import yaml

from backend.cli.main import app
from backend.config import Settings

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
K8S = DOCKER / "k8s"
SETTING_PREFIX = "HYBRIDEX_"
METRIC = re.compile(r"\bhybridex_[a-z0-9_]+")
METRIC_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@cache
def cli_commands() -> frozenset[str]:
    """Every command path of `hybridex` ("api", "db upgrade", "markets add", …)."""
    root = typer.main.get_command(app)
    out: set[str] = set()

    def walk(cmd: Any, prefix: str) -> None:
        subcommands = getattr(cmd, "commands", None)  # a group (typer vendors its click)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            out.add(prefix)

    walk(root, "")
    return frozenset(out)


def hybridex_invocations(argv: list[str], entrypoint: list[str] | None) -> list[list[str]]:
    """The `hybridex …` command lines a container runs: its args (the image's entrypoint is
    `hybridex`) or the `hybridex` calls inside a `sh -c` script."""
    if entrypoint and entrypoint[0] in ("/bin/sh", "sh") and entrypoint[1:] == ["-c"]:
        calls = []
        for part in re.split(r"&&|;|\|\|", " ".join(argv)):
            words = shlex.split(part)
            if words and words[0] == "hybridex":
                calls.append(words[1:])
        return calls
    return [argv]


def command_path(args: list[str]) -> str:
    words = [a for a in args if not a.startswith("-")]
    for n in (2, 1):
        if " ".join(words[:n]) in cli_commands():
            return " ".join(words[:n])
    return " ".join(words)


def setting_names() -> set[str]:
    return {SETTING_PREFIX + name.upper() for name in Settings.model_fields}


def settings_from(env: dict[str, str]) -> Settings:
    """Validates values as the processes would read them (types, ranges, key rules)."""
    kwargs = {k.removeprefix(SETTING_PREFIX).lower(): v for k, v in env.items()}
    return Settings(**kwargs)


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


@cache
def defined_metrics() -> frozenset[str]:
    """Metric names the code registers (string literals `hybridex_…` in the packages)."""
    names: set[str] = set()
    for root in (REPO / "backend", REPO / "indexer"):
        for path in root.rglob("*.py"):
            names.update(METRIC.findall(path.read_text()))
    return frozenset(names)


def metric_is_defined(name: str) -> bool:
    known = defined_metrics()
    if name in known:
        return True
    for suffix in METRIC_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in known:
            return True
    return False


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every object of every manifest under docker/k8s (kustomizations aside)."""
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all_yaml(path):
            yield path, doc


# What of kustomize's Kustomization the sets use; anything else fails the renderer, so that a
# new feature is not silently ignored here while `kubectl apply -k` honours it.
KUSTOMIZE_FIELDS = {"apiVersion", "kind", "resources", "images"}


def render_kustomization(root: Path) -> list[dict[str, Any]]:
    """The objects `kubectl apply -k root` sends: resources (files or directories holding a
    kustomization) in order, then `images` overrides. A pure-Python subset of kustomize."""
    spec = load_yaml(root / "kustomization.yaml")
    unknown = set(spec) - KUSTOMIZE_FIELDS
    assert not unknown, f"{root}: the renderer does not know {sorted(unknown)}"
    assert spec["kind"] == "Kustomization", root
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = (root / entry).resolve()
        assert target.exists(), f"{root}: {entry} does not exist"
        if target.is_dir():
            docs += render_kustomization(target)
        else:
            docs += load_all_yaml(target)
    for image in spec.get("images", []):
        for doc in docs:
            for c in pod_containers(doc):
                name, _, _tag = c["image"].partition(":")
                if name == image["name"]:
                    new = image.get("newName", name) + ":" + image.get("newTag", _tag)
                    c["image"] = new + ("@" + image["digest"] if "digest" in image else "")
    ids = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(ids) == len(set(ids)), f"{root}: an object is listed twice"
    return docs


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    template = spec.get("template", {}).get("spec", {})
    return list(template.get("containers", []))


def runtime_stage() -> list[str]:
    """The final stage's instructions, continuation lines joined."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.rsplit("\nFROM ", 1)[1]
    return [line.strip() for line in final.splitlines() if line.strip() and line[0] != "#"]


def created_directories() -> dict[str, tuple[str, str]]:
    """directory → (owner, mode) of each `install -d` in the runtime stage."""
    out: dict[str, tuple[str, str]] = {}
    for line in runtime_stage():
        if not line.startswith("RUN "):
            continue
        for command in line.removeprefix("RUN ").split("&&"):
            words = shlex.split(command)
            if words[:2] != ["install", "-d"]:
                continue
            owner = words[words.index("-o") + 1]
            mode = words[words.index("-m") + 1]
            paths = [w for i, w in enumerate(words[2:], 2) if w[0] == "/" and words[i - 1] != "-m"]
            out.update(dict.fromkeys(paths, (owner, mode)))
    return out


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in runtime_stage():
        if line.startswith("ENV "):
            for word in shlex.split(line.removeprefix("ENV ")):
                key, _, value = word.partition("=")
                env[key] = value
    return env
