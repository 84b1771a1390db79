"""`hybridex dev`: chain, contracts, demo markets and every process's modules; Ctrl-C stops all.

With its own chain, the chain is new on every start, so the dev database and journal of an
earlier run (which describe another chain) are cleared first. With `HYBRIDEX_RPC_URL` /
`HYBRIDEX_DATABASE_URL` / `HYBRIDEX_ENGINE_JOURNAL_DIR` set, it uses those and clears
nothing: give it a fresh database and journal when it starts its own chain.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
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
from backend.devstack.evm_rpc import EthTesterNode
from backend.devstack.markets import DemoMarket, demo_markets
from backend.devstack.services import Services, serve_until, start_services
from backend.devstack.stream import dev_stream_url
from backend.logging import configure_logging
from backend.redact import redact_url

DEV_DB_PATH = Path("var/hybridex-dev.db")
DEV_JOURNAL_DIR = Path("var/dev-journal")


@dataclass
class DevStack:
    """Everything `hybridex dev` started, for printing and for tear-down."""

    settings: Settings
    rpc_url: str
    chain_id: int
    exchange_address: str = ""
    tokens: list[DeployedToken] = field(default_factory=list)
    markets: list[DemoMarket] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    services: Services | None = None


def dev_settings() -> Settings:
    """Settings from the environment, forced into dev mode with the embedded defaults."""
    overrides: dict[str, object] = {"mode": Mode.DEV}
    if "HYBRIDEX_DATABASE_URL" not in os.environ:
        DEV_DB_PATH.parent.mkdir(parents=True, exist_ok=True)
        overrides["database_url"] = f"sqlite:///{DEV_DB_PATH}"
    if "HYBRIDEX_CONFIRMATIONS" not in os.environ:
        overrides["confirmations"] = 0
    redis_url = os.environ.get("HYBRIDEX_REDIS_URL", "redis://127.0.0.1:6379/0")
    overrides["stream_url"] = dev_stream_url(redis_url)
    return Settings(**overrides)  # type: ignore[arg-type]


def _clear_previous_run() -> None:
    """A new anvil chain makes an earlier run's database and journal meaningless."""
    if "HYBRIDEX_DATABASE_URL" not in os.environ:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{DEV_DB_PATH}{suffix}").unlink(missing_ok=True)
    if "HYBRIDEX_ENGINE_JOURNAL_DIR" not in os.environ:
        shutil.rmtree(DEV_JOURNAL_DIR, ignore_errors=True)


def start(resources: ExitStack, port: int = DEV_RPC_PORT, chain: str = "anvil") -> DevStack:
    """Database, chain, Exchange and demo tokens (the services start in `run_until_interrupted`)."""
    settings = dev_settings()
    started = []
    if "HYBRIDEX_RPC_URL" not in os.environ:
        _clear_previous_run()

    migrate.upgrade(settings.database_url)
    started.append(
        f"database   {redact_url(settings.database_url)} "
        f"(migrated to {migrate.current(settings.database_url)})"
    )

    if "HYBRIDEX_RPC_URL" in os.environ:
        rpc_url = settings.rpc_url
        started.append(f"chain      {redact_url(rpc_url)} (external)")
    elif chain == "eth-tester":
        tester = resources.enter_context(EthTesterNode(port=port))
        rpc_url = tester.url
        started.append(f"chain      eth-tester (py-evm, in this process) at {rpc_url}")
    else:
        node = resources.enter_context(Anvil(port=port))
        rpc_url = node.url
        started.append(
            f"chain      anvil at {rpc_url} (pid {node.process.pid if node.process else '?'})"
        )

    w3 = Web3(Web3.HTTPProvider(rpc_url))
    stack = DevStack(settings=settings, rpc_url=rpc_url, chain_id=w3.eth.chain_id, started=started)
    stack.exchange_address = deploy_dev_exchange(w3, cancel_delay_s=settings.cancel_delay_s)
    stack.tokens = deploy_demo_tokens(w3)
    stack.markets = demo_markets(stack.tokens)
    return stack


def service_settings(stack: DevStack) -> Settings:
    """The dev settings completed with what was just deployed."""
    values = stack.settings.model_dump()
    values.update(
        rpc_url=stack.rpc_url,
        chain_id=stack.chain_id,
        exchange_address=stack.exchange_address,
        fee_recipient=stack.settings.fee_recipient or dev_accounts(1)[0],
    )
    if "HYBRIDEX_ENGINE_JOURNAL_DIR" not in os.environ:
        values["engine_journal_dir"] = DEV_JOURNAL_DIR
    return Settings(**values)


