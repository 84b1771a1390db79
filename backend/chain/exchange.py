"""The Exchange contract from Python: deployment, `settleBatch` encoding, typed reads.

`encode_batch` / `settle_calldata` are the one encoder of settlement calldata: tests, the
benchmark and the settlement worker all build batches through them. The packed layout is
documented in `contracts/src/interfaces/IExchange.sol` and docs/contract.md.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from eth_abi.abi import encode as abi_encode
from eth_typing import ChecksumAddress
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from backend.chain.artifacts import load
from backend.eip712.domain import Domain
from backend.eip712.hashing import digest
from backend.eip712.messages import CancelAll, Order
from backend.eip712.signing import Signature

ZERO_ADDRESS: Final = "0x0000000000000000000000000000000000000000"
NO_TOKEN: Final = 0xFFFF
"""Token index meaning the zero address (a `CancelAll` for every market)."""
MAX_INDEX: Final = 0xFFFE
MAX_FEE: Final = (1 << 112) - 1
CLOSED: Final = 1 << 216
"""`PackedOrder.meta` flag (not signed): the engine closed the order after this batch's fills."""

BATCH_TUPLE_TYPE: Final = (
    "(address[],address[],(uint256,uint256,uint256,bytes32,bytes32)[],(uint256,uint256)[],"
    "(uint256,uint256,uint256,bytes32,bytes32)[],(uint256,bytes32,bytes32)[],(bytes32,uint256)[])"
)
SETTLE_BATCH_SELECTOR: Final = function_signature_to_4byte_selector(
    f"settleBatch(uint256,{BATCH_TUPLE_TYPE})"
)


@dataclass(frozen=True, slots=True)
class SignedOrder:
    order: Order
    signature: Signature


@dataclass(frozen=True, slots=True)
class FillInput:
    """One maker × taker match to settle: `amount` base units at the maker's price."""

    maker: SignedOrder
    taker: SignedOrder
    amount: int
    maker_fee: int = 0
    taker_fee: int = 0


@dataclass(frozen=True, slots=True)
class SignedCancel:
    """A trader-signed `Cancel`, with the preimage of the order it cancels."""

    order: Order
    signature: Signature
    """The trader's signature of `Cancel(trader, orderHash(order))`."""


@dataclass(frozen=True, slots=True)
class SignedCancelAll:
    cancel_all: CancelAll
    signature: Signature


@dataclass(frozen=True, slots=True)
class Kill:
    """An order the engine closed itself, committed unfillable by the batch (no signature: the
    contract lets the operator only ever close an order, which it could do by not matching)."""

    order_hash: bytes
    trader: str
    nonce: int


PackedOrderTuple = tuple[int, int, int, bytes, bytes]
BatchTuple = tuple[
    list[str],
    list[str],
    list[PackedOrderTuple],
    list[tuple[int, int]],
    list[PackedOrderTuple],
    list[tuple[int, bytes, bytes]],
    list[tuple[bytes, int]],
]


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """The `Batch` argument of `settleBatch`, plus the order table for diagnostics."""

    value: BatchTuple
    orders: tuple[Order, ...]
    """`value[2]` in order: index i of the packed orders is `orders[i]`."""

    @property
    def fill_count(self) -> int:
        return len(self.value[3])


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _meta(order: Order, v: int, trader_index: int, base_index: int, quote_index: int) -> int:
    if not 0 <= order.nonce < 1 << 64 or not 0 <= order.expiry < 1 << 64:
        raise ValueError("nonce and expiry are uint64")
    if not 0 <= order.maxFeeBps < 1 << 16:
        raise ValueError("maxFeeBps is uint16")
    return (
        order.nonce
        | (order.expiry << 64)
        | (int(order.side) << 128)
        | (int(order.timeInForce) << 136)
        | (v << 144)
        | (trader_index << 152)
        | (base_index << 168)
        | (quote_index << 184)
        | (order.maxFeeBps << 200)
    )


