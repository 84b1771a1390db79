"""A test harness around a deployed Exchange: accounts, tokens, signed orders, batches, and
custom-error decoding. Works on eth-tester and anvil alike (both have unlocked accounts)."""

from __future__ import annotations

import ast
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_account import Account as EthAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from backend.chain.artifacts import load
from backend.chain.exchange import (
    SKIP_REASONS,
    EncodedBatch,
    ExchangeReader,
    FillInput,
    Kill,
    SignedCancel,
    SignedCancelAll,
    SignedOrder,
    deploy_exchange,
    encode_batch,
    settle_calldata,
)
from backend.domain.types import PRICE_SCALE, Side, TimeInForce
from backend.eip712 import Cancel, CancelAll, Domain, Order, Withdrawal
from backend.eip712.messages import MAX_FEE_BPS
from backend.eip712.signing import Signature, sign

SETTLE_GAS = 14_000_000
TX_GAS = 1_000_000
UNIT = 10**18  # one WETH
USDC = 10**6
PRICE = 3000 * USDC * PRICE_SCALE // UNIT  # 3000 USDC per WETH: 3e9
LOT = 10**15  # 0.001 WETH: LOT * PRICE is a multiple of 1e18


@dataclass(frozen=True)
class Account:
    address: str
    key: str


