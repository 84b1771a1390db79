"""`hybridex engine` refuses to start in production without the operator's own fee account."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

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