def _table(addresses: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    """Unique addresses sorted ascending (the contract requires it), and their indices."""
    unique: list[str] = sorted(
        {to_checksum_address(a) for a in addresses}, key=lambda a: int(a, 16)
    )
    if len(unique) > MAX_INDEX:
        raise ValueError(f"a batch holds at most {MAX_INDEX} traders / tokens / orders")
    return unique, {a: i for i, a in enumerate(unique)}


def encode_batch(
    fills: Sequence[FillInput],
    cancels: Sequence[SignedCancel] = (),
    cancel_alls: Sequence[SignedCancelAll] = (),
    kills: Sequence[Kill] = (),
    closed: Collection[Order] = frozenset(),
) -> EncodedBatch:
    """Builds the packed `Batch`: trader and token tables, each distinct signed order once,
    fills referencing them by index, then the signed cancels (applied after the fills), then
    the orders the engine closed that no fill uses (`kills`). An order of the fills that is in
    `closed` is flagged so the contract keeps no remainder for it."""
    order_index: dict[SignedOrder, int] = {}
    for fill in fills:
        for signed in (fill.maker, fill.taker):
            order_index.setdefault(signed, len(order_index))
    if len(order_index) > MAX_INDEX:
        raise ValueError(f"a batch holds at most {MAX_INDEX} orders")
    all_orders = [s.order for s in order_index] + [c.order for c in cancels]
    traders, trader_idx = _table(
        [o.trader for o in all_orders]
        + [c.cancel_all.trader for c in cancel_alls]
        + [k.trader for k in kills]
    )
    token_addresses = [t for o in all_orders for t in (o.baseToken, o.quoteToken)]
    token_addresses += [
        t
        for c in cancel_alls
        for t in (c.cancel_all.baseToken, c.cancel_all.quoteToken)
        if int(t, 16) != 0
    ]
    tokens, token_idx = _table(token_addresses)

    def pack(order: Order, sig: Signature) -> PackedOrderTuple:
        meta = _meta(
            order,
            sig.v,
            trader_idx[to_checksum_address(order.trader)],
            token_idx[to_checksum_address(order.baseToken)],
            token_idx[to_checksum_address(order.quoteToken)],
        )
        return (order.price, order.amount, meta, _word(sig.r), _word(sig.s))

    packed_orders = [_closed(pack(s.order, s.signature), s.order in closed) for s in order_index]
    packed_fills: list[tuple[int, int]] = []
    for fill in fills:
        if not (0 <= fill.maker_fee <= MAX_FEE and 0 <= fill.taker_fee <= MAX_FEE):
            raise ValueError("fees must fit in 112 bits")
        packed = (
            order_index[fill.maker]
            | (order_index[fill.taker] << 16)
            | (fill.maker_fee << 32)
            | (fill.taker_fee << 144)
        )
        packed_fills.append((fill.amount, packed))
    packed_cancels = [pack(c.order, c.signature) for c in cancels]

    def token_or_none(address: str) -> int:
        return NO_TOKEN if int(address, 16) == 0 else token_idx[to_checksum_address(address)]

    packed_cancel_alls: list[tuple[int, bytes, bytes]] = []
    for c in cancel_alls:
        ca = c.cancel_all
        meta = (
            ca.nonceBelow
            | (c.signature.v << 144)
            | (trader_idx[to_checksum_address(ca.trader)] << 152)
            | (token_or_none(ca.baseToken) << 168)
            | (token_or_none(ca.quoteToken) << 184)
        )
        packed_cancel_alls.append((meta, _word(c.signature.r), _word(c.signature.s)))
    packed_kills: list[tuple[bytes, int]] = []
    for k in kills:
        if len(k.order_hash) != 32 or not 0 <= k.nonce < 1 << 64:
            raise ValueError("a kill names a 32-byte order hash and a uint64 nonce")
        meta = k.nonce | (trader_idx[to_checksum_address(k.trader)] << 152)
        packed_kills.append((k.order_hash, meta))
    value: BatchTuple = (
        traders,
        tokens,
        packed_orders,
        packed_fills,
        packed_cancels,
        packed_cancel_alls,
        packed_kills,
    )
    return EncodedBatch(value=value, orders=tuple(s.order for s in order_index))


def _closed(packed: PackedOrderTuple, closed: bool) -> PackedOrderTuple:
    if not closed:
        return packed
    price, amount, meta, r, s = packed
    return (price, amount, meta | CLOSED, r, s)


def fills_hash(batch: EncodedBatch) -> bytes:
    """keccak256 of the batch's fills as sent: the `fillsHash` of its `BatchSettled` event."""
    return keccak(b"".join(_word(amount) + _word(packed) for amount, packed in batch.value[3]))


def settle_calldata(batch_id: int, batch: EncodedBatch) -> bytes:
    """Transaction data of `settleBatch(batchId, batch)`."""
    encoded = abi_encode(["uint256", BATCH_TUPLE_TYPE], [batch_id, batch.value])
    return SETTLE_BATCH_SELECTOR + encoded


# ----------------------------------------------------------------------------------------------
# Deployment and reads
# ----------------------------------------------------------------------------------------------


SKIP_REASONS = (
    "None",
    "Cancelled",
    "NonceInvalidated",
    "Expired",
    "TraderExited",
    "NotFillable",
    "Overfilled",
)
"""`IExchange.SkipReason`, by value."""


@cache
def exchange_abi() -> list[dict[str, Any]]:
    return load("Exchange").abi


def exchange_contract(w3: Web3, address: str) -> Contract:
    return w3.eth.contract(address=to_checksum_address(address), abi=exchange_abi())


def deploy_exchange(
    w3: Web3,
    *,
    deployer: str,
    admin: str,
    operator: str,
    fee_recipient: str,
    exit_delay: int,
    cancel_delay: int = 3_600,
    gas: int = 6_000_000,
) -> ChecksumAddress:
    """Deploys the Exchange from a node-managed (unlocked) `deployer`; returns its address."""
    artifact = load("Exchange")
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx_hash = factory.constructor(
        to_checksum_address(admin),
        to_checksum_address(operator),
        to_checksum_address(fee_recipient),
        exit_delay,
        cancel_delay,
    ).transact({"from": to_checksum_address(deployer), "gas": gas})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise RuntimeError(f"Exchange deployment failed: {tx_hash.to_0x_hex()}")
    return receipt["contractAddress"]


@dataclass(frozen=True)
class ExchangeReader:
    """Typed reads of a deployed Exchange."""

    w3: Web3
    address: ChecksumAddress

    @classmethod
    def at(cls, w3: Web3, address: str) -> ExchangeReader:
        return cls(w3, to_checksum_address(address))

    @property
    def contract(self) -> Contract:
        return exchange_contract(self.w3, self.address)

    def domain(self) -> Domain:
        return Domain(chain_id=self.w3.eth.chain_id, verifying_contract=self.address)

    def balance_of(self, trader: str, token: str) -> int:
        fn = self.contract.functions.balanceOf(
            to_checksum_address(trader), to_checksum_address(token)
        )
        return int(fn.call())

    def last_batch_id(self) -> int:
        return int(self.contract.functions.lastBatchId().call())

    def exit_block(self, trader: str) -> int:
        return int(self.contract.functions.exitBlock(to_checksum_address(trader)).call())

    def exit_delay(self) -> int:
        return int(self.contract.functions.exitDelay().call())

    def cancel_delay(self) -> int:
        return int(self.contract.functions.cancelDelay().call())

    def fee_recipient(self) -> ChecksumAddress:
        return to_checksum_address(self.contract.functions.feeRecipient().call())

    def filled_amount(self, order_hash: bytes) -> int:
        return int(self.contract.functions.filledAmount(order_hash).call())

    def is_nonce_used(self, trader: str, nonce: int) -> bool:
        return bool(self.contract.functions.isNonceUsed(to_checksum_address(trader), nonce).call())

    def is_withdrawal_nonce_used(self, trader: str, nonce: int) -> bool:
        fn = self.contract.functions.isWithdrawalNonceUsed(to_checksum_address(trader), nonce)
        return bool(fn.call())

    def paused(self) -> bool:
        return bool(self.contract.functions.paused().call())

    def order_hash(self, order: Order) -> bytes:
        """The order hash computed locally with this contract's domain."""
        return digest(order, self.domain())
