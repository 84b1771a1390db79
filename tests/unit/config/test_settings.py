from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import ValidationError

from backend.config import DEV_MNEMONIC, DEV_PRIVATE_KEYS, Mode, Settings
from backend.domain.errors import ConfigurationError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
FRESH_KEY = "0x" + "11" * 32


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("HYBRIDEX_") and not name.startswith("HYBRIDEX_TEST_"):
            monkeypatch.delenv(name)


def test_defaults_are_production_with_sqlite_file() -> None:
    s = Settings()
    assert s.mode is Mode.PRODUCTION
    assert s.database_url.startswith("sqlite:///")
    assert s.confirmations > 0


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDEX_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("HYBRIDEX_CONFIRMATIONS", "3")
    monkeypatch.setenv("HYBRIDEX_EXCHANGE_ADDRESS", "0x5fbdb2315678afecb367f032d93f642f64180aa3")
    s = Settings()
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.confirmations == 3
    assert s.exchange_address == "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_rejects_malformed_address_and_unknown_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="not an address"):
        Settings(exchange_address="0x1234")
    with pytest.raises(ValidationError):
        Settings(confirmations=-1)


@pytest.mark.parametrize("key", [DEV_PRIVATE_KEYS[0], DEV_PRIVATE_KEYS[3].removeprefix("0x")])
def test_refuses_dev_operator_key_outside_dev_mode(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("HYBRIDEX_OPERATOR_KEY", key)
    with pytest.raises(ValidationError, match="publicly known development key"):
        Settings()
    monkeypatch.setenv("HYBRIDEX_MODE", "dev")
    assert Settings().operator_private_key() == key


def test_production_without_key_refuses_to_pick_one() -> None:
    with pytest.raises(ConfigurationError, match="no operator key"):
        Settings().operator_private_key()
    assert Settings(mode=Mode.DEV).operator_private_key() == DEV_PRIVATE_KEYS[0]


def test_operator_key_from_keystore(tmp_path: Path) -> None:
    import json

    path = tmp_path / "operator.json"
    path.write_text(json.dumps(Account.encrypt(FRESH_KEY, "pw", iterations=2)))
    s = Settings(operator_keystore=path, operator_keystore_password="pw")  # type: ignore[arg-type]
    assert s.operator_private_key() == FRESH_KEY
    with pytest.raises(ValidationError, match="only one"):
        Settings(operator_keystore=path, operator_key=FRESH_KEY)  # type: ignore[arg-type]


def test_secret_never_appears_in_repr() -> None:
    s = Settings(operator_key=FRESH_KEY)  # type: ignore[arg-type]
    assert FRESH_KEY[2:] not in repr(s)
    assert FRESH_KEY[2:] not in str(s.model_dump())


def test_dev_keys_are_those_of_the_standard_mnemonic() -> None:
    Account.enable_unaudited_hdwallet_features()
    for i, key in enumerate(DEV_PRIVATE_KEYS):
        derived = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        assert "0x" + derived.key.hex().removeprefix("0x") == key


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"`(HYBRIDEX_[A-Z0-9_]+)`", DOCS.read_text()))
    expected = {f"HYBRIDEX_{name.upper()}" for name in Settings.model_fields}
    assert expected - documented == set(), "undocumented settings"
    stale = {d for d in documented - expected if not d.startswith("HYBRIDEX_TEST_")}
    assert stale == set(), "documented settings that do not exist"