def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for name in ("Exchange", "EvilToken", "AdminTimelock"):
        for item in load(name).abi:
            if item["type"] != "error":
                continue
            types = [i["type"] for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = (item["name"], types)
    return table


ERRORS = _error_table()


class RevertError(Exception):
    def __init__(self, name: str, args: tuple[Any, ...], data: bytes) -> None:
        super().__init__(f"{name}{args}")
        self.name = name
        self.args_ = args
        self.data = data


def revert_data(exc: BaseException) -> bytes | None:
    """Revert data from an eth-tester or JSON-RPC failure."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        return bytes.fromhex(data["data"][2:])
    message = str(exc.args[0]) if exc.args else ""
    prefix = "execution reverted: "
    if message.startswith(prefix) and message[len(prefix) :].startswith("b"):
        raw = ast.literal_eval(message[len(prefix) :])
        if isinstance(raw, bytes):
            return raw
    return None


def decode_error(data: bytes) -> tuple[str, tuple[Any, ...]]:
    name, types = ERRORS.get(data[:4], (f"unknown:{data[:4].hex()}", []))
    values = abi_decode(types, data[4:]) if types else ()
    return name, tuple(
        to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)
    )


@dataclass
class Harness:
    w3: Web3
    accounts: list[Account]
    exit_delay: int = 10
    exchange: ExchangeReader = field(init=False)
    weth: Any = field(init=False)
    usdc: Any = field(init=False)
    wbtc: Any = field(init=False)
    nonces: dict[str, int] = field(default_factory=dict)
    withdrawal_nonces: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        address = deploy_exchange(
            self.w3,
            deployer=self.admin.address,
            admin=self.admin.address,
            operator=self.operator.address,
            fee_recipient=self.fee_recipient.address,
            exit_delay=self.exit_delay,
        )
        self.exchange = ExchangeReader.at(self.w3, address)
        self.weth = self.deploy("DemoToken", "Wrapped Ether", "WETH", 18)
        self.usdc = self.deploy("DemoToken", "USD Coin", "USDC", 6)
        self.wbtc = self.deploy("DemoToken", "Wrapped BTC", "WBTC", 8)
        for token in (self.weth, self.usdc, self.wbtc):
            self.send(token.functions.approve(address, 2**256 - 1), self.admin)

    # --- accounts -------------------------------------------------------------------------
    @property
    def admin(self) -> Account:
        return self.accounts[0]

    @property
    def operator(self) -> Account:
        return self.accounts[1]

    @property
    def fee_recipient(self) -> Account:
        return self.accounts[2]

    @property
    def traders(self) -> list[Account]:
        return self.accounts[3:]

    @property
    def contract(self) -> Any:
        return self.exchange.contract

    @property
    def domain(self) -> Domain:
        return Domain(self.w3.eth.chain_id, self.exchange.address)

    # --- transactions ---------------------------------------------------------------------
    def deploy(self, name: str, *args: Any) -> Any:
        artifact = load(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = factory.constructor(*args).transact({"from": self.admin.address, "gas": 3_000_000})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)

    def send(self, fn: ContractFunction, sender: Account, gas: int = TX_GAS) -> TxReceipt:
        """Sends a transaction that must succeed (a revert raises `RevertError`)."""
        self.check(fn, sender)
        tx = fn.transact({"from": to_checksum_address(sender.address), "gas": gas})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1, receipt
        return receipt

    def check(self, fn: ContractFunction, sender: Account) -> None:
        """eth_call `fn`; raises `RevertError` with the decoded custom error if it reverts."""
        self.call_raw(fn._encode_transaction_data(), fn.address, sender)

    def call_raw(self, data: str | bytes, to: str, sender: Account, gas: int = SETTLE_GAS) -> bytes:
        try:
            return bytes(
                self.w3.eth.call({"from": sender.address, "to": to, "data": data, "gas": gas})
            )
        except Exception as exc:
            raw = revert_data(exc)
            if raw is None:
                raise
            name, args = decode_error(raw)
            raise RevertError(name, args, raw) from exc

    def error_of(self, fn: ContractFunction, sender: Account) -> RevertError:
        try:
            self.check(fn, sender)
        except RevertError as err:
            return err
        raise AssertionError("expected a revert")

    def expect_revert(self, name: str, fn: ContractFunction, sender: Account) -> tuple[Any, ...]:
        err = self.error_of(fn, sender)
        assert err.name == name, f"expected {name}, got {err}"
        return err.args_

    # --- funding --------------------------------------------------------------------------
    def fund(self, trader: Account | str, token: Any, amount: int) -> None:
        """Mints to the admin and deposits for `trader` (depositFor)."""
        address = trader if isinstance(trader, str) else trader.address
        self.send(token.functions.mint(self.admin.address, amount), self.admin)
        self.send(self.contract.functions.depositFor(address, token.address, amount), self.admin)

    def deposit(self, trader: Account, token: Any, amount: int) -> TxReceipt:
        """The trader's own deposit (mint, approve, deposit)."""
        self.send(token.functions.mint(trader.address, amount), self.admin)
        self.send(token.functions.approve(self.exchange.address, amount), trader)
        return self.send(self.contract.functions.deposit(token.address, amount), trader)

    def balance(self, trader: Account | str, token: Any) -> int:
        address = trader if isinstance(trader, str) else trader.address
        return self.exchange.balance_of(address, token.address)

    # --- messages -------------------------------------------------------------------------
    def next_nonce(self, trader: Account) -> int:
        n = self.nonces.get(trader.address, 1)
        self.nonces[trader.address] = n + 1
        return n

    def order(
        self,
        trader: Account,
        side: Side,
        amount: int,
        price: int = PRICE,
        *,
        nonce: int | None = None,
        base: Any = None,
        quote: Any = None,
        expiry: int = 0,
        max_fee_bps: int = MAX_FEE_BPS,
        time_in_force: TimeInForce = TimeInForce.GTC,
        signer: Account | None = None,
    ) -> SignedOrder:
        order = Order(
            trader=trader.address,
            baseToken=(base or self.weth).address,
            quoteToken=(quote or self.usdc).address,
            side=side,
            price=price,
            amount=amount,
            timeInForce=time_in_force,
            nonce=self.next_nonce(trader) if nonce is None else nonce,
            expiry=expiry,
            maxFeeBps=max_fee_bps,
        )
        return SignedOrder(order, sign(order, self.domain, (signer or trader).key))

    def order_hash(self, signed: SignedOrder | Order) -> bytes:
        order = signed.order if isinstance(signed, SignedOrder) else signed
        return self.exchange.order_hash(order)

    def cancel(self, signed: SignedOrder, signer: Account | None = None) -> SignedCancel:
        order = signed.order
        msg = Cancel(trader=order.trader, orderHash=self.order_hash(order))
        key = (signer or self._account(order.trader)).key
        return SignedCancel(order, sign(msg, self.domain, key))

    def cancel_all(
        self, trader: Account, below: int, base: Any = None, quote: Any = None
    ) -> SignedCancelAll:
        zero = "0x" + "00" * 20
        msg = CancelAll(
            trader=trader.address,
            baseToken=base.address if base is not None else zero,
            quoteToken=quote.address if quote is not None else zero,
            nonceBelow=below,
        )
        return SignedCancelAll(msg, sign(msg, self.domain, trader.key))

    def withdrawal(
        self,
        trader: Account,
        token: Any,
        amount: int,
        nonce: int | None = None,
        expiry: int | None = None,
    ) -> Withdrawal:
        if nonce is None:
            nonce = self.withdrawal_nonces.get(trader.address, 0)
            self.withdrawal_nonces[trader.address] = nonce + 1
        if expiry is None:
            expiry = self.timestamp() + 3_600
        return Withdrawal(
            trader=trader.address, token=token.address, amount=amount, nonce=nonce, expiry=expiry
        )

    def withdraw_fn(self, w: Withdrawal, signature: Signature | bytes) -> ContractFunction:
        sig = signature if isinstance(signature, bytes) else signature.to_bytes()
        return self.contract.functions.withdraw(
            (w.trader, w.token, w.amount, w.nonce, w.expiry), sig
        )

    def _account(self, address: str) -> Account:
        for a in self.accounts:
            if a.address.lower() == address.lower():
                return a
        raise KeyError(address)

    # --- settlement -----------------------------------------------------------------------
    def batch(
        self,
        fills: Sequence[FillInput],
        cancels: Sequence[SignedCancel] = (),
        cancel_alls: Sequence[SignedCancelAll] = (),
        kills: Sequence[Kill] = (),
        closed: Collection[Order] = frozenset(),
    ) -> EncodedBatch:
        return encode_batch(fills, cancels, cancel_alls, kills, closed)

    def settle_raw(
        self, batch: EncodedBatch, batch_id: int | None = None, sender: Account | None = None
    ) -> TxReceipt:
        batch_id = self.exchange.last_batch_id() + 1 if batch_id is None else batch_id
        data = settle_calldata(batch_id, batch)
        sender = sender or self.operator
        self.call_raw(data, self.exchange.address, sender)
        tx = self.w3.eth.send_transaction(
            {"from": sender.address, "to": self.exchange.address, "data": data, "gas": SETTLE_GAS}
        )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1, receipt
        return receipt

    def settle(
        self,
        fills: Sequence[FillInput],
        cancels: Sequence[SignedCancel] = (),
        cancel_alls: Sequence[SignedCancelAll] = (),
        batch_id: int | None = None,
    ) -> TxReceipt:
        return self.settle_raw(self.batch(fills, cancels, cancel_alls), batch_id)

    def settle_skips(
        self,
        fills: Sequence[FillInput] | EncodedBatch,
        cancels: Sequence[SignedCancel] = (),
        cancel_alls: Sequence[SignedCancelAll] = (),
    ) -> list[tuple[int, bytes, str]]:
        """Settles (the batch must go through) and returns its `FillSkipped` events as
        (fill index, order hash, reason name)."""
        batch = (
            fills if isinstance(fills, EncodedBatch) else self.batch(fills, cancels, cancel_alls)
        )
        before = self.exchange.last_batch_id()
        receipt = self.settle_raw(batch)
        assert self.exchange.last_batch_id() == before + 1
        events = self.contract.events.FillSkipped().process_receipt(receipt, errors=DISCARD)
        return [
            (
                int(e["args"]["fillIndex"]),
                bytes(e["args"]["orderHash"]),
                SKIP_REASONS[e["args"]["reason"]],
            )
            for e in events
        ]

    def expect_skip(self, reason: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        """Settles a batch in which exactly one fill is skipped, for `reason`; returns its
        (fill index, order hash)."""
        skips = self.settle_skips(*args, **kwargs)
        assert [r for _, _, r in skips] == [reason], skips
        return skips[0][0], skips[0][1]

    def settle_error(
        self,
        fills: Sequence[FillInput] | EncodedBatch,
        cancels: Sequence[SignedCancel] = (),
        cancel_alls: Sequence[SignedCancelAll] = (),
        *,
        batch_id: int | None = None,
        sender: Account | None = None,
    ) -> RevertError:
        batch = (
            fills if isinstance(fills, EncodedBatch) else self.batch(fills, cancels, cancel_alls)
        )
        batch_id = self.exchange.last_batch_id() + 1 if batch_id is None else batch_id
        try:
            self.call_raw(
                settle_calldata(batch_id, batch), self.exchange.address, sender or self.operator
            )
        except RevertError as err:
            return err
        raise AssertionError("expected the batch to revert")

    def expect_settle_revert(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        err = self.settle_error(*args, **kwargs)
        assert err.name == name, f"expected {name}, got {err}"
        return err.args_

    # --- chain control --------------------------------------------------------------------
    def snapshot(self) -> Any:
        tester = getattr(self.w3.provider, "ethereum_tester", None)
        if tester is not None:
            return tester.take_snapshot()
        return self.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

    def revert(self, snapshot_id: Any) -> None:
        tester = getattr(self.w3.provider, "ethereum_tester", None)
        if tester is not None:
            tester.revert_to_snapshot(snapshot_id)
        else:
            self.w3.provider.make_request("evm_revert", [snapshot_id])  # type: ignore[arg-type]
        self.nonces.clear()
        self.withdrawal_nonces.clear()

    def timestamp(self) -> int:
        """The latest block's time (unix seconds)."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def warp(self, seconds: int) -> None:
        """Moves the chain's clock `seconds` ahead and mines a block there."""
        tester = getattr(self.w3.provider, "ethereum_tester", None)
        if tester is not None:
            # time_travel mines the block before `target`; one more block lands on or after it
            tester.time_travel(self.timestamp() + seconds)
            tester.mine_blocks(1)
        else:
            self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
            self.mine(1)

    def mine(self, blocks: int) -> None:
        tester = getattr(self.w3.provider, "ethereum_tester", None)
        if tester is not None:
            tester.mine_blocks(blocks)
        else:
            self.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


def fill(
    maker: SignedOrder, taker: SignedOrder, amount: int, maker_fee: int = 0, taker_fee: int = 0
) -> FillInput:
    return FillInput(maker, taker, amount, maker_fee, taker_fee)


def eth_tester_accounts(count: int = 10) -> list[Account]:
    """eth-tester's default accounts: private keys 1..count."""
    keys = ["0x" + i.to_bytes(32, "big").hex() for i in range(1, count + 1)]
    return [Account(EthAccount.from_key(k).address, k) for k in keys]
