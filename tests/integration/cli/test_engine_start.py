"""`hybridex engine` refuses to start in production without the operator's own fee account
or without a real key for every client role of its port."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from backend.config import ENGINE_ROLES, dev_engine_key
from backend.matching.engine import FEE_ACCOUNT

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_engine(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDEX_")}
    # if the refusal were missing, the engine would start serving and the timeout would fail this
    base |= {
        "HYBRIDEX_ENGINE_PORT": str(free_port()),
        "HYBRIDEX_ENGINE_JOURNAL_DIR": str(tmp_path / "j"),
    }
    return subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "engine", "--feeds", "none"],
        cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("fee", [None, FEE_ACCOUNT, FEE_ACCOUNT.lower()])
def test_production_refuses_a_missing_or_placeholder_fee_account(
    tmp_path: Path, fee: str | None
) -> None:
    env = {} if fee is None else {"HYBRIDEX_FEE_RECIPIENT": fee}
    done = run_engine(tmp_path, **env)
    assert done.returncode == 2
    assert "HYBRIDEX_FEE_RECIPIENT" in done.stderr
    assert not (tmp_path / "j").exists()  # refused before it touched anything


def test_dev_mode_keeps_the_placeholder(tmp_path: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(
            [sys.executable, "-m", "backend.cli.main", "engine", "--feeds", "none", "--no-persist"],
            cwd=ROOT, capture_output=True, timeout=8, check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("HYBRIDEX_")}
            | {"HYBRIDEX_MODE": "dev", "HYBRIDEX_ENGINE_PORT": str(free_port()),
               "HYBRIDEX_ENGINE_JOURNAL_DIR": str(tmp_path / "j")},
        )  # fmt: skip


def test_production_refuses_to_start_without_every_role_key(tmp_path: Path) -> None:
    fee = {"HYBRIDEX_FEE_RECIPIENT": "0x1000000000000000000000000000000000000001"}
    keys = {f"HYBRIDEX_ENGINE_KEY_{r.upper()}": secrets.token_hex(32) for r in ENGINE_ROLES}
    for missing in ("HYBRIDEX_ENGINE_KEY_API", "HYBRIDEX_ENGINE_KEY_OPERATOR"):
        done = run_engine(tmp_path, **fee, **{k: v for k, v in keys.items() if k != missing})
        assert done.returncode == 2, done.stderr
        assert f"{missing} is not set" in done.stderr
        assert not (tmp_path / "j").exists()  # refused before it touched anything
    placeholder = run_engine(tmp_path, **fee, **keys | {"HYBRIDEX_ENGINE_KEY_INDEXER": "CHANGE-ME"})
    assert placeholder.returncode != 0
    assert "HYBRIDEX_ENGINE_KEY_INDEXER" in placeholder.stderr
    dev_key = run_engine(
        tmp_path, **fee, **keys | {"HYBRIDEX_ENGINE_KEY_API": dev_engine_key("api")}
    )
    assert dev_key.returncode != 0
    assert "publicly known development key" in dev_key.stderr
    assert not (tmp_path / "j").exists()
