"""`hybridex dev` as a user runs it: a child process, read its output, Ctrl-C it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import Web3

from backend.chain.anvil import free_port, rpc_call
from backend.chain.exchange import ExchangeReader
from backend.devstack.chain import DEMO_TOKENS, DEV_EXIT_DELAY_BLOCKS, dev_accounts

pytestmark = pytest.mark.integration


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not printed; got:\n{''.join(seen)}")


def test_dev_starts_chain_and_tokens_then_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDEX_") or "TEST" in k}
    env["HYBRIDEX_DATABASE_URL"] = f"sqlite:///{tmp_path / 'dev.db'}"
    env["HYBRIDEX_API_PORT"] = str(free_port())
    env["HYBRIDEX_STREAM_URL"] = ""  # not the machine's shared NATS (backend/devstack/stream.py)
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.cli.main", "dev", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        out = read_until(proc, "Press Ctrl-C", timeout=120)
        url = f"http://127.0.0.1:{port}"
        assert f"RPC URL   {url}" in out
        assert "Chain id  31337" in out
        assert "Stream    off" in out
        w3 = Web3(Web3.HTTPProvider(url))
        exchange = re.search(r"Exchange  (0x[0-9a-fA-F]{40})", out)
        assert exchange, "Exchange address not printed"
        reader = ExchangeReader.at(w3, Web3.to_checksum_address(exchange.group(1)))
        assert reader.contract.functions.exitDelay().call() == DEV_EXIT_DELAY_BLOCKS
        for spec in DEMO_TOKENS:
            match = re.search(rf"{spec.symbol}\s+(0x[0-9a-fA-F]{{40}})", out)
            assert match, f"{spec.symbol} address not printed"
            token = w3.eth.contract(
                address=Web3.to_checksum_address(match.group(1)),
                abi=[
                    {
                        "name": "balanceOf",
                        "type": "function",
                        "stateMutability": "view",
                        "inputs": [{"name": "a", "type": "address"}],
                        "outputs": [{"name": "", "type": "uint256"}],
                    }
                ],
            )
            for account in dev_accounts():
                assert account in out
                assert token.functions.balanceOf(account).call() == (
                    spec.grant_units * 10**spec.decimals
                )
        assert (tmp_path / "dev.db").exists()

        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest
        assert "Stopped." in rest
        with pytest.raises(OSError, match="refused"):
            rpc_call(url, "eth_chainId", timeout=0.5)  # the anvil child is gone too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
