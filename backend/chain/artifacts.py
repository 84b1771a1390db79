"""Run-time access to the committed contract artifacts (no Node needed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@cache
def load(name: str) -> Artifact:
    ref = resources.files("backend.chain") / "artifacts" / f"{name}.json"
    if not ref.is_file():
        raise FileNotFoundError(f"no compiled artifact for contract {name!r}; run `make contracts`")
    doc = json.loads(ref.read_text())
    return Artifact(
        name=doc["contractName"],
        abi=doc["abi"],
        bytecode=doc["bytecode"],
        deployed_bytecode=doc["deployedBytecode"],
    )
