"""End to end, as a newcomer runs it: `hybridex dev` in one process, `hybridex demo` in another.

Then the escape hatch with the operator gone: the dev stack is SIGKILLed and a trader takes
their settled proceeds out of the Exchange alone (`requestExit`, wait, `exitWithdraw`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from backend.chain.anvil import Anvil, free_port, rpc_call
from backend.chain.artifacts import load
from backend.chain.deploy import Sender
from backend.config import DEV_PRIVATE_KEYS
from backend.devstack.chain import DEV_EXIT_DELAY_BLOCKS
from tests.integration.cli.test_dev_stack import read_until

pytestmark = pytest.mark.integration

SELLER_KEY = DEV_PRIVATE_KEYS[1]  # the demo's seller: ends with USDC inside the Exchange


def _env(tmp_path: Path, api_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDEX_") or "TEST" in k}
    env.update(
        HYBRIDEX_DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}",
        HYBRIDEX_API_PORT=str(api_port),
        HYBRIDEX_LOG_LEVEL="WARNING",
        # No event stream unless a test gives one: `hybridex dev` would otherwise publish to
        # the machine's shared NATS (backend/devstack/stream.py).
        HYBRIDEX_STREAM_URL="",
    )
    env.update(extra)  # may override the database
    return env


class DevStack:
    def __init__(self, tmp_path: Path, rpc_port: int, chain: str = "anvil", **env: str) -> None:
        self.api_port = free_port()
        self.rpc_port = rpc_port
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "backend.cli.main",
                "dev",
                "--port",
                str(rpc_port),
                "--chain",
                chain,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(tmp_path, self.api_port, **env),
            cwd=tmp_path,
        )
        self.banner = read_until(self.proc, "Press Ctrl-C", timeout=120)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def rpc(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    def demo(self, tmp_path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "backend.cli.main", "demo", "--api", self.api, "--rpc",
             self.rpc, "--timeout", "60"], check=False,
            capture_output=True, text=True, timeout=400, cwd=tmp_path,
            env=_env(tmp_path, self.api_port),
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def external_anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.mark.parametrize("chain", ["anvil", "eth-tester"])
def test_dev_stack_runs_the_demo_round_trip_and_stops_on_ctrl_c(tmp_path: Path, chain: str) -> None:
    stack = DevStack(tmp_path, free_port(), chain)
    try:
        assert f"API       {stack.api}/v1" in stack.banner
        assert re.search(r"WETH-USDC\s+tick 10000\s+lot 100000000000000", stack.banner)
        result = stack.demo(tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        for marker in ("fill is matched", "fill is settled", "Round trip complete"):
            assert marker in out, out
        assert re.search(r"batch 1, tx 0x[0-9a-f]{64}, block \d+", out), out
        stack.proc.send_signal(signal.SIGINT)
        rest, _ = stack.proc.communicate(timeout=60)
        assert stack.proc.returncode == 0, rest
        assert "Stopped." in rest
        with pytest.raises(OSError, match="refused"):
            rpc_call(stack.rpc, "eth_chainId", timeout=0.5)  # its chain is gone too
    finally:
        stack.stop()


def test_trader_exits_with_settled_proceeds_while_the_operator_is_gone(
    tmp_path: Path, external_anvil: Anvil
) -> None:
    stack = DevStack(tmp_path, external_anvil.port, HYBRIDEX_RPC_URL=external_anvil.url)
    try:
        result = stack.demo(tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        exchange_address = re.search(r"Exchange  (0x[0-9a-fA-F]{40})", stack.banner)
        usdc_address = re.search(r"USDC\s+(0x[0-9a-fA-F]{40})", stack.banner)
        assert exchange_address
        assert usdc_address
    finally:
        stack.stop()  # SIGKILL: API, engine, indexer and settlement are gone; the chain stays

    w3 = Web3(Web3.HTTPProvider(external_anvil.url))
    exchange = w3.eth.contract(
        address=Web3.to_checksum_address(exchange_address.group(1)), abi=load("Exchange").abi
    )
    usdc = w3.eth.contract(
        address=Web3.to_checksum_address(usdc_address.group(1)), abi=load("DemoToken").abi
    )
    seller = Sender.from_key(w3, SELLER_KEY)
    inside = exchange.functions.balanceOf(seller.address, usdc.address).call()
    assert inside > 0, "the demo's settled sale left the seller USDC in the Exchange"
    wallet = usdc.functions.balanceOf(seller.address).call()

    seller.transact(exchange.functions.requestExit())
    rpc_call(external_anvil.url, "anvil_mine", [hex(DEV_EXIT_DELAY_BLOCKS + 1)])
    seller.transact(exchange.functions.exitWithdraw(usdc.address))

    assert exchange.functions.balanceOf(seller.address, usdc.address).call() == 0
    assert usdc.functions.balanceOf(seller.address).call() == wallet + inside
