"""docker/k8s without a cluster: every manifest against the Kubernetes API models, and the
rules a Hybridex deployment must keep (one engine, one indexer, probes, secrets)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import kubernetes_validate
import pytest

from backend.api.routes import info
from backend.config import ENGINE_ROLES
from tests.unit.docker.deployfiles import (
    K8S,
    cli_commands,
    command_path,
    containers,
    k8s_documents,
    pod_spec,
    render_kustomization,
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
    ("v1", "Namespace"): "V1Namespace",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
}
APP, MIGRATE, CONFIG = K8S, K8S / "migrate", K8S / "config"
# The oldest Kubernetes release the manifests are meant for, and the newest the schemas know.
K8S_VERSIONS = ("1.29.0", "1.33.0")
UID = 10001
# The engine port's clients: pod name → role (backend/engine/auth.py).
ENGINE_CLIENTS = {
    "hybridex-api": "api",
    "hybridex-indexer": "indexer",
    "hybridex-worker": "settlement",
}
# The set the operator edits before the first apply: refused until set, by every process.
CHANGE_ME = {
    "HYBRIDEX_FEE_RECIPIENT": "0x" + "fe" * 20,
    "HYBRIDEX_INDEXER_START_BLOCK": "21000000",
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


def rendered(root: Path) -> list[dict[str, Any]]:
    return render_kustomization(root)


def test_the_sets_render_every_manifest_but_the_secret_example() -> None:
    def key(d: dict[str, Any]) -> tuple[str, str]:
        return (d["kind"], d["metadata"]["name"])

    app, migrate = {key(d) for d in rendered(APP)}, {key(d) for d in rendered(MIGRATE)}
    files = {key(d) for p, d in k8s_documents() if p.name != "secret.example.yaml"}
    assert app | migrate == files
    assert {key(d) for d in rendered(CONFIG)} <= app


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("root", [APP, MIGRATE], ids=["app", "migrate"])
def test_rendered_objects_validate_against_the_kubernetes_schemas(root: Path, version: str) -> None:
    docs = rendered(root)
    assert docs
    for doc in docs:
        # strict: an unknown or misspelt field fails, as `kubectl apply --validate=strict`.
        kubernetes_validate.validate(doc, version, strict=True)
    for path, doc in k8s_documents():
        if path.name == "secret.example.yaml":
            kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_refuses_what_the_api_server_would() -> None:
    """The validator is strict enough to catch a misplaced securityContext field."""
    doc = deployments()["hybridex-api"]
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRoot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSIONS[0], strict=True)


@pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl (its built-in kustomize) is not installed",
)
@pytest.mark.parametrize("root", [APP, MIGRATE], ids=["app", "migrate"])
def test_the_renderer_agrees_with_kustomize(root: Path) -> None:
    import yaml

    out = subprocess.run(
        ["kubectl", "kustomize", str(root)], capture_output=True, text=True, check=True
    ).stdout
    theirs = sorted(yaml.safe_load_all(out), key=lambda d: (d["kind"], d["metadata"]["name"]))
    ours = sorted(rendered(root), key=lambda d: (d["kind"], d["metadata"]["name"]))
    assert ours == theirs


def test_migration_is_its_own_set_applied_before_the_app() -> None:
    """A Job's pod template is immutable: in the app set, the next `apply -k` with a new image
    would fail. The migration set holds only the Job (deleting it deletes nothing else), at
    the same image as the app."""
    app, migrate = rendered(APP), rendered(MIGRATE)
    assert not [d for d in app if d["kind"] in ("Job", "CronJob")]
    assert [d["kind"] for d in migrate] == ["Job"]
    job = migrate[0]
    assert containers(job)[0]["args"] == ["db", "upgrade"]
    images = {c["image"] for d in app for c in containers(d)}
    assert images == {containers(job)[0]["image"]}
    # It reads the settings the config set creates; that set comes with neither workload.
    config = {d["kind"] for d in rendered(CONFIG)}
    assert config == {"Namespace", "ConfigMap", "NetworkPolicy"}
    refs = {s["configMapRef"]["name"] for s in containers(job)[0]["envFrom"] if "configMapRef" in s}
    assert refs == {"hybridex-config"}
    deployment = (K8S.parent.parent / "docs" / "deployment.md").read_text()
    order = [deployment.index(f"kubectl apply -k docker/k8s{s}") for s in ("/config", "/migrate")]
    order.append(deployment.index("kubectl apply -k docker/k8s\n"))
    assert order == sorted(order), "docs/deployment.md: config, then migrate, then the app"
    assert "kubectl -n hybridex wait --for=condition=complete" in deployment


def test_single_writers_run_one_replica_and_never_overlap(
    docs: list[tuple[str, dict[str, Any]]],
) -> None:
    deployments = by_name(docs, "Deployment")
    for name in ("hybridex-engine", "hybridex-indexer", "hybridex-beat", "hybridex-relay"):
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
            # The CHANGE-ME settings stop every process until the operator sets them.
            for name, real in CHANGE_ME.items():
                assert env[name].startswith("CHANGE-ME"), name
                with pytest.raises(ValueError, match=name.removeprefix("HYBRIDEX_").lower()):
                    settings_from({**env, "HYBRIDEX_DATABASE_URL": "postgresql://h/db"})
                env[name] = real
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
        ("hybridex-relay", "HYBRIDEX_RELAY_METRICS_PORT"),
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


def deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered(APP) if d["kind"] == "Deployment"}


def workloads() -> list[dict[str, Any]]:
    return [d for d in rendered(APP) + rendered(MIGRATE) if d["kind"] in ("Deployment", "Job")]


def test_configmap_names_the_fee_account_and_the_indexer_start_block() -> None:
    from backend.matching.engine import FEE_ACCOUNT

    config = next(d for d in rendered(CONFIG) if d["kind"] == "ConfigMap")["data"]
    assert {"HYBRIDEX_FEE_RECIPIENT", "HYBRIDEX_INDEXER_START_BLOCK"} <= set(config)
    # Never the engine's built-in placeholder (refused by `hybridex engine`, or worse, taken).
    assert config["HYBRIDEX_FEE_RECIPIENT"].lower() != FEE_ACCOUNT.lower()
    assert config["HYBRIDEX_FEE_RECIPIENT"] != "0x" + "00" * 20
    assert config["HYBRIDEX_INDEXER_START_BLOCK"] != "0"
    text = (CONFIG / "configmap.yaml").read_text()
    for name in CHANGE_ME:
        comment = text.split(f"  {name}:")[0].rsplit("\n  HYBRIDEX_", 1)[-1]
        assert "#" in comment, f"{name}: say what to set it to"
    deployment = (K8S.parent.parent / "docs" / "deployment.md").read_text()
    assert "HYBRIDEX_FEE_RECIPIENT" in deployment
    assert "HYBRIDEX_INDEXER_START_BLOCK" in deployment


def test_every_container_is_locked_down() -> None:
    """Non-root uid 10001, read-only root, no privilege escalation, no capabilities, seccomp,
    no service-account token: what the "restricted" Pod Security Standard asks, and more."""
    assert len(workloads()) == 7
    for doc in workloads():
        name = doc["metadata"]["name"]
        pod = pod_spec(doc)
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == UID, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in containers(doc):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["runAsUser"] == UID, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
    namespace = next(d for d in rendered(CONFIG) if d["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == "restricted"
    assert {d["metadata"].get("namespace") for d in rendered(APP) if d["kind"] != "Namespace"} == {
        namespace["metadata"]["name"]
    }


# What each process writes, besides /tmp (the API's Prometheus multiprocess directory): the
# settings that name a path, and the volume kind that must back it.
WRITES = {
    "hybridex-engine": {"HYBRIDEX_ENGINE_JOURNAL_DIR": "persistentVolumeClaim"},
    "hybridex-beat": {"HYBRIDEX_BEAT_SCHEDULE": "emptyDir"},
}


def test_writable_paths_are_volumes_where_the_settings_point() -> None:
    config = next(d for d in rendered(CONFIG) if d["kind"] == "ConfigMap")["data"]
    for doc in workloads():
        name = doc["metadata"]["name"]
        volumes = {v["name"]: v for v in pod_spec(doc)["volumes"]}
        for c in containers(doc):
            mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
            assert "emptyDir" in mounts["/tmp"], f"{name}: /tmp on a read-only root"
            for setting, kind in WRITES.get(name, {}).items():
                path = Path(config[setting])
                directory = path if setting.endswith("_DIR") else path.parent
                assert kind in mounts.get(str(directory), {}), f"{name}: {setting} {directory}"
            assert set(mounts) == {"/tmp"} | {
                str(Path(config[s]) if s.endswith("_DIR") else Path(config[s]).parent)
                for s in WRITES.get(name, {})
            }, f"{name}: a mount nothing writes to"
    engine = pod_spec(deployments()["hybridex-engine"])
    assert engine["securityContext"]["fsGroup"] == UID, "the journal volume is uid 10001's"


def test_every_deployment_has_readiness_and_liveness_probes() -> None:
    found = deployments()
    assert set(found) == {
        "hybridex-api", "hybridex-engine", "hybridex-worker", "hybridex-beat", "hybridex-indexer",
        "hybridex-relay",
    }  # fmt: skip
    for name, doc in found.items():
        for c in containers(doc):
            assert "readinessProbe" in c, name
            assert "livenessProbe" in c, name
    beat = containers(found["hybridex-beat"])[0]
    for probe in ("readinessProbe", "livenessProbe"):
        command = beat[probe]["exec"]["command"]
        assert command == ["python", "-m", "backend.healthcheck", "beat"]


def test_network_policies_select_every_pod_and_open_only_its_ports() -> None:
    policies = [d for d in rendered(APP) if d["kind"] == "NetworkPolicy"]
    deny = next(p for p in policies if p["metadata"]["name"] == "hybridex-deny-ingress")
    assert "ingress" not in deny["spec"]
    for doc in workloads():
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert deny["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    engine = next(p for p in policies if p["metadata"]["name"] == "hybridex-engine")
    private = engine["spec"]["ingress"][0]
    assert private["ports"] == [{"port": 7700, "protocol": "TCP"}]
    assert private["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}
        for name in ENGINE_CLIENTS
    ]


def service_links(services: list[dict[str, Any]]) -> dict[str, str]:
    """The variables the kubelet injects for each Service of the namespace (docker links
    style) into pods that do not set `enableServiceLinks: false`."""
    env: dict[str, str] = {}
    for i, svc in enumerate(services):
        name = svc["metadata"]["name"].upper().replace("-", "_")
        ip = f"10.0.0.{i + 1}"
        ports = svc["spec"]["ports"]
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        env[f"{name}_PORT"] = f"tcp://{ip}:{ports[0]['port']}"
        for p in ports:
            env[f"{name}_SERVICE_PORT_{p['name'].upper()}"] = str(p["port"])
            base = f"{name}_PORT_{p['port']}_TCP"
            env |= {base: f"tcp://{ip}:{p['port']}", f"{base}_PROTO": "tcp",
                    f"{base}_PORT": str(p["port"]), f"{base}_ADDR": ip}  # fmt: skip
    return env


def test_no_pod_gets_service_variables_that_collide_with_settings() -> None:
    """Services named hybridex-api / hybridex-engine would inject HYBRIDEX_API_PORT=tcp://…
    into every pod: an unknown setting, or an invalid port, at start-up in production."""
    services = [d for d in rendered(APP) if d["kind"] == "Service"]
    links = service_links(services)
    known = setting_names()
    assert "HYBRIDEX_ENGINE_PORT" in links  # the hazard is real for these Service names
    assert {k for k in links if k.startswith("HYBRIDEX_")} - known
    for doc in workloads():
        assert pod_spec(doc)["enableServiceLinks"] is False, doc["metadata"]["name"]


def test_only_the_engines_clients_reach_its_port_each_with_its_own_key() -> None:
    docs = rendered(APP)
    deps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    (policy,) = [
        d for d in docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "hybridex-engine"
    ]  # fmt: skip
    engine_labels = deps["hybridex-engine"]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= engine_labels.items()
    admitted: set[str] = set()
    for rule in policy["spec"]["ingress"]:
        if {p["port"] for p in rule["ports"]} & {7700}:
            assert "from" in rule, "the engine port open to every pod"
            for peer in rule["from"]:
                selector = peer["podSelector"]["matchLabels"].items()
                admitted |= {
                    name for name, d in deps.items()
                    if selector <= d["spec"]["template"]["metadata"]["labels"].items()
                }  # fmt: skip
    assert admitted == set(ENGINE_CLIENTS)

    def key_secrets(name: str) -> set[str]:
        refs = {
            s["secretRef"]["name"]
            for c in pod_spec(deps[name])["containers"]
            for s in c.get("envFrom", [])
            if "secretRef" in s
        }
        return {r for r in refs if r.startswith("hybridex-engine-key-")}

    assert key_secrets("hybridex-engine") == {
        f"hybridex-engine-key-{r}" for r in ("api", "indexer", "settlement", "operator")
    }
    for name, role in ENGINE_CLIENTS.items():
        assert key_secrets(name) == {f"hybridex-engine-key-{role}"}, name
    for name in set(deps) - set(ENGINE_CLIENTS) - {"hybridex-engine"}:
        assert not key_secrets(name), name
