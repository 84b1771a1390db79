"""Typed answers of the API (msgspec Structs). The API sends amounts, prices and nonces as
decimal strings; they are decoded to ints (base units, 18-decimal fixed-point prices)."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from hybridex_client.errors import error_from

T = TypeVar("T")

BUY, SELL = 0, 1
GTC, IOC, FOK, POST_ONLY = 0, 1, 2, 3
PRICE_SCALE = 10**18


class Answer(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    """Base of the answers: unknown fields are ignored, so a newer server stays readable."""


def decode(data: Any, type_: type[T]) -> T:
    """Converts a parsed JSON answer (decimal strings become ints)."""
    return msgspec.convert(data, type_, strict=False)


class Eip712(Answer):
    domain: dict[str, Any]
    types: dict[str, list[dict[str, str]]]


class Info(Answer):
    chain_id: int
    exchange_address: str
    eip712: Eip712
    server_time: int
    server_time_ms: int | None = None


class Token(Answer):
    address: str
    symbol: str
    decimals: int


class Market(Answer):
    id: str
    base: Token
    quote: Token
    tick_size: int
    lot_size: int
    min_amount: int
    max_amount: int | None = None
    max_notional: int | None = None
    state: str = "active"
    price_band_bps: int | None = None


class BookSnapshot(Answer):
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    seq: int | None = None
    feed_seq: int | None = None


class TakerFill(Answer):
    maker_order_hash: str
    price: int
    amount: int
    quote_amount: int
    fee: int
    seq: int
    fill_index: int


class Placed(Answer):
    """`POST /v1/orders`: the engine's outcome (`status` "pending" on a 202)."""

    order_hash: str
    status: str
    market: str | None = None
    filled: int = 0
    remaining: int = 0
    seq: int | None = None
    fills: list[TakerFill] = msgspec.field(default_factory=list)


class Cancelled(Answer):
    order_hash: str
    status: str
    remaining: int | None = None
    seq: int | None = None


class CancelledAll(Answer):
    status: str
    cancelled: int | None = None
    market: str | None = None
    nonce_below: int | None = None
    seq: int | None = None


class OrderRecord(Answer):
    """A stored order (`GET /v1/orders…`)."""

    order_hash: str
    market: str
    trader: str
    side: int
    price: int
    amount: int
    time_in_force: int
    nonce: int
    expiry: int
    status: str
    filled: int
    remaining: int
    client_order_id: str | None = None
    base_token: str | None = None
    quote_token: str | None = None
    accepted_seq: int | None = None
    updated_seq: int | None = None


class Balance(Answer):
    token: str
    total: int
    available: int
    locked: int
    on_chain: int = 0
    on_chain_block: int | None = None
    pending_settlement: int = 0


class Settlement(Answer):
    status: str
    batch_id: int | None = None
    tx_hash: str | None = None
    block: int | None = None
    failure_reason: str | None = None


class AccountFill(Answer):
    id: int
    market: str
    order_hash: str
    role: str
    side: int
    price: int
    amount: int
    quote_amount: int
    fee: int
    seq: int
    settlement: Settlement
    fill_index: int | None = None
    fee_asset: str | None = None


class WithdrawalPosted(Answer):
    withdrawal_hash: str
    status: str
    withdrawal_id: str | None = None


class WithdrawalRecord(Answer):
    withdrawal_hash: str
    token: str
    amount: int
    nonce: int
    status: str
    id: int | None = None
    withdrawal_id: str | None = None
    reject_code: str | None = None
    tx_hash: str | None = None
    block: int | None = None
    failure_reason: str | None = None


class Deposit(Answer):
    token: str
    amount: int
    status: str
    tx_hash: str | None = None
    block_number: int | None = None
    confirmations_left: int | None = None
    credited_seq: int | None = None


class ItemResult(Answer):
    """One item of a batch, or one WebSocket order-entry `result`: the status and body its
    single REST endpoint would answer."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status < 300

    def placed(self) -> Placed:
        """The order's outcome; a refused item raises its `ApiError`."""
        return decode(self._body(), Placed)

    def cancelled(self) -> Cancelled:
        return decode(self._body(), Cancelled)

    def _body(self) -> dict[str, Any]:
        if not self.ok:
            raise error_from(self.status, self.body)
        return self.body
