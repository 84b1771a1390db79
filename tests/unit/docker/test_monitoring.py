"""Prometheus scrape config, alert rules and the Grafana dashboard refer to what exists."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.docker.deployfiles import (
    DOCKER,
    METRIC,
    env_file,
    load_yaml,
    metric_is_defined,
    settings_from,
)

PROMETHEUS = DOCKER / "prometheus"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "hybridex.json"


def alert_rules() -> list[dict[str, Any]]:
    doc = load_yaml(PROMETHEUS / "alerts.yml")
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_scrape_targets_are_the_ports_the_processes_serve() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }
    settings = settings_from(env_file(DOCKER / "hybridex.env"))
    assert targets == {
        "hybridex-api": f"api:{settings.api_port}",
        "hybridex-engine": f"engine:{settings.engine_metrics_port}",
        "hybridex-worker": f"worker:{settings.settlement_metrics_port}",
        "hybridex-indexer": f"indexer:{settings.indexer_metrics_port}",
        "hybridex-relay": f"relay:{settings.relay_metrics_port}",
    }
    compose = load_yaml(DOCKER / "compose.yaml")
    mounted = " ".join(compose["services"]["prometheus"]["volumes"])
    assert "/etc/prometheus/alerts.yml" in mounted
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_the_alerts_the_operators_need_exist() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "HybridexSettlementStuck",
        "HybridexIndexerLagging",
        "HybridexDeepReorg",
        "HybridexEngineDown",
        "HybridexEngineFramesRefused",
        "HybridexSettlementWorkerDown",
        "HybridexSettlementNotTicking",
        "HybridexOperatorBalanceLow",
        "HybridexStreamOutboxLag",
        "HybridexRelayDown",
    } <= names
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_alerts_and_panels_use_only_metrics_the_code_defines() -> None:
    exprs = [rule["expr"] for rule in alert_rules()] + dashboard_exprs()
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert len(used) >= 15
    unknown = sorted(name for name in used if not metric_is_defined(name))
    assert not unknown, f"no such metric in backend/ or indexer/: {unknown}"


def test_runbook_anchors_of_the_alerts_exist() -> None:
    from tests.unit.docker.deployfiles import REPO

    headings = [
        line.lstrip("#").strip()
        for line in (REPO / "docs" / "runbook.md").read_text().splitlines()
        if line.startswith("## ")
    ]
    anchors = {
        "".join(c for c in h.lower().replace(" ", "-") if c.isalnum() or c in "-_")
        for h in headings
    }
    for rule in alert_rules():
        link = rule["annotations"].get("runbook")
        if link:
            assert link.split("#", 1)[1] in anchors, link