def describe(stack: DevStack) -> str:
    lines = ["Hybridex dev stack is up.", "", "Started:"]
    lines += [f"  {s}" for s in stack.started]
    lines += ["", f"RPC URL   {redact_url(stack.rpc_url)}", f"Chain id  {stack.chain_id}"]
    if stack.chain_id == ANVIL_CHAIN_ID:
        lines.append("          (MetaMask: add a network with this RPC URL and chain id)")
    lines += [
        "",
        f"Exchange  {stack.exchange_address}",
        f"          (operator, admin and fee recipient: dev account 0; "
        f"exit delay {DEV_EXIT_DELAY_BLOCKS} blocks, on-chain cancel delay "
        f"{stack.settings.cancel_delay_s} s)",
        "",
        "Demo tokens:",
    ]
    lines += [
        f"  {t.spec.symbol:<5} {t.address}  ({t.spec.decimals} decimals)" for t in stack.tokens
    ]
    lines += ["", "Funded dev accounts (standard test mnemonic; never use on a real chain):"]
    for address, key in zip(dev_accounts(), DEV_PRIVATE_KEYS, strict=True):
        lines.append(f"  {address}  key {key}")
    lines += ["", "Markets:"]
    lines += [
        f"  {m.market_id:<10} tick {m.tick_size}  lot {m.lot_size}  min {m.min_amount}  "
        f"fees {m.maker_fee_bps}/{m.taker_fee_bps} bps (maker/taker)"
        for m in stack.markets
    ]
    if stack.services is not None:
        api = stack.services.api_url
        lines += [
            "",
            f"API       {api}/v1   (docs {api}/docs, OpenAPI {api}/openapi.json)",
            f"WebSocket {api.replace('http', 'ws', 1)}/v1/ws",
            "Running in this process: API, engine (journal "
            f"{stack.services.settings.engine_journal_dir}), indexer, settlement.",
            "Try it: `hybridex demo` in another terminal.",
        ]
        stream = stack.services.settings.stream_url
        if stream is not None:
            prefix = stack.services.settings.stream_subject_prefix
            lines.append(
                f"Stream    {redact_url(stream)} (prefix {prefix}; relay in this process; "
                "`hybridex consume` reads it back)"
            )
        else:
            lines.append("Stream    off (no NATS on 127.0.0.1:4222, no Redis): no events written")
        if stack.services.engine_server is not None:
            socket = stack.services.settings.engine_socket_path()
            lines.append(
                f"Engine port unix:{socket}  (dev keys; `hybridex reconcile` and the other "
                f"engine CLI commands reach it from here, or with HYBRIDEX_ENGINE_SOCKET={socket})"
            )
    lines += ["", "Press Ctrl-C to stop."]
    return "\n".join(lines)


def run_until_interrupted(
    echo: Callable[[str], None], port: int = DEV_RPC_PORT, chain: str = "anvil"
) -> None:
    # The terminal is the newcomer's: warnings and errors only, readable, unless asked for.
    configure_logging(os.environ.get("HYBRIDEX_LOG_LEVEL", "WARNING"), json=False)
    with ExitStack() as resources:
        stack = start(resources, port=port, chain=chain)
        asyncio.run(_run_services(stack, echo))
    echo("Stopped.")


async def _run_services(stack: DevStack, echo: Callable[[str], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = service_settings(stack)
    stack.services = await start_services(settings, settings.engine_journal_dir, stack.markets)
    stack.started.append(f"services   API on {stack.services.api_url}, engine, indexer, settlement")

    async def announce() -> None:
        while not stack.services.server.started:  # type: ignore[union-attr]
            if stop.is_set():
                return
            await asyncio.sleep(0.05)
        echo(describe(stack))

    async def say_stopping() -> None:
        await stop.wait()
        echo("Stopping…")

    tasks = [
        asyncio.create_task(announce()),
        asyncio.create_task(say_stopping()),
        asyncio.create_task(_watch_indexer(stack.services, stop)),
    ]
    await serve_until(stack.services, stop)
    for task in tasks:
        task.cancel()
    if stack.services.indexer_error is not None:
        echo(f"indexer stopped: {stack.services.indexer_error}")


async def _watch_indexer(services: Services, stop: asyncio.Event) -> None:
    """A stopped indexer (e.g. a reorg deeper than the window) stops the dev stack loudly."""
    while not stop.is_set():
        if services.indexer_error is not None:
            stop.set()
        await asyncio.sleep(0.2)
