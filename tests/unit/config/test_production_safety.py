"""Production refuses settings that are only safe on a development chain, and misspelt names."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from backend.config import DEV_PRIVATE_KEYS, Mode, Settings

FRESH_KEY = "0x" + "11" * 32
DEV_ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's account 0


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HYBRIDEX_") and not name.startswith("HYBRIDEX_TEST_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HYBRIDEX_CONFIRMATIONS": "0"}, "HYBRIDEX_CONFIRMATIONS=0 is unsafe in production"),
        ({"HYBRIDEX_CONFIRMATIONS": "2"}, r"use 3 to HYBRIDEX_REORG_WINDOW \(64\)"),
        (
            {"HYBRIDEX_CONFIRMATIONS": "70"},
            "HYBRIDEX_CONFIRMATIONS=70 is unsafe in production",
        ),
        (
            {"HYBRIDEX_REORG_WINDOW": "1", "HYBRIDEX_CONFIRMATIONS": "1"},
            "HYBRIDEX_CONFIRMATIONS=1 is unsafe",
        ),
        (
            {"HYBRIDEX_REORG_WINDOW": "16", "HYBRIDEX_CONFIRMATIONS": "12"},
            "HYBRIDEX_REORG_WINDOW=16 is unsafe in production: use at least 32",
        ),
        (
            {"HYBRIDEX_FEE_RECIPIENT": "0x" + "00" * 20},
            "HYBRIDEX_FEE_RECIPIENT is the zero address",
        ),
        ({"HYBRIDEX_FEE_RECIPIENT": DEV_ACCOUNT.lower()}, "publicly known development account"),
        ({"HYBRIDEX_OPERATOR_KEY": DEV_PRIVATE_KEYS[1]}, "publicly known development key"),
        ({"HYBRIDEX_OPERATOR_KEY": "CHANGE-ME"}, "HYBRIDEX_OPERATOR_KEY is not a 32-byte hex"),
        (
            {"HYBRIDEX_DATABASE_URL": "postgresql+psycopg://hybridex:CHANGE-ME@db/hybridex"},
            "HYBRIDEX_DATABASE_URL carries a placeholder",
        ),
        ({"HYBRIDEX_REDIS_URL": "redis://:password@redis:6379/0"}, "HYBRIDEX_REDIS_URL carries"),
        (
            {
                "HYBRIDEX_OPERATOR_KEYSTORE": "/k.json",
                "HYBRIDEX_OPERATOR_KEYSTORE_PASSWORD": "changeme",
            },
            "HYBRIDEX_OPERATOR_KEYSTORE_PASSWORD is a placeholder",
        ),
    ],
)
def test_production_refuses_unsafe_value_and_dev_accepts_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()
    monkeypatch.setenv("HYBRIDEX_MODE", "dev")
    Settings()


def test_production_accepts_safe_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDEX_CONFIRMATIONS", "3")
    monkeypatch.setenv("HYBRIDEX_REORG_WINDOW", "32")
    monkeypatch.setenv("HYBRIDEX_FEE_RECIPIENT", "0x" + "ab" * 20)
    monkeypatch.setenv("HYBRIDEX_OPERATOR_KEY", FRESH_KEY)
    monkeypatch.setenv("HYBRIDEX_DATABASE_URL", "postgresql+psycopg://hybridex:Xq7v9Lw2@db/hx")
    s = Settings()
    assert (s.confirmations, s.reorg_window) == (3, 32)
    assert Settings().mode is Mode.PRODUCTION  # the defaults themselves are safe


def test_unknown_variable_stops_production_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HYBRIDEX_CONFIRMATION", "3")
    with pytest.raises(
        ValidationError, match=r"unknown setting HYBRIDEX_CONFIRMATION \(did you mean "
        "HYBRIDEX_CONFIRMATIONS"
    ):  # fmt: skip
        Settings()
    monkeypatch.setenv("HYBRIDEX_ZZZ", "1")  # every unknown name at once, suggestion or not
    with pytest.raises(ValidationError, match=r"HYBRIDEX_CONFIRMATIONS\?\), HYBRIDEX_ZZZ \["):
        Settings()


def test_kubernetes_service_variables_are_named_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDEX_ENGINE_SERVICE_HOST", "10.0.0.2")
    monkeypatch.setenv("HYBRIDEX_ENGINE_PORT_7700_TCP_ADDR", "10.0.0.2")
    hint = r" \(a Kubernetes Service variable: set `enableServiceLinks: false`\)"
    expected = f"HYBRIDEX_ENGINE_PORT_7700_TCP_ADDR{hint}, HYBRIDEX_ENGINE_SERVICE_HOST{hint}"
    with pytest.raises(ValidationError, match=expected):
        Settings()


def test_unknown_variable_only_warns_in_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDEX_MODE", "dev")
    monkeypatch.setenv("HYBRIDEX_RPC_ULR", "http://127.0.0.1:8545")
    with capture_logs() as logs:
        s = Settings()
    assert s.mode is Mode.DEV
    assert {
        "event": "unknown_setting",
        "name": "HYBRIDEX_RPC_ULR",
        "suggestion": "HYBRIDEX_RPC_URL",
        "log_level": "warning",
    } in logs


def test_test_and_bench_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDEX_TEST_SOMETHING", "1")
    monkeypatch.setenv("HYBRIDEX_BENCH_PG_ADMIN_URL", "postgresql://x@h/db")
    Settings()


def test_every_variable_the_tree_names_is_a_setting() -> None:
    """Code, docker/ and docs name only real settings (or the test/bench variables)."""
    import re
    from pathlib import Path

    from backend.config import RESERVED_PREFIXES

    repo = Path(__file__).resolve().parents[3]
    known = {"HYBRIDEX_" + name.upper() for name in Settings.model_fields}
    found: dict[str, Path] = {}
    for top in ("backend", "indexer", "docker", "docs", "bench", "tests", "README.md", "Makefile"):
        root = repo / top
        for path in [root] if root.is_file() else root.rglob("*"):
            if path == Path(__file__).resolve():
                continue  # this file misspells names on purpose
            if {"target", "node_modules", "__pycache__"} & set(path.relative_to(repo).parts):
                continue  # build output (cargo's build scripts are files without a suffix)
            if path.is_file() and path.suffix in {"", ".py", ".md", ".yaml", ".yml", ".env"}:
                for name in re.findall(r"\bHYBRIDEX_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
                    found.setdefault(name, path)
    unknown = {
        name: str(path.relative_to(repo))
        for name, path in found.items()
        if name not in known and not name.startswith(RESERVED_PREFIXES)
    }
    assert len(found) > 40
    assert unknown == {}
