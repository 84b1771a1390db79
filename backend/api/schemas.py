"""OpenAPI documentation of the signed request bodies, the order outcome and the error body.

These models only *describe* the interface: signed bodies are parsed by the strict parsers of
`backend.eip712.parsing` (pydantic would coerce `"1"`/`1`/`true`), never validated by these.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

UINT = r"^(0|[1-9][0-9]*)$"
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
HASH = r"^0x[0-9a-fA-F]{64}$"
SIG = r"^0x[0-9a-fA-F]{130}$"


class OrderMessage(BaseModel):
    trader: str = Field(pattern=ADDRESS)
    baseToken: str = Field(pattern=ADDRESS)  # noqa: N815
    quoteToken: str = Field(pattern=ADDRESS)  # noqa: N815
    side: int = Field(ge=0, le=1, description="0 buy, 1 sell (a JSON number)")
    price: str = Field(pattern=UINT, description="uint256, 18-decimal fixed point")
    amount: str = Field(pattern=UINT, description="uint256, base units")
    timeInForce: int = Field(ge=0, le=3, description="0 GTC, 1 IOC, 2 FOK, 3 POST_ONLY")  # noqa: N815
    nonce: str = Field(pattern=UINT, description="uint64, unique per trader")
    expiry: str = Field(pattern=UINT, description="uint64 unix seconds, 0 = never")


_ORDER_EXAMPLE: dict[str, JsonValue] = {
    "order": {
        "trader": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
        "baseToken": "0x" + "e1" * 20,
        "quoteToken": "0x" + "c6" * 20,
        "side": 0,
        "price": "3000000000",
        "amount": "1000000000000000000",
        "timeInForce": 0,
        "nonce": "1001",
        "expiry": "0",
    },
    "signature": "0x" + "11" * 65,
    "clientOrderId": "mm-42",
}


class PlaceOrderBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ORDER_EXAMPLE]})
    order: OrderMessage
    signature: str = Field(pattern=SIG, description="65-byte r‖s‖v, low-s")
    clientOrderId: str | None = Field(None, min_length=1, max_length=64)  # noqa: N815


class CancelMessage(BaseModel):
    trader: str = Field(pattern=ADDRESS)
    orderHash: str = Field(pattern=HASH)  # noqa: N815


class CancelBody(BaseModel):
    cancel: CancelMessage
    signature: str = Field(pattern=SIG)


class CancelAllMessage(BaseModel):
    trader: str = Field(pattern=ADDRESS)
    baseToken: str = Field(pattern=ADDRESS, description="zero address (with quoteToken): all")  # noqa: N815
    quoteToken: str = Field(pattern=ADDRESS)  # noqa: N815
    nonceBelow: str = Field(pattern=UINT)  # noqa: N815


class CancelAllBody(BaseModel):
    cancelAll: CancelAllMessage  # noqa: N815
    signature: str = Field(pattern=SIG)


class ScheduleCancelMessage(BaseModel):
    trader: str = Field(pattern=ADDRESS)
    time: str = Field(pattern=UINT, description="unix seconds; 0 clears the schedule")
    nonce: str = Field(pattern=UINT, description="above the trader's last ScheduleCancel nonce")


class ScheduleCancelBody(BaseModel):
    scheduleCancel: ScheduleCancelMessage  # noqa: N815
    signature: str = Field(pattern=SIG)


class BatchBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"items": [
                    _ORDER_EXAMPLE,
                    {"cancel": {"trader": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
                                "orderHash": "0x" + "ab" * 32},
                     "signature": "0x" + "22" * 65},
                ]}
            ]
        }
    )  # fmt: skip
    items: list[PlaceOrderBody | CancelBody] = Field(
        min_length=1,
        max_length=50,
        description="Signed orders (as POST /v1/orders takes them) and signed cancels (as "
        "DELETE /v1/orders/{hash} takes them), applied in this order.",
    )


class FillOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    makerOrderHash: str  # noqa: N815
    price: str
    amount: str
    quoteAmount: str  # noqa: N815
    fee: str
    seq: int
    fillIndex: int  # noqa: N815


class OrderOutcome(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"orderHash": "0x" + "ab" * 32, "status": "partially_filled",
                 "market": "WETH-USDC", "filled": "400000000000000000",
                 "remaining": "600000000000000000", "seq": 814,
                 "fills": [{"makerOrderHash": "0x" + "cd" * 32, "price": "3000000000",
                            "amount": "400000000000000000", "quoteAmount": "1200000000",
                            "fee": "80000000000000", "seq": 814, "fillIndex": 0}]},
                {"orderHash": "0x" + "ab" * 32, "status": "pending"},
            ]
        },
    )  # fmt: skip
    orderHash: str  # noqa: N815
    status: str = Field(
        description="open | partially_filled | filled | cancelled | expired | pending"
    )
    filled: str | None = None
    remaining: str | None = None
    market: str | None = None
    seq: int | None = None
    fills: list[FillOut] = Field(default_factory=list)


class WithdrawalMessage(BaseModel):
    trader: str = Field(pattern=ADDRESS)
    token: str = Field(pattern=ADDRESS)
    amount: str = Field(pattern=UINT, description="uint256, token units; at most `available`")
    nonce: str = Field(pattern=UINT, description="uint64, unique per trader's withdrawals")


class WithdrawalBody(BaseModel):
    withdrawal: WithdrawalMessage
    signature: str = Field(pattern=SIG)


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="a stable `ErrorCode` name (docs/api.md)")
    message: str = Field(description="what was wrong and what to do, for people")


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


COMPONENTS = "#/components/schemas/{model}"
BODY_MODELS: dict[str, type[BaseModel]] = {}
"""Request bodies the routes parse themselves, by name: `install_openapi` adds each (and the
models it nests) to the document's components, so generated clients get their names."""


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON request body the route parses itself."""
    BODY_MODELS[model.__name__] = model
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": COMPONENTS.format(model=model.__name__)}}
            },
        }
    }


def body_components() -> dict[str, Any]:
    """The JSON schemas of every `BODY_MODELS` entry and of the models they nest."""
    out: dict[str, Any] = {}
    for name, model in BODY_MODELS.items():
        schema = model.model_json_schema(ref_template=COMPONENTS)
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    return out
