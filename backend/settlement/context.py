"""What every settlement step needs: settings, the node, the database, the operator key.

Built lazily once per process (after a Celery prefork, in the child), or injected by
`hybridex dev` / tests through `set_context`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from backend.chain.exchange import ExchangeReader
from backend.config import Settings, get_settings
from backend.db.session import make_engine, session_factory
from backend.domain.errors import ConfigurationError
from backend.eip712.domain import Domain
from backend.settlement.fill_feed import FillFeed, RedisFillFeed
from backend.settlement.releases import EngineSubmit, tcp_submitter


@dataclass
class SettlementContext:
    settings: Settings
    w3: Web3
    factory: sessionmaker[Session]
    exchange: ChecksumAddress
    chain_id: int
    account: LocalAccount = field(repr=False)
    """The operator key (never logged: excluded from repr)."""
    estimated_gas_per_item: int | None = None
    """Gas per item of this process's last `eth_estimateGas` of a batch: the gas budget's
    model until the database holds settled batches (a fresh start). A hint, never a truth."""
    fill_feed: FillFeed | None = None
    """Where fill settlement states are published (`fills:{address}`); None: nowhere."""
    engine: EngineSubmit | None = field(default=None, repr=False)
    """How the worker hands the engine a `ReleaseWithdrawal` (`releases.py`); None: it cannot,
    and failed withdrawals stay owed (a gauge and an error log say so)."""

    @property
    def sender(self) -> ChecksumAddress:
        return self.account.address

    @property
    def reader(self) -> ExchangeReader:
        return ExchangeReader(self.w3, self.exchange)

    @property
    def domain(self) -> Domain:
        return Domain(chain_id=self.chain_id, verifying_contract=self.exchange)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        w3: Web3 | None = None,
        factory: sessionmaker[Session] | None = None,
    ) -> SettlementContext:
        if settings.exchange_address is None:
            raise ConfigurationError("HYBRIDEX_EXCHANGE_ADDRESS is not set")
        if w3 is None:
            provider = Web3.HTTPProvider(
                settings.rpc_url, request_kwargs={"timeout": settings.rpc_timeout_s}
            )
            w3 = Web3(provider)
        chain_id = int(w3.eth.chain_id)
        if settings.chain_id is not None and settings.chain_id != chain_id:
            raise ConfigurationError(
                "the node's chain id differs from HYBRIDEX_CHAIN_ID",
                expected=settings.chain_id,
                actual=chain_id,
            )
        if factory is None:
            factory = session_factory(make_engine(settings.database_url))
        return cls(
            settings=settings,
            w3=w3,
            factory=factory,
            exchange=to_checksum_address(settings.exchange_address),
            chain_id=chain_id,
            account=Account.from_key(settings.operator_private_key()),
            engine=tcp_submitter(settings),
            fill_feed=RedisFillFeed(
                settings.redis_url,
                prefix=settings.redis_key_prefix,
                retention=settings.engine_feed_retention,
            ),
        )


_lock = threading.Lock()
_holder: dict[str, SettlementContext] = {}


def get_context() -> SettlementContext:
    with _lock:
        ctx = _holder.get("ctx")
        if ctx is None:
            ctx = _holder["ctx"] = SettlementContext.from_settings(get_settings())
        return ctx


def set_context(context: SettlementContext | None) -> None:
    """Inject a context (dev stack, tests); None forgets it."""
    with _lock:
        if context is None:
            _holder.pop("ctx", None)
        else:
            _holder["ctx"] = context
