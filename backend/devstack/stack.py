"""Start what exists of the stack on the embedded default and tear it down on Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

import backend.db.migrate as migrate
from backend.chain.anvil import ANVIL_CHAIN_ID, DEV_RPC_PORT, Anvil
from backend.config import DEV_PRIVATE_KEYS, Mode, Settings
from backend.devstack.chain import (
    DEV_EXIT_DELAY_BLOCKS,
    DeployedToken,
    deploy_demo_tokens,
    deploy_dev_exchange,
    dev_accounts,
)

DEV_DB_PATH = Path("var/hybridex-dev.db")


@dataclass
class DevStack:
    """Everything `hybridex dev` started, for printing and for tear-down."""

    settings: Settings
    rpc_url: str
    chain_id: int
    exchange_address: str = ""
    tokens: list[DeployedToken] = field(default_factory=list)
    started: list[str] = field(default_factory=list)


def dev_settings() -> Settings:
    """Settings from the environment, forced into dev mode with the embedded defaults."""
    overrides: dict[str, object] = {"mode": Mode.DEV}
    if "HYBRIDEX_DATABASE_URL" not in os.environ:
        DEV_DB_PATH.parent.mkdir(parents=True, exist_ok=True)
        overrides["database_url"] = f"sqlite:///{DEV_DB_PATH}"
    if "HYBRIDEX_CONFIRMATIONS" not in os.environ:
        overrides["confirmations"] = 0
    return Settings(**overrides)  # type: ignore[arg-type]


def start(resources: ExitStack, port: int = DEV_RPC_PORT) -> DevStack:
    settings = dev_settings()
    started = []

    migrate.upgrade(settings.database_url)
    started.append(
        f"database   {settings.database_url} (migrated to {migrate.current(settings.database_url)})"
    )

    if "HYBRIDEX_RPC_URL" in os.environ:
        rpc_url = settings.rpc_url
        started.append(f"chain      {rpc_url} (external)")
    else:
        node = resources.enter_context(Anvil(port=port))
        rpc_url = node.url
        started.append(
            f"chain      anvil at {rpc_url} (pid {node.process.pid if node.process else '?'})"
        )

    w3 = Web3(Web3.HTTPProvider(rpc_url))
    stack = DevStack(settings=settings, rpc_url=rpc_url, chain_id=w3.eth.chain_id, started=started)
    stack.exchange_address = deploy_dev_exchange(w3)
    stack.tokens = deploy_demo_tokens(w3)
    return stack


def describe(stack: DevStack) -> str:
    lines = ["Hybridex dev stack is up.", "", "Started:"]
    lines += [f"  {s}" for s in stack.started]
    lines += ["", f"RPC URL   {stack.rpc_url}", f"Chain id  {stack.chain_id}"]
    if stack.chain_id == ANVIL_CHAIN_ID:
        lines.append("          (MetaMask: add a network with this RPC URL and chain id)")
    lines += [
        "",
        f"Exchange  {stack.exchange_address}",
        f"          (operator, admin and fee recipient: dev account 0; "
        f"exit delay {DEV_EXIT_DELAY_BLOCKS} blocks)",
        "",
        "Demo tokens:",
    ]
    lines += [
        f"  {t.spec.symbol:<5} {t.address}  ({t.spec.decimals} decimals)" for t in stack.tokens
    ]
    lines += ["", "Funded dev accounts (standard test mnemonic; never use on a real chain):"]
    for address, key in zip(dev_accounts(), DEV_PRIVATE_KEYS, strict=True):
        lines.append(f"  {address}  key {key}")
    lines += [
        "",
        "Not started yet: API, engine, indexer and settlement worker.",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def run_until_interrupted(echo: Callable[[str], None], port: int = DEV_RPC_PORT) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ExitStack() as resources:
        stack = start(resources, port=port)
        echo(describe(stack))
        stop.wait()
        echo("Stopping…")
    echo("Stopped.")
