"""docker/k8s without a cluster: every manifest against the Kubernetes API models, and the
rules a Hybridex deployment must keep (one engine, one indexer, probes, secrets)."""

from __future__ import annotations

from typing import Any

import kubernetes.client as k8s
import pytest

from backend.api.routes import info
from backend.config import ENGINE_ROLES
from tests.unit.docker.deployfiles import (
    K8S,
    cli_commands,
    command_path,
    containers,
    k8s_documents,
    load_yaml,
    setting_names,
    settings_from,
)

MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
}
ENGINE_CLIENTS = {
    "hybridex-api": "api",
    "hybridex-indexer": "indexer",
    "hybridex-worker": "settlement",
}
SCALARS = {"str": str, "int": int, "bool": bool}


def check_model(value: Any, type_name: str, where: str) -> None:
    """Unknown fields and wrong shapes fail, as the API server's validation would."""
    if type_name.startswith("list["):
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            check_model(item, type_name[5:-1], f"{where}[{i}]")
    elif type_name.startswith(("dict(", "dict[")):
        assert isinstance(value, dict), where
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            check_model(item, inner, f"{where}.{key}")
    elif type_name in SCALARS:
        assert isinstance(value, SCALARS[type_name]), f"{where}: {value!r} is not {type_name}"
    elif type_name == "object":
        assert isinstance(value, str | int | dict | list), where  # IntOrString, quantities
    else:
        model = getattr(k8s, type_name)
        assert isinstance(value, dict), f"{where}: expected {type_name}"
        by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
        for key, item in value.items():
            assert key in by_json, f"{where}: {type_name} has no field {key!r}"
            check_model(item, model.openapi_types[by_json[key]], f"{where}.{key}")


@pytest.fixture(scope="module")
def docs() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path, doc in k8s_documents()]


