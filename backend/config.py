"""One `Settings` per process, from `HYBRIDEX_*` environment variables (docs/configuration.md).

Production defaults are explicit; secrets are `SecretStr` so they never reach a log line.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Iterator
from enum import StrEnum
from functools import cache
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from eth_account import Account
from eth_utils.address import is_address, to_checksum_address
from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.domain.errors import ConfigurationError
from backend.redact import redact_url

# Private keys of the standard development mnemonic ("test test … junk") that anvil, hardhat
# and eth-tester print on start-up. Anyone can sign with them, so only dev mode may use them.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_PRIVATE_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)
DEFAULT_OPERATOR_KEY = DEV_PRIVATE_KEYS[0]
DEV_ADDRESSES: frozenset[str] = frozenset(Account.from_key(k).address for k in DEV_PRIVATE_KEYS)
ZERO_ADDRESS = "0x" + "00" * 20

# Production floors (docs/configuration.md). Fewer confirmations let a reorg undo a credited
# deposit; a shorter window turns an ordinary reorg into one the indexer cannot undo.
PROD_MIN_CONFIRMATIONS = 3
PROD_MIN_REORG_WINDOW = 32
# Placeholders from docker/ and common defaults; a password equal to one is no secret.
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "password", "secret", "hybridex", "postgres", "admin",
     "guest", "redis", "example", "xxx", "todo"}
)  # fmt: skip
# Variables with these prefixes belong to the test suite, the benchmarks and `hybridex deploy`'s
# own options (HYBRIDEX_DEPLOY_ADMIN, …), not to a long-running process's settings.
RESERVED_PREFIXES = ("HYBRIDEX_TEST_", "HYBRIDEX_BENCH_", "HYBRIDEX_DEPLOY_")
_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
# What the kubelet injects for a Service named hybridex-…, unless the pod sets
# `enableServiceLinks: false` (docker/k8s does).
_SERVICE_LINK = re.compile(
    r"^HYBRIDEX_\w+_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT_\d+_(TCP|UDP|SCTP)\w*)$"
)
# Clients of the engine port, each with its own key and allow-list (backend/engine/auth.py).
ENGINE_ROLES = ("api", "indexer", "settlement", "operator")
ENGINE_KEY_MIN_CHARS = 32  # `openssl rand -hex 32` gives 64

log = structlog.get_logger(__name__)


class Mode(StrEnum):
    DEV = "dev"
    PRODUCTION = "production"


def _checksum(value: str | None) -> str | None:
    if value is None:
        return None
    if not is_address(value):
        raise ValueError(f"not an address: {value!r}")
    return to_checksum_address(value)


ChecksumAddress = Annotated[str | None, AfterValidator(_checksum)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HYBRIDEX_", env_file=None, extra="forbid", frozen=True
    )

    mode: Mode = Field(
        default=Mode.PRODUCTION,
        description="`dev` allows the well-known development keys; `production` refuses them.",
    )

    # Storage and services
    database_url: str = Field(
        default="sqlite:///hybridex.db",
        description="SQLAlchemy URL; the embedded default is a SQLite file in the working dir.",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0")
    redis_key_prefix: str = Field(
        default="hybridex:", description="Prefix of every Redis key (broker included)."
    )

    # Chain
    rpc_url: str = Field(default="http://127.0.0.1:8545")
    chain_id: int | None = Field(
        default=None, ge=1, description="Expected `eth_chainId`; checked at start-up when set."
    )
    exchange_address: ChecksumAddress = Field(default=None)
    cancel_delay_s: int = Field(
        default=3_600,
        ge=60,
        le=604_800,
        description="Seconds an on-chain cancel waits before it takes effect: the Exchange's "
        "`cancelDelay`, set at deployment (published in /v1/info; the indexer checks it).",
    )
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    confirmations: int = Field(
        default=12, ge=0, description="Depth at which deposits are credited (0 only in dev)."
    )
    reorg_window: int = Field(
        default=64, ge=1, description="Unfinalized blocks kept to detect and undo reorgs."
    )
    indexer_start_block: int = Field(default=0, ge=0)
    indexer_poll_interval_s: float = Field(default=1.0, gt=0)
    indexer_max_log_range: int = Field(
        default=100_000, ge=1, description="Widest eth_getLogs block range the indexer asks for."
    )
    indexer_stale_head_s: float = Field(
        default=300.0, gt=0, description="Warn when the followed head is older than this."
    )
    indexer_metrics_host: str = Field(default="127.0.0.1")
    indexer_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve the indexer's Prometheus metrics."
    )

    # Operator key: exactly one source. Never logged (SecretStr).
    operator_key: SecretStr | None = Field(default=None, description="Hex private key (secret).")
    operator_keystore: Path | None = Field(default=None, description="Encrypted JSON keystore.")
    operator_keystore_password: SecretStr | None = Field(default=None)
    fee_recipient: ChecksumAddress = Field(default=None)

    # Settlement
    batch_max_fills: int = Field(default=200, ge=1, le=2000)
    batch_max_age_s: float = Field(default=2.0, gt=0)
    max_fee_per_gas_wei: int = Field(default=200 * 10**9, ge=1)
    max_priority_fee_per_gas_wei: int = Field(default=2 * 10**9, ge=0)
    fee_bump_percent: int = Field(default=13, ge=13, description="≥ 12.5% to be a replacement.")
    stuck_after_blocks: int = Field(default=3, ge=1)
    max_in_flight_txs: int = Field(default=4, ge=1)
    settlement_tick_s: float = Field(
        default=0.5, gt=0, description="Beat period of the settlement tick (batch, send, follow)."
    )
    reconcile_interval_s: float = Field(
        default=300.0, gt=0, description="Period of the reconciliation task (beat, `hybridex dev`)."
    )
    beat_schedule: Path = Field(
        default=Path("var/celerybeat-schedule"),
        description="File where `hybridex beat` keeps its schedule state (a writable path).",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the operator endpoints (`/v1/admin/*`); unset: refused.",
    )
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector (e.g. http://otel-collector:4318) that the API and the "
        "settlement worker send trace spans to; unset: no tracing.",
    )
    operator_balance_alert_wei: int = Field(
        default=5 * 10**17,
        ge=0,
        description="Operator ETH balance (wei) below which HybridexOperatorBalanceLow fires: it "
        "pays the gas of every batch and withdrawal.",
    )
    settlement_metrics_host: str = Field(default="127.0.0.1")
    settlement_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Prometheus port of `hybridex worker`."
    )

    # Engine and API
    engine_journal_dir: Path = Field(default=Path("var/journal"))
    engine: Literal["native", "python"] = Field(
        default="native",
        description="Matching engine: the native core, or the Python reference model.",
    )
    engine_snapshot_every: int = Field(default=100_000, ge=1)
    signature_check: Literal["native", "python"] = Field(
        default="native",
        description="The API's signature check: the native one, or the Python reference.",
    )
    engine_transport: Literal["unix", "tcp"] = Field(
        default="unix",
        description="`unix`: the engine listens on HYBRIDEX_ENGINE_SOCKET (one host); `tcp`: on "
        "HYBRIDEX_ENGINE_HOST:HYBRIDEX_ENGINE_PORT (several hosts).",
    )
    engine_socket: Path | None = Field(
        default=None,
        description="Unix socket of the engine; unset: `engine.sock` in the journal dir.",
    )
    engine_host: str = Field(default="127.0.0.1", description="Engine TCP listen/connect host.")
    engine_port: int = Field(default=7700, ge=1, le=65535)
    # One key per client role; "new,old" during a rotation (the engine accepts both, clients
    # use the first). Dev mode derives them when unset; production refuses to run without.
    engine_key_api: SecretStr | None = Field(default=None, description="Engine key of the API.")
    engine_key_indexer: SecretStr | None = Field(default=None)
    engine_key_settlement: SecretStr | None = Field(default=None)
    engine_key_operator: SecretStr | None = Field(default=None)
    engine_group_max: int = Field(default=1_000, ge=1, description="Commands per group commit.")
    engine_feed_retention: int = Field(default=10_000, ge=100, description="Messages per feed.")
    engine_sweep_interval_s: float = Field(default=1.0, gt=0)
    engine_persist_lag_max: int = Field(
        default=50_000,
        ge=1,
        description="Applied commands not yet in the database past which new orders and "
        "withdrawals are refused (PERSISTENCE_LAGGING); cancels pass until twice as many.",
    )
    engine_metrics_host: str = Field(default="127.0.0.1")
    engine_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve the engine's Prometheus metrics."
    )
    api_host: str = Field(default="127.0.0.1")
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=2, ge=1)
    api_server: str = Field(
        default="uvicorn",
        pattern="^(uvicorn|granian)$",
        description='The HTTP server of `hybridex api` (docs/deployment.md "HTTP server").',
    )
    api_engine_timeout_s: float = Field(
        default=2.0, gt=0, description="How long POST /v1/orders waits for the engine before 202."
    )
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Request body limit.")
    api_rate_limiter: str = Field(
        default="redis", pattern="^(redis|memory)$", description="`memory`: one process only."
    )
    api_rate_ip_per_s: float = Field(default=50.0, gt=0)
    api_rate_ip_burst: int = Field(default=100, ge=1)
    api_rate_trader_per_s: float = Field(default=20.0, gt=0)
    api_rate_trader_burst: int = Field(default=100, ge=1)  # two full batches of 50
    api_rate_cancel_per_s: float = Field(default=100.0, gt=0)
    api_rate_cancel_burst: int = Field(default=200, ge=1)
    api_ws_heartbeat_s: float = Field(default=15.0, gt=0)
    api_session_max_s: int = Field(
        default=7 * 86_400,
        ge=60,
        description="Longest lifetime of a signed Session (private reads) the API accepts.",
    )
    api_ws_send_queue: int = Field(default=1000, ge=1)
    api_ws_max_inflight: int = Field(
        default=32,
        ge=1,
        description="Order messages a WebSocket may have unanswered (pipelined); the next "
        "message is read once one is answered.",
    )
    api_ws_ticker_interval_s: float = Field(default=1.0, gt=0)
    api_trusted_proxies: str = Field(
        default="127.0.0.1/32,::1/128",
        description="CIDR ranges whose X-Forwarded-For is believed (comma-separated; empty: "
        "none). The client is the right-most hop not in these ranges.",
    )
    api_rate_lease_tokens: int = Field(
        default=20,
        ge=1,
        description="Most tokens an API worker takes from a shared Redis bucket at a time (a "
        "tenth of its burst at most) and spends without asking Redis; 1: a Redis call per "
        "request. docs/deployment.md: the bound on over-admission.",
    )
    api_rate_lease_s: float = Field(
        default=1.0, gt=0, description="How long a worker may spend the tokens it took ahead."
    )
    api_rate_limiter_timeout_s: float = Field(
        default=1.0, gt=0, description="Longest wait for the limiter's store before failing."
    )
    api_ws_max_connections_per_ip: int = Field(
        default=20, ge=1, description="Open WebSockets per client IP, in each API worker."
    )
    api_ws_msg_per_s: float = Field(default=10.0, gt=0, description="Client messages/s.")
    api_ws_msg_burst: int = Field(default=60, ge=1, description="Client message bucket size.")
    api_ws_max_message_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest client WebSocket message."
    )
    api_ws_book_cache_s: float = Field(
        default=0.5, gt=0, description="Age limit of a worker's cached book snapshot."
    )

    # Event stream (docs/deployment.md "Event stream")
    stream_url: str | None = Field(
        default=None,
        description="Broker of the event stream: nats://host:4222, redis://host:6379/0 (Redis "
        "Streams) or kafka://host:9092. Unset: no events are written to the outbox.",
    )
    stream_subject_prefix: str = Field(
        default="hybridex",
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="Prefix of the stream's subjects / Redis keys / topics.",
    )
    stream_ack_timeout_s: float = Field(
        default=10.0, gt=0, description="How long the relay waits for the broker's acks."
    )
    stream_replicas: int = Field(
        default=1, ge=1, le=5, description="Replicas of the JetStream stream (3 in a cluster)."
    )
    stream_duplicate_window_s: float = Field(
        default=120.0,
        gt=0,
        description="JetStream's duplicate window: a re-sent event id within it is dropped.",
    )
    relay_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Outbox rows per publish of the relay."
    )
    relay_poll_interval_s: float = Field(
        default=0.1, gt=0, description="How often an idle relay looks at the outbox."
    )
    relay_metrics_host: str = Field(default="127.0.0.1")
    relay_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Prometheus port of `hybridex relay`."
    )

    log_level: str = Field(default="INFO")
    log_json: bool = Field(default=True)

    @field_validator("stream_url")
    @classmethod
    def _empty_stream_url_is_none(cls, value: str | None) -> str | None:
        return value or None  # HYBRIDEX_STREAM_URL= (empty): no stream, as when unset

    @field_validator("api_trusted_proxies")
    @classmethod
    def _check_proxy_ranges(cls, value: str) -> str:
        # uvicorn would take a malformed range as a literal host name and trust nothing.
        for item in _split_ranges(value):
            try:
                ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"HYBRIDEX_API_TRUSTED_PROXIES: {item!r} is not an address or CIDR range"
                ) from None
        return value

    def trusted_proxies(self) -> list[str]:
        """The trusted proxy ranges, normalised (`10.0.0.0/8`, `::1/128`)."""
        return [
            str(ip_network(item, strict=False)) for item in _split_ranges(self.api_trusted_proxies)
        ]

    @model_validator(mode="after")
    def _check_environment_names(self) -> Settings:
        """A misspelt variable would silently leave its setting at the default."""
        known = sorted("HYBRIDEX_" + name.upper() for name in type(self).model_fields)
        problems = []
        for name in sorted(os.environ):
            if not name.startswith("HYBRIDEX_") or name in known:
                continue
            if name.startswith(RESERVED_PREFIXES):
                continue
            # Compared without the shared prefix, which would make every name look close.
            close = [
                "HYBRIDEX_" + m
                for m in difflib.get_close_matches(
                    name.removeprefix("HYBRIDEX_"),
                    [k.removeprefix("HYBRIDEX_") for k in known],
                    n=1,
                )
            ]
            if _SERVICE_LINK.match(name):
                hint = " (a Kubernetes Service variable: set `enableServiceLinks: false`)"
            else:
                hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(name + hint)
            if self.mode is not Mode.PRODUCTION:
                log.warning("unknown_setting", name=name, suggestion=close[0] if close else None)
        if problems and self.mode is Mode.PRODUCTION:
            raise ValueError("unknown setting " + ", ".join(problems))
        return self

    @model_validator(mode="after")
    def _check_production_safety(self) -> Settings:
        if self.mode is not Mode.PRODUCTION:
            return self
        if not PROD_MIN_CONFIRMATIONS <= self.confirmations <= self.reorg_window:
            raise ValueError(
                f"HYBRIDEX_CONFIRMATIONS={self.confirmations} is unsafe in production: use "
                f"{PROD_MIN_CONFIRMATIONS} to HYBRIDEX_REORG_WINDOW ({self.reorg_window}); "
                "fewer lets a reorg undo credited deposits (HYBRIDEX_MODE=dev allows 0)"
            )
        if self.reorg_window < PROD_MIN_REORG_WINDOW:
            raise ValueError(
                f"HYBRIDEX_REORG_WINDOW={self.reorg_window} is unsafe in production: use at "
                f"least {PROD_MIN_REORG_WINDOW} blocks, so that an ordinary reorg can be undone"
            )
        if self.fee_recipient is not None:
            if self.fee_recipient == ZERO_ADDRESS:
                raise ValueError(
                    "HYBRIDEX_FEE_RECIPIENT is the zero address (a placeholder): set the "
                    "operator's fee account or leave it unset"
                )
            if self.fee_recipient in DEV_ADDRESSES:
                raise ValueError(
                    f"HYBRIDEX_FEE_RECIPIENT {self.fee_recipient} is a publicly known "
                    "development account; refused outside HYBRIDEX_MODE=dev"
                )
        if self.operator_key is not None and not _HEX_KEY.match(
            self.operator_key.get_secret_value()
        ):
            raise ValueError(
                "HYBRIDEX_OPERATOR_KEY is not a 32-byte hex private key (a placeholder?)"
            )
        for role in ENGINE_ROLES:
            for key in self._engine_key_texts(role):
                if len(key) < ENGINE_KEY_MIN_CHARS or _is_placeholder(key):
                    raise ValueError(
                        f"HYBRIDEX_ENGINE_KEY_{role.upper()} is shorter than "
                        f"{ENGINE_KEY_MIN_CHARS} characters or a placeholder: generate one "
                        "with `openssl rand -hex 32`"
                    )
                if key == dev_engine_key(role):
                    raise ValueError(
                        f"HYBRIDEX_ENGINE_KEY_{role.upper()} is the publicly known development "
                        "key; refused outside HYBRIDEX_MODE=dev"
                    )
        password = self.operator_keystore_password
        if password is not None and _is_placeholder(password.get_secret_value()):
            raise ValueError("HYBRIDEX_OPERATOR_KEYSTORE_PASSWORD is a placeholder or default")
        for name, url in (("HYBRIDEX_DATABASE_URL", self.database_url),
                          ("HYBRIDEX_REDIS_URL", self.redis_url)):  # fmt: skip
            secret = _url_password(url)
            if secret is not None and _is_placeholder(secret):
                raise ValueError(
                    f"{name} carries a placeholder or default password; set a real secret"
                )
        return self

    @model_validator(mode="after")
    def _check_operator_key(self) -> Settings:
        if self.operator_key is not None and self.operator_keystore is not None:
            raise ValueError("set only one of HYBRIDEX_OPERATOR_KEY and HYBRIDEX_OPERATOR_KEYSTORE")
        if self.operator_key is not None and self.mode is not Mode.DEV:
            key = self.operator_key.get_secret_value().lower()
            if not key.startswith("0x"):
                key = "0x" + key
            if key in DEV_PRIVATE_KEYS:
                raise ValueError(
                    "HYBRIDEX_OPERATOR_KEY is a publicly known development key; "
                    "refused outside HYBRIDEX_MODE=dev"
                )
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # URLs carry passwords and providers' keys; a repr of the settings may reach a log.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) and "://" in value else value

    def operator_private_key(self) -> str:
        """The operator key as 0x-hex, from the env secret, the keystore, or (dev only) anvil's."""
        if self.operator_key is not None:
            return self.operator_key.get_secret_value()
        if self.operator_keystore is not None:
            password = self.operator_keystore_password
            if password is None:
                raise ConfigurationError("HYBRIDEX_OPERATOR_KEYSTORE_PASSWORD is not set")
            raw = Account.decrypt(self.operator_keystore.read_text(), password.get_secret_value())
            return "0x" + bytes(raw).hex()
        if self.mode is Mode.DEV:
            return DEFAULT_OPERATOR_KEY
        raise ConfigurationError(
            "no operator key: set HYBRIDEX_OPERATOR_KEY or HYBRIDEX_OPERATOR_KEYSTORE"
        )

    def engine_socket_path(self) -> Path:
        return self.engine_socket or self.engine_journal_dir / "engine.sock"

    def _engine_key_texts(self, role: str) -> list[str]:
        secret: SecretStr | None = getattr(self, f"engine_key_{role}")
        if secret is None:
            return []
        return [k.strip() for k in secret.get_secret_value().split(",") if k.strip()]

    def engine_keys(self, role: str) -> list[bytes]:
        """The keys of an engine client role, current first (then the one being rotated out);
        dev mode derives a well-known key when none is set."""
        if role not in ENGINE_ROLES:
            raise ConfigurationError(f"unknown engine role {role!r}", roles=ENGINE_ROLES)
        keys = self._engine_key_texts(role)
        if not keys and self.mode is Mode.DEV:
            keys = [dev_engine_key(role)]
        if not keys:
            raise ConfigurationError(
                f"HYBRIDEX_ENGINE_KEY_{role.upper()} is not set: the engine refuses clients "
                'without their role\'s key (docs/deployment.md, "Engine credentials")'
            )
        return [k.encode() for k in keys]


def dev_engine_key(role: str) -> str:
    """The development key of an engine role: public, so dev processes agree without setup."""
    return hashlib.sha256(f"hybridex development engine key: {role}".encode()).hexdigest()


def _split_ranges(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _is_placeholder(secret: str) -> bool:
    return secret.strip().lower() in PLACEHOLDER_SECRETS


def _url_password(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return None if password is None else unquote(password)


@cache
def get_settings() -> Settings:
    return Settings()
