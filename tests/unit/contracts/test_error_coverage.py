"""Guard: every custom error in the Exchange ABI is asserted by at least one contract test."""

from __future__ import annotations

import re
from pathlib import Path

from backend.chain.artifacts import load

TESTS = Path(__file__).resolve().parents[2]
SOURCES = [
    *sorted((TESTS / "unit" / "contracts").glob("test_*.py")),
    *sorted((TESTS / "integration" / "contracts").glob("test_*.py")),
]
# Errors no call can reach: OpenZeppelin's ShortStrings errors fire only in the EIP712
# constructor for names longer than 31 bytes, and the domain name is the constant "Hybridex".
UNREACHABLE = {"StringTooLong", "InvalidShortString"}
ASSERTED = re.compile(
    r"""(?:expect_revert|expect_settle_revert)\(\s*"(\w+)"|name\s*==\s*"(\w+)"|,\s*"(\w+)"\)"""
)


def asserted_errors() -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        if path.name == Path(__file__).name:
            continue
        for match in ASSERTED.finditer(path.read_text()):
            found.update(g for g in match.groups() if g)
    return found


def test_every_custom_error_is_exercised() -> None:
    abi_errors = {item["name"] for item in load("Exchange").abi if item["type"] == "error"}
    missing = abi_errors - UNREACHABLE - asserted_errors()
    assert not missing, f"custom errors no test asserts: {sorted(missing)}"


def test_unreachable_list_is_current() -> None:
    abi_errors = {item["name"] for item in load("Exchange").abi if item["type"] == "error"}
    assert abi_errors >= UNREACHABLE
