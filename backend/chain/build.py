"""Compile `contracts/src/**/*.sol` with the pinned solc-js and write the committed artifacts.

Build-time only (needs Node and `npm ci` in `contracts/`); at run time the package loads the
JSON artifacts through `backend.chain.artifacts` and never needs Node.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"
SOURCES_DIR = CONTRACTS_DIR / "src"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
MANIFEST = "_manifest.json"

# EVM target pinned explicitly: solc's default is newer than py-evm/anvil accept (SPEC §13).
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 1_000_000


class CompileError(RuntimeError):
    pass


@dataclass(frozen=True)
class BuildResult:
    compiler: str
    artifacts: dict[str, dict[str, Any]]
    """File name → JSON document, the manifest included."""


def _driver() -> Path:
    if not (CONTRACTS_DIR / "node_modules" / "solc").exists():
        raise CompileError(f"the pinned solc is missing: run `npm ci` in {CONTRACTS_DIR}")
    return CONTRACTS_DIR / "compile.cjs"


def source_files() -> list[Path]:
    return sorted(SOURCES_DIR.rglob("*.sol"))


def standard_json_input(files: list[Path]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {
            f.relative_to(CONTRACTS_DIR).as_posix(): {"content": f.read_text()} for f in files
        },
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def _run_solc(std_input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    driver = _driver()
    version = subprocess.run(
        ["node", str(driver), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    proc = subprocess.run(
        ["node", str(driver)],
        input=json.dumps(std_input),
        capture_output=True,
        text=True,
        cwd=CONTRACTS_DIR,
        check=False,
    )
    if proc.returncode != 0:
        raise CompileError(f"solcjs failed ({proc.returncode}): {proc.stderr.strip()}")
    out: dict[str, Any] = json.loads(proc.stdout)
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e["message"]) for e in errors))
    return version, out


def compile_contracts() -> BuildResult:
    files = source_files()
    if not files:
        raise CompileError(f"no Solidity sources under {SOURCES_DIR}")
    std_input = standard_json_input(files)
    version, out = _run_solc(std_input)
    artifacts: dict[str, dict[str, Any]] = {}
    own_sources = set(std_input["sources"])
    for source, contracts in sorted(out.get("contracts", {}).items()):
        if source not in own_sources:
            continue  # library code (OpenZeppelin) is not an artifact of ours
        for name, data in sorted(contracts.items()):
            bytecode = data["evm"]["bytecode"]["object"]
            artifacts[f"{name}.json"] = {
                "contractName": name,
                "sourceName": source,
                "abi": data["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
            }
    artifacts[MANIFEST] = {
        "compiler": f"solc-js {version}",
        "evmVersion": EVM_VERSION,
        "optimizerRuns": OPTIMIZER_RUNS,
        # Hash of every source byte, so any edit (even a comment) makes the artifacts stale.
        "sources": {
            f.relative_to(CONTRACTS_DIR).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in files
        },
        "contracts": sorted(k.removesuffix(".json") for k in artifacts),
    }
    return BuildResult(compiler=version, artifacts=artifacts)


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def write_artifacts(result: BuildResult, directory: Path = ARTIFACTS_DIR) -> list[Path]:
    """Writes the artifacts that changed (and removes stale ones); returns what it wrote."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = set(result.artifacts)
    for stale in directory.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    written = []
    for name, doc in result.artifacts.items():
        path = directory / name
        text = render(doc)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def stale_artifacts(result: BuildResult, directory: Path = ARTIFACTS_DIR) -> list[str]:
    """Names of artifacts whose committed text differs from `result` (missing or extra too)."""
    on_disk = {p.name for p in directory.glob("*.json")}
    diff = sorted(on_disk ^ set(result.artifacts))
    for name, doc in result.artifacts.items():
        path = directory / name
        if path.exists() and path.read_text() != render(doc):
            diff.append(name)
    return sorted(set(diff))


def main() -> None:
    result = compile_contracts()
    for path in write_artifacts(result):
        print(f"wrote {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
