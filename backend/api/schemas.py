"""OpenAPI documentation of the signed request bodies and the main answers.

These models only *describe* the interface: signed bodies are parsed by the strict parsers of
`backend.eip712.parsing` (pydantic would coerce `"1"`/`1`/`true`), never validated by these.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

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


class PlaceOrderBody(BaseModel):
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


class FillOut(BaseModel):
    makerOrderHash: str  # noqa: N815
    price: str
    amount: str
    quoteAmount: str  # noqa: N815
    fee: str
    seq: int
    fillIndex: int  # noqa: N815


class OrderOutcome(BaseModel):
    orderHash: str  # noqa: N815
    status: str = Field(
        description="open | partially_filled | filled | cancelled | expired | pending"
    )
    filled: str | None = None
    remaining: str | None = None
    market: str | None = None
    seq: int | None = None
    fills: list[FillOut] = Field(default_factory=list)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON request body the route parses itself (nested models
    inlined: `#/$defs/...` references would not resolve inside the OpenAPI document)."""
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, schema.get("$defs", {}))}},
        }
    }


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "invalid request or order"),
        (401, "INVALID_SIGNATURE"),
        (404, "UNKNOWN_MARKET / ORDER_NOT_FOUND"),
        (409, "NONCE_REUSED / ORDER_CANCELLED / DUPLICATE_CLIENT_ORDER_ID"),
        (413, "PAYLOAD_TOO_LARGE"),
        (422, "refused by risk or matching rules"),
        (429, "RATE_LIMITED"),
        (503, "ENGINE_UNAVAILABLE / PERSISTENCE_LAGGING"),
    )
}
