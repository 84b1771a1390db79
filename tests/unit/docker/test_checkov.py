"""checkov over docker/: no failed check but those docs/deployment.md justifies one by one."""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from typing import Any

import pytest

from tests.unit.docker.deployfiles import DOCKER, REPO

# Its own virtualenv (`make setup`): its pins conflict with the runtime's.
CHECKOV = REPO / ".venv" / "checkov" / "bin" / "checkov"
DEPLOYMENT = REPO / "docs" / "deployment.md"
SECTION = "### Policy checks (checkov)"
ROW = re.compile(r"^\| `(CKV2?_[A-Z0-9_]+)` \| [^|]+ \| (.+) \|$")


@cache
def failed_checks() -> frozenset[tuple[str, str]]:
    """(check id, file) of every failed check, over every framework checkov runs on docker/."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make setup`")
    env = {**os.environ, "LOG_LEVEL": "ERROR"}
    out = subprocess.run(
        [str(CHECKOV), "--directory", str(DOCKER), "--output", "json", "--quiet", "--compact",
         "--skip-download"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr[-2000:]  # 1: some check failed
    reports: Any = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} >= {"kubernetes", "dockerfile"}
    return frozenset(
        (f["check_id"], f["file_path"]) for r in reports for f in r["results"]["failed_checks"]
    )


def justified() -> dict[str, str]:
    """check id → reason, from the table under SECTION in docs/deployment.md."""
    text = DEPLOYMENT.read_text()
    assert SECTION in text, f"docs/deployment.md has no {SECTION!r} section"
    body = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    rows = {m.group(1): m.group(2) for m in map(ROW.match, body.splitlines()) if m}
    assert rows, "the section lists no check"
    return rows


def test_checkov_finds_nothing_the_docs_do_not_justify() -> None:
    failed = failed_checks()
    reasons = justified()
    unjustified = sorted({(cid, path) for cid, path in failed if cid not in reasons})
    assert unjustified == [], "fix these, or justify them in docs/deployment.md"
    # Every justification is still needed: a fixed finding leaves the list.
    assert set(reasons) == {cid for cid, _ in failed}
    for cid, reason in reasons.items():
        assert len(reason.split()) >= 8, f"{cid}: a reason, not a label"


def test_fixed_findings_stay_fixed_and_are_not_justified_away() -> None:
    """What the manifests once failed (probes, security context, …) is neither back nor
    moved into the justified list."""
    fixed = {
        "CKV_K8S_8", "CKV_K8S_9",  # liveness / readiness probes
        "CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_28", "CKV_K8S_30", "CKV_K8S_31", "CKV_K8S_37",
        "CKV_K8S_38",  # security context, read-only root, capabilities, seccomp, token
        "CKV_K8S_21",  # the default namespace
        "CKV2_K8S_6",  # network policies
        "CKV_DOCKER_2",  # HEALTHCHECK
    }  # fmt: skip
    assert {cid for cid, _ in failed_checks()} & fixed == set()
    assert set(justified()) & fixed == set()
