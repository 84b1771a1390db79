"""OpenAPI models of the API's answers: what each route sends, described field by field.

Like `backend.api.schemas` these only *describe*: routes build plain dicts (SPEC §2) and send
them with `Json`, so a model here never reshapes an answer. `extra="forbid"` makes the
document say exactly which fields come, so a field added to an answer without its
description here fails the contract test (tests/unit/api/test_openapi_contract.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.api.schemas import ADDRESS, HASH, UINT, ErrorBody, OrderOutcome

Uint = str
"""A uint256 as a decimal string (documented by `UINT`)."""


def _uint(description: str = "", **kw: Any) -> Any:
    return Field(pattern=UINT, description=description or None, **kw)


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ info


class Eip712Info(Answer):
    domain: dict[str, Any] = Field(description="EIP712Domain: name, version, chainId, ...")
    types: dict[str, list[dict[str, str]]] = Field(description="Order, Cancel, ... field lists")


class FeeCaps(Answer):
    maxMakerFeeBps: int  # noqa: N815
    maxTakerFeeBps: int  # noqa: N815


class InfoAnswer(Answer):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "chainId": 31337,
                    "exchangeAddress": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                    "eip712": {
                        "domain": {
                            "name": "Hybridex",
                            "version": "1",
                            "chainId": 31337,
                            "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                        },
                        "types": {"Cancel": [{"name": "trader", "type": "address"}]},
                    },
                    "feeCaps": {"maxMakerFeeBps": 100, "maxTakerFeeBps": 100},
                    "cancelDelaySeconds": 3600,
                    "serverTime": 1767225600,
                    "serverTimeMs": 1767225600000,
                }
            ]
        },
    )
    chainId: int  # noqa: N815
    exchangeAddress: str = Field(pattern=ADDRESS)  # noqa: N815
    eip712: Eip712Info
    feeCaps: FeeCaps  # noqa: N815
    cancelDelaySeconds: int = Field(  # noqa: N815
        description="Seconds an on-chain cancelOrder / invalidateNonces waits before it takes "
        "effect; fills matched before then still settle (the engine stops matching at once)."
    )
    serverTime: int  # noqa: N815
    serverTimeMs: int  # noqa: N815


class HealthAnswer(Answer):
    status: str = Field(description='always "ok"')


class ReadyAnswer(Answer):
    status: str = Field(description='"ok" or "down"')
    checks: dict[str, str] = Field(description='per dependency: "ok" or "down: <error>"')


# ------------------------------------------------------------------ markets


class TokenOut(Answer):
    address: str = Field(pattern=ADDRESS)
    symbol: str
    decimals: int


class MarketAnswer(Answer):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "WETH-USDC",
                    "base": {"address": "0x" + "e1" * 20, "symbol": "WETH", "decimals": 18},
                    "quote": {"address": "0x" + "c6" * 20, "symbol": "USDC", "decimals": 6},
                    "tickSize": "10000",
                    "lotSize": "100000000000000",
                    "minAmount": "100000000000000",
                    "maxAmount": None,
                    "maxNotional": None,
                    "makerFeeBps": 10,
                    "takerFeeBps": 20,
                    "priceBandBps": None,
                    "state": "active",
                }
            ]
        },
    )
    id: str
    base: TokenOut
    quote: TokenOut
    tickSize: Uint = _uint("price step")  # noqa: N815
    lotSize: Uint = _uint("amount step")  # noqa: N815
    minAmount: Uint = _uint()  # noqa: N815
    maxAmount: Uint | None = Field(description="uint256 string; null = no cap")  # noqa: N815
    maxNotional: Uint | None = Field(description="uint256 string; null = no cap")  # noqa: N815
    makerFeeBps: int  # noqa: N815
    takerFeeBps: int  # noqa: N815
    priceBandBps: int | None  # noqa: N815
    state: str = Field(description="active | post_only | halted | delisted")


class MarketsAnswer(Answer):
    markets: list[MarketAnswer]


class BookAnswer(Answer):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "market": "WETH-USDC",
                    "seq": 812,
                    "feedSeq": 640,
                    "bids": [["2999990000", "1000000000000000000"]],
                    "asks": [["3000010000", "500000000000000000"]],
                }
            ]
        },
    )
    market: str
    seq: int = Field(description="the engine's sequence number of the book")
    feedSeq: int = Field(description="the book: channel's seq this snapshot is at")  # noqa: N815
    bids: list[list[str]] = Field(description="[price, amount] uint256 strings, best first")
    asks: list[list[str]] = Field(description="[price, amount] uint256 strings, best first")


class TradeOut(Answer):
    id: int
    price: Uint = _uint()
    amount: Uint = _uint()
    quoteAmount: Uint = _uint()  # noqa: N815
    takerSide: int = Field(ge=0, le=1)  # noqa: N815
    seq: int
    time: str | None = Field(description="ISO 8601, UTC")


class TradesAnswer(Answer):
    market: str
    trades: list[TradeOut]


class TickerAnswer(Answer):
    market: str
    lastPrice: Uint | None  # noqa: N815
    bestBid: Uint | None  # noqa: N815
    bestAsk: Uint | None  # noqa: N815
    open24h: Uint | None
    high24h: Uint | None
    low24h: Uint | None
    volume24h: Uint = _uint()
    quoteVolume24h: Uint = _uint()  # noqa: N815
    change24h: str | None = Field(description="signed integer string")
    changeBps24h: int | None  # noqa: N815
    trades24h: int


class TickersAnswer(Answer):
    tickers: list[TickerAnswer]


class CandleOut(Answer):
    time: int = Field(description="bucket start, unix seconds")
    open: Uint = _uint()
    high: Uint = _uint()
    low: Uint = _uint()
    close: Uint = _uint()
    volume: Uint = _uint()
    quoteVolume: Uint = _uint()  # noqa: N815
    trades: int


class CandlesAnswer(Answer):
    market: str
    interval: str
    candles: list[CandleOut]


# ------------------------------------------------------------------ orders


class OrderAnswer(Answer):
    orderHash: str = Field(pattern=HASH)  # noqa: N815
    market: str
    trader: str = Field(pattern=ADDRESS)
    baseToken: str | None  # noqa: N815
    quoteToken: str | None  # noqa: N815
    side: int = Field(ge=0, le=1)
    price: Uint = _uint()
    amount: Uint = _uint()
    timeInForce: int = Field(ge=0, le=3)  # noqa: N815
    nonce: Uint = _uint()
    expiry: Uint = _uint()
    clientOrderId: str | None  # noqa: N815
    status: str = Field(
        description="open | partially_filled | filled | cancelled | expired | rejected"
    )
    filled: Uint = _uint()
    remaining: Uint = _uint()
    rejectCode: str | None  # noqa: N815
    acceptedSeq: int | None  # noqa: N815
    updatedSeq: int | None  # noqa: N815
    createdAt: str | None  # noqa: N815
    updatedAt: str | None  # noqa: N815


class OrdersAnswer(Answer):
    orders: list[OrderAnswer]


class CancelAnswer(Answer):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"orderHash": "0x" + "ab" * 32, "status": "cancelled",
                          "remaining": "1000000000000000000", "seq": 815}]
        },
    )  # fmt: skip
    orderHash: str  # noqa: N815
    status: str = Field(description='"cancelled", or "pending" (202: the engine was slow)')
    remaining: Uint | None = _uint(default=None)
    seq: int | None = None


class CancelAllAnswer(Answer):
    trader: str = Field(pattern=ADDRESS)
    market: str | None = Field(description="null: every market")
    nonceBelow: Uint = _uint()  # noqa: N815
    status: str = Field(description='"applied", or "pending" (202: the engine was slow)')
    cancelled: int | None = Field(None, description="orders cancelled (applied only)")
    seq: int | None = None
    hash: str = Field(pattern=HASH, description="the signed CancelAll's hash")


class ScheduleCancelAnswer(Answer):
    trader: str = Field(pattern=ADDRESS)
    time: Uint = _uint()
    nonce: Uint = _uint()
    status: str = Field(
        description='"scheduled", "cleared" (time 0), or "pending" (202: the engine was slow)'
    )
    seq: int | None = None
    hash: str = Field(pattern=HASH, description="the signed ScheduleCancel's hash")


# ------------------------------------------------------------------ accounts


class BalanceOut(Answer):
    token: str = Field(pattern=ADDRESS)
    symbol: str | None
    decimals: int | None
    onChain: Uint = _uint()  # noqa: N815
    onChainBlock: int | None  # noqa: N815
    total: Uint = _uint()
    available: Uint = _uint()
    locked: Uint = _uint()
    pendingSettlement: str = Field(description="signed integer string")  # noqa: N815
    seq: int | None


class BalancesAnswer(Answer):
    address: str = Field(pattern=ADDRESS)
    balances: list[BalanceOut]


class FillSettlementOut(Answer):
    status: str = Field(description="matched | batched | submitted | settled | failed | ...")
    batchId: int | None  # noqa: N815
    txHash: str | None  # noqa: N815
    block: int | None
    failureReason: str | None  # noqa: N815


class AccountFillOut(Answer):
    id: int
    market: str
    orderHash: str = Field(pattern=HASH)  # noqa: N815
    role: str = Field(description="maker | taker")
    side: int = Field(ge=0, le=1)
    price: Uint = _uint()
    amount: Uint = _uint()
    quoteAmount: Uint = _uint()  # noqa: N815
    fee: Uint = _uint()
    feeAsset: str = Field(description="base | quote")  # noqa: N815
    seq: int
    fillIndex: int  # noqa: N815
    time: str | None
    settlement: FillSettlementOut


class FillsAnswer(Answer):
    address: str = Field(pattern=ADDRESS)
    fills: list[AccountFillOut]


class DepositOut(Answer):
    id: int
    token: str = Field(pattern=ADDRESS)
    amount: Uint = _uint()
    status: str = Field(description="seen | credited | orphaned")
    txHash: str = Field(pattern=HASH)  # noqa: N815
    blockNumber: int  # noqa: N815
    logIndex: int  # noqa: N815
    confirmationsLeft: int | None  # noqa: N815
    creditedSeq: int | None  # noqa: N815
    time: str | None


class DepositsAnswer(Answer):
    address: str = Field(pattern=ADDRESS)
    indexedBlock: int | None  # noqa: N815
    confirmations: int
    deposits: list[DepositOut]


# ------------------------------------------------------------------ withdrawals


class WithdrawalRequested(Answer):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"withdrawalHash": "0x" + "cd" * 32,
                          "withdrawalId": "0x90F79bf6EB2c4f870365E785982E1f101E93b906:7",
                          "status": "reserved"}]
        },
    )  # fmt: skip
    withdrawalHash: str = Field(pattern=HASH)  # noqa: N815
    withdrawalId: str = Field(description="the engine's reservation id: trader:nonce")  # noqa: N815
    status: str = Field(description="reserved | submitted | confirmed | failed | rejected")


class WithdrawalIndexed(Answer):
    block: int
    debited: bool


class WithdrawalOut(Answer):
    id: int
    withdrawalId: str  # noqa: N815
    withdrawalHash: str | None  # noqa: N815
    token: str = Field(pattern=ADDRESS)
    amount: Uint = _uint()
    nonce: Uint = _uint()
    status: str
    rejectCode: str | None  # noqa: N815
    txHash: str | None  # noqa: N815
    block: int | None
    failureReason: str | None  # noqa: N815
    indexed: WithdrawalIndexed | None
    seq: int | None
    time: str


class WithdrawalsAnswer(Answer):
    address: str = Field(pattern=ADDRESS)
    withdrawals: list[WithdrawalOut]


# ------------------------------------------------------------------ admin


class ReconciliationAnswer(BaseModel):
    """The run's metadata and the `hybridex reconcile --json` report's own fields."""

    model_config = ConfigDict(extra="allow")
    runId: int  # noqa: N815
    runAt: str  # noqa: N815
    durationMs: int | None  # noqa: N815
    clean: bool


class BatchItemAnswer(Answer):
    status: int = Field(description="the HTTP status the single endpoint would answer")
    body: OrderOutcome | CancelAnswer | ErrorBody = Field(
        description="what the single endpoint would answer: an order's outcome, a cancel's, "
        "or the error"
    )


class BatchAnswer(Answer):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"results": [
                    {"status": 200, "body": {"orderHash": "0x" + "ab" * 32, "status": "open",
                                             "market": "WETH-USDC", "filled": "0",
                                             "remaining": "1000000000000000000", "seq": 816,
                                             "fills": []}},
                    {"status": 404, "body": {"error": {"code": "ORDER_NOT_FOUND",
                                                       "message": "no open order 0xcd…"}}},
                ]}
            ]
        },
    )  # fmt: skip
    results: list[BatchItemAnswer] = Field(description="one per item, in the order sent")