def by_name(docs: list[tuple[str, dict[str, Any]]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in docs if d["kind"] == kind}


def test_every_manifest_is_a_valid_kubernetes_object(
    docs: list[tuple[str, dict[str, Any]]],
) -> None:
    assert docs
    for file, doc in docs:
        model = MODELS[(doc["apiVersion"], doc["kind"])]
        check_model(doc, model, f"{file}:{doc['kind']}/{doc['metadata']['name']}")
        # Required fields: the client's models refuse to be built without them.
        k8s.ApiClient()._ApiClient__deserialize(doc, model)  # type: ignore[attr-defined]


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == files


def test_single_writers_run_one_replica_and_never_overlap(
    docs: list[tuple[str, dict[str, Any]]],
) -> None:
    deployments = by_name(docs, "Deployment")
    for name in ("hybridex-engine", "hybridex-indexer", "hybridex-beat"):
        spec = deployments[name]["spec"]
        assert spec["replicas"] == 1, name
        assert spec["strategy"]["type"] == "Recreate", f"{name}: a rolling update runs two"
    assert deployments["hybridex-api"]["spec"]["replicas"] >= 2
    assert deployments["hybridex-worker"]["spec"]["replicas"] >= 2


def test_containers_run_cli_commands_with_valid_settings(
    docs: list[tuple[str, dict[str, Any]]],
) -> None:
    config = by_name(docs, "ConfigMap")["hybridex-config"]["data"]
    secrets = {d["metadata"]["name"]: d["stringData"] for _, d in docs if d["kind"] == "Secret"}
    known = setting_names()
    for _, doc in docs:
        for c in containers(doc):
            assert command_path(c["args"]) in cli_commands(), c["args"]
            env: dict[str, str] = {}
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(config)
                else:
                    env.update(secrets[source["secretRef"]["name"]])
            env.update({e["name"]: e["value"] for e in c.get("env", [])})
            assert set(env) <= known, set(env) - known
            # The example Secret's placeholders are refused in production, so it cannot be
            # applied unedited; with real values the rest of the settings must be valid.
            if env.pop("HYBRIDEX_OPERATOR_KEY", None) is not None:
                with pytest.raises(ValueError, match="HYBRIDEX_OPERATOR_KEY"):
                    settings_from({**env, "HYBRIDEX_OPERATOR_KEY": secrets["hybridex-operator"][
                        "HYBRIDEX_OPERATOR_KEY"]})  # fmt: skip
            for role in ENGINE_ROLES:  # checked in this order, before the database URL
                if (name := f"HYBRIDEX_ENGINE_KEY_{role.upper()}") in env:
                    with pytest.raises(ValueError, match=name):
                        settings_from(env)
                    env[name] = "ab" * 32
            if "CHANGE-ME" in env.get("HYBRIDEX_DATABASE_URL", ""):
                with pytest.raises(ValueError, match="HYBRIDEX_DATABASE_URL"):
                    settings_from(env)
                env["HYBRIDEX_DATABASE_URL"] = env["HYBRIDEX_DATABASE_URL"].replace(
                    "CHANGE-ME", "k8s-secret-value"
                )
            settings_from(env)
            assert "requests" in c.get("resources", {}), c["name"]
    for _, doc in docs:
        for c in containers(doc):
            refs = {s["secretRef"]["name"] for s in c.get("envFrom", []) if "secretRef" in s}
            if "hybridex-operator" in refs:
                assert c["name"] == "worker", "only the worker signs with the operator key"


def test_probes_point_at_real_endpoints_and_ports(docs: list[tuple[str, dict[str, Any]]]) -> None:
    deployments = by_name(docs, "Deployment")
    config = by_name(docs, "ConfigMap")["hybridex-config"]["data"]
    api = containers(deployments["hybridex-api"])[0]
    routes = {getattr(r, "path", "") for r in info.router.routes}
    assert api["livenessProbe"]["httpGet"]["path"] == "/health" in routes
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready" in routes
    named = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert named[api["readinessProbe"]["httpGet"]["port"]] == 8000
    engine = containers(deployments["hybridex-engine"])[0]
    ports = {p["name"]: p["containerPort"] for p in engine["ports"]}
    assert ports[engine["startupProbe"]["tcpSocket"]["port"]] == int(config["HYBRIDEX_ENGINE_PORT"])
    for name, setting in (
        ("hybridex-worker", "HYBRIDEX_SETTLEMENT_METRICS_PORT"),
        ("hybridex-indexer", "HYBRIDEX_INDEXER_METRICS_PORT"),
    ):
        c = containers(deployments[name])[0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports[c["livenessProbe"]["httpGet"]["port"]] == int(config[setting])


def test_disruption_budgets_select_existing_deployments(
    docs: list[tuple[str, dict[str, Any]]],
) -> None:
    deployments = by_name(docs, "Deployment")
    budgets = by_name(docs, "PodDisruptionBudget")
    assert set(budgets) == {"hybridex-api", "hybridex-worker"}
    for name, pdb in budgets.items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pdb["spec"]["minAvailable"] < deployments[name]["spec"]["replicas"]


def test_only_the_engines_clients_reach_its_port_each_with_its_own_key(
    docs: list[tuple[str, dict[str, Any]]],
) -> None:
    deployments = by_name(docs, "Deployment")
    (policy,) = by_name(docs, "NetworkPolicy").values()
    engine_labels = deployments["hybridex-engine"]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= engine_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    engine_port = {7700}
    admitted = set()
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule["ports"]}
        if ports & engine_port:
            assert "from" in rule, "the engine port open to every pod"
            for peer in rule["from"]:
                selector = peer["podSelector"]["matchLabels"].items()
                admitted |= {
                    name for name, d in deployments.items()
                    if selector <= d["spec"]["template"]["metadata"]["labels"].items()
                }  # fmt: skip
    assert admitted == set(ENGINE_CLIENTS)

    def key_secrets(name: str) -> set[str]:
        c = containers(deployments[name])[0]
        refs = {s["secretRef"]["name"] for s in c.get("envFrom", []) if "secretRef" in s}
        return {r for r in refs if r.startswith("hybridex-engine-key-")}

    assert key_secrets("hybridex-engine") == {
        f"hybridex-engine-key-{r}" for r in ("api", "indexer", "settlement", "operator")
    }
    for name, role in ENGINE_CLIENTS.items():
        assert key_secrets(name) == {f"hybridex-engine-key-{role}"}, name
    for name in set(deployments) - set(ENGINE_CLIENTS) - {"hybridex-engine"}:
        assert not key_secrets(name), name
