"""Development chain set-up: demo tokens minted to the standard dev accounts."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from web3 import Web3

from backend.chain.deploy import Sender
from backend.config import DEV_PRIVATE_KEYS


@dataclass(frozen=True)
class DemoTokenSpec:
    name: str
    symbol: str
    decimals: int
    grant_units: int
    """Whole tokens minted to each dev account."""


DEMO_TOKENS: tuple[DemoTokenSpec, ...] = (
    DemoTokenSpec("Wrapped Ether", "WETH", 18, 1_000),
    DemoTokenSpec("USD Coin", "USDC", 6, 10_000_000),
    DemoTokenSpec("Wrapped Bitcoin", "WBTC", 8, 100),
)


@dataclass(frozen=True)
class DeployedToken:
    spec: DemoTokenSpec
    address: str


def dev_accounts(count: int = len(DEV_PRIVATE_KEYS)) -> list[str]:
    return [Account.from_key(k).address for k in DEV_PRIVATE_KEYS[:count]]


DEV_EXIT_DELAY_BLOCKS = 20
"""Short on a dev chain so the escape hatch can be tried by hand (production: days of blocks)."""


def deploy_dev_exchange(w3: Web3, *, cancel_delay_s: int = 3_600) -> str:
    """Deploy the Exchange with dev account 0 as admin, operator and fee recipient."""
    deployer = Sender.from_key(w3, DEV_PRIVATE_KEYS[0])
    operator = deployer.address
    exchange = deployer.deploy(
        "Exchange", operator, operator, operator, DEV_EXIT_DELAY_BLOCKS, cancel_delay_s
    )
    return str(exchange.address)


def deploy_demo_tokens(w3: Web3, *, fund_accounts: int = 10) -> list[DeployedToken]:
    """Deploy WETH/USDC/WBTC demo tokens from dev account 0 and fund the first dev accounts."""
    deployer = Sender.from_key(w3, DEV_PRIVATE_KEYS[0])
    deployed = []
    for spec in DEMO_TOKENS:
        token = deployer.deploy("DemoToken", spec.name, spec.symbol, spec.decimals)
        for holder in dev_accounts(fund_accounts):
            deployer.transact(token.functions.mint(holder, spec.grant_units * 10**spec.decimals))
        deployed.append(DeployedToken(spec=spec, address=token.address))
    return deployed
