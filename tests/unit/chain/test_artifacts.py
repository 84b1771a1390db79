from __future__ import annotations

import shutil
from pathlib import Path

from backend.chain import build
from backend.chain.artifacts import load


def test_committed_artifacts_equal_a_fresh_compile() -> None:
    result = build.compile_contracts()
    assert build.stale_artifacts(result) == [], "run `make contracts` and commit the artifacts"


def test_stale_detection_sees_an_edited_source(tmp_path: Path) -> None:
    fresh = build.compile_contracts()
    copy = tmp_path / "artifacts"
    shutil.copytree(build.ARTIFACTS_DIR, copy)
    assert build.stale_artifacts(fresh, copy) == []
    # A source edit changes the manifest's source hash even when bytecode would not change.
    manifest = dict(fresh.artifacts[build.MANIFEST])
    manifest["sources"] = dict.fromkeys(manifest["sources"], "0" * 64)
    edited = build.BuildResult(fresh.compiler, {**fresh.artifacts, build.MANIFEST: manifest})
    assert build.stale_artifacts(edited, copy) == [build.MANIFEST]
    (copy / "Extra.json").write_text("{}")
    assert "Extra.json" in build.stale_artifacts(fresh, copy)


def test_compiler_settings_are_pinned() -> None:
    manifest = build.compile_contracts().artifacts[build.MANIFEST]
    assert manifest["evmVersion"] == "cancun"
    assert manifest["compiler"].startswith("solc-js 0.8.30")


def test_artifacts_load_without_node() -> None:
    token = load("DemoToken")
    assert token.bytecode.startswith("0x60")
    assert {e["name"] for e in token.abi if e["type"] == "function"} >= {"mint", "decimals"}
