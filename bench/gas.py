"""Settlement gas per fill of the Exchange contract, on a local anvil (SPEC §12).

Scenarios (issue 3):
  steady  10 traders who already hold balances and have traded before, trading repeatedly;
          every fill is between two orders the contract has never seen (makers re-quote).
  fresh   every trader and every order new: each fill is between two traders who have only
          deposited (both tokens of the market) and never traded.
  mixed   half steady, half fresh; steady makers are filled by up to three takers each, and
          one maker per batch is left partly filled.
Every fill pays a maker fee (10 bps) and a taker fee (20 bps).

    .venv/bin/python bench/gas.py            # table
    .venv/bin/python bench/gas.py --json     # table, then one JSON object on the last line
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3

from backend.chain.anvil import Anvil
from backend.chain.artifacts import load
from backend.chain.exchange import (
    FillInput,
    SignedOrder,
    deploy_exchange,
    encode_batch,
    settle_calldata,
)
from backend.config import DEV_PRIVATE_KEYS
from backend.domain.types import Side, TimeInForce
from backend.eip712 import Domain, Order
from backend.eip712.signing import sign

SIZES = (1, 10, 50, 100, 200)
SCENARIOS = ("steady", "fresh", "mixed", "steady_ms_nonces")
# steady_ms_nonces: the steady market, but every trader uses millisecond timestamps as order
# nonces (SPEC §3's example) instead of a per-trader counter: each order then lands in a new
# 128-nonce bitmap word, which shows what the nonce scheme costs.
MS_NONCE_START = 1_764_000_000_000
MS_NONCE_STEP = 1_000
TX_GAS_CAP = 16_777_216  # EIP-7825 per-transaction gas cap
ANCHORS = {"0x v4 fill": "93k-112k gas", "IDEX v1 trade": "~140k gas"}
TARGETS = {"steady": 30_000, "fresh": 55_000}

WETH_UNIT = 10**18
USDC_UNIT = 10**6
PRICE = 3000 * USDC_UNIT  # 3000 USDC per WETH, in quote units per base unit × 1e18
LOT = 10**15
MAKER_FEE_BPS = 10
TAKER_FEE_BPS = 20
STEADY_TRADERS = 10
BLOCK_GAS_LIMIT = 60_000_000


@dataclass(frozen=True)
class Trader:
    address: str
    key: str


@dataclass
class Bench:
    """One Exchange deployment on an anvil, with helpers to fund traders and settle fills."""

    w3: Web3
    admin: str
    operator: str
    fee_recipient: str
    exchange: Any = None
    weth: Any = None
    usdc: Any = None
    funder: Any = None
    domain: Domain | None = None
    batch_id: int = 0
    trader_counter: int = 0
    nonces: dict[str, int] = field(default_factory=dict)
    ms_nonces: bool = False

    def setup(self) -> Bench:
        address = deploy_exchange(
            self.w3,
            deployer=self.admin,
            admin=self.admin,
            operator=self.operator,
            fee_recipient=self.fee_recipient,
            exit_delay=100,
        )
        self.exchange = self.w3.eth.contract(address=address, abi=load("Exchange").abi)
        self.domain = Domain(self.w3.eth.chain_id, address)
        self.weth = self._deploy("DemoToken", "Wrapped Ether", "WETH", 18)
        self.usdc = self._deploy("DemoToken", "USD Coin", "USDC", 6)
        self.funder = self._deploy("BenchFunder")
        return self

    def _deploy(self, name: str, *args: Any) -> Any:
        art = load(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        tx = factory.constructor(*args).transact({"from": self.admin, "gas": 5_000_000})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)

    def _transact(self, fn: Any, gas: int = 29_000_000) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(
            fn.transact({"from": self.admin, "gas": gas})
        )
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction failed: {receipt}")
        return receipt

    def new_traders(self, count: int) -> list[Trader]:
        out = []
        for _ in range(count):
            self.trader_counter += 1
            key = "0x" + keccak(b"hybridex-bench-trader-%d" % self.trader_counter).hex()
            out.append(Trader(Account.from_key(key).address, key))
        return out

    def fund(self, traders: Sequence[Trader], weth: int, usdc: int) -> None:
        """Deposits `weth` and `usdc` for every trader (BenchFunder → depositFor)."""
        for start in range(0, len(traders), 250):
            chunk = [t.address for t in traders[start : start + 250]]
            for token, amount in ((self.weth, weth), (self.usdc, usdc)):
                self._transact(token.functions.mint(self.funder.address, amount * len(chunk)))
                self._transact(
                    self.funder.functions.depositForAll(
                        self.exchange.address, token.address, chunk, amount
                    )
                )

    def order(self, trader: Trader, side: Side, amount: int) -> SignedOrder:
        nonce = self.nonces.get(trader.address, MS_NONCE_START if self.ms_nonces else 1)
        self.nonces[trader.address] = nonce + (MS_NONCE_STEP if self.ms_nonces else 1)
        order = Order(
            trader=trader.address,
            baseToken=self.weth.address,
            quoteToken=self.usdc.address,
            side=side,
            price=PRICE,
            amount=amount,
            timeInForce=TimeInForce.GTC,
            nonce=nonce,
            expiry=0,
        )
        assert self.domain is not None
        return SignedOrder(order, sign(order, self.domain, trader.key))

    def calldata(self, fills: Sequence[FillInput]) -> bytes:
        return settle_calldata(self.batch_id + 1, encode_batch(fills))

    def settle(self, fills: Sequence[FillInput]) -> int:
        """Settles one batch; returns its gasUsed."""
        tx = self.w3.eth.send_transaction(
            {
                "from": self.operator,
                "to": self.exchange.address,
                "data": self.calldata(fills),
                "gas": BLOCK_GAS_LIMIT - 1_000_000,
            }
        )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt["status"] != 1:
            raise RuntimeError(f"settleBatch reverted: {receipt}")
        self.batch_id += 1
        return int(receipt["gasUsed"])

    def estimate(self, fills: Sequence[FillInput]) -> int:
        """Gas limit the batch needs (eth_estimateGas), without sending it."""
        return int(
            self.w3.eth.estimate_gas(
                {"from": self.operator, "to": self.exchange.address, "data": self.calldata(fills)}
            )
        )


def fees(side_of_maker: Side, amount: int) -> tuple[int, int]:
    quote = amount * PRICE // 10**18
    maker_gets, taker_gets = (quote, amount) if side_of_maker is Side.SELL else (amount, quote)
    return maker_gets * MAKER_FEE_BPS // 10_000, taker_gets * TAKER_FEE_BPS // 10_000


def simple_fill(bench: Bench, maker: Trader, taker: Trader, side: Side, lots: int) -> FillInput:
    amount = lots * LOT
    maker_fee, taker_fee = fees(side, amount)
    return FillInput(
        bench.order(maker, side, amount), bench.order(taker, side.opposite, amount), amount,
        maker_fee, taker_fee,
    )  # fmt: skip


def steady_fills(
    bench: Bench, traders: Sequence[Trader], n: int, rng: random.Random
) -> list[FillInput]:
    fills = []
    for _ in range(n):
        maker, taker = rng.sample(list(traders), 2)
        fills.append(simple_fill(bench, maker, taker, rng.choice(list(Side)), rng.randint(1, 100)))
    return fills


def fresh_fills(bench: Bench, n: int, rng: random.Random) -> list[FillInput]:
    traders = bench.new_traders(2 * n)
    bench.fund(traders, 10 * WETH_UNIT, 100_000 * USDC_UNIT)
    return [
        simple_fill(
            bench, traders[2 * i], traders[2 * i + 1], rng.choice(list(Side)), rng.randint(1, 100)
        )
        for i in range(n)
    ]


def grouped_fills(
    bench: Bench, traders: Sequence[Trader], n: int, rng: random.Random
) -> list[FillInput]:
    """Steady fills where each maker order is taken by up to three takers; the first maker of
    the batch keeps a remainder (partly filled)."""
    fills: list[FillInput] = []
    first = True
    while len(fills) < n:
        group = min(rng.randint(1, 3), n - len(fills))
        maker, *_ = rng.sample(list(traders), 1)
        takers = rng.sample([t for t in traders if t != maker], group)
        side = rng.choice(list(Side))
        lots = [rng.randint(1, 100) for _ in takers]
        total = sum(lots) * LOT + (LOT if first else 0)
        first = False
        maker_order = bench.order(maker, side, total)
        for taker, k in zip(takers, lots, strict=True):
            amount = k * LOT
            maker_fee, taker_fee = fees(side, amount)
            taker_order = bench.order(taker, side.opposite, amount)
            fills.append(FillInput(maker_order, taker_order, amount, maker_fee, taker_fee))
    return fills


def start_anvil() -> Anvil:
    return Anvil(extra_args=("--gas-limit", str(BLOCK_GAS_LIMIT))).start()


def dev_accounts() -> list[str]:
    return [Account.from_key(k).address for k in DEV_PRIVATE_KEYS]


@dataclass
class ScenarioResult:
    per_fill: dict[int, int]
    bench: Bench
    steady_traders: list[Trader]


def run_scenario(w3: Web3, scenario: str, sizes: Sequence[int], seed: int = 7) -> ScenarioResult:
    rng = random.Random(f"{scenario}-{seed}")
    admin, operator, fee_recipient = dev_accounts()[:3]
    bench = Bench(
        w3, admin, operator, fee_recipient, ms_nonces=scenario == "steady_ms_nonces"
    ).setup()
    traders = bench.new_traders(STEADY_TRADERS)
    bench.fund(traders, 1_000_000 * WETH_UNIT, 10**9 * USDC_UNIT)
    if scenario != "fresh":
        bench.settle(steady_fills(bench, traders, 200, rng))  # warm-up: they have traded before
    results: dict[int, int] = {}
    for n in sizes:
        if scenario in ("steady", "steady_ms_nonces"):
            fills = steady_fills(bench, traders, n, rng)
        elif scenario == "fresh":
            fills = fresh_fills(bench, n, rng)
        else:
            half = n // 2
            fills = grouped_fills(bench, traders, half, rng) + fresh_fills(bench, n - half, rng)
        results[n] = bench.settle(fills) // n
    return ScenarioResult(results, bench, traders)


def max_fills_per_tx(w3: Web3, per_fill: dict[int, int], seed: int = 7) -> int:
    """Largest all-fresh batch whose gas limit (eth_estimateGas) fits under the 2^24 cap."""
    rng = random.Random(f"max-{seed}")
    sizes = sorted(per_fill)
    hi_n, lo_n = sizes[-1], sizes[-2]
    marginal = (per_fill[hi_n] * hi_n - per_fill[lo_n] * lo_n) / (hi_n - lo_n)
    fixed = per_fill[hi_n] * hi_n - marginal * hi_n
    guess = int((TX_GAS_CAP - fixed) / marginal)
    admin, operator, fee_recipient = dev_accounts()[:3]
    bench = Bench(w3, admin, operator, fee_recipient).setup()
    pool = fresh_fills(bench, guess + 40, rng)
    lo, hi = 1, len(pool)  # invariant: lo fits; find the largest that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            fits = bench.estimate(pool[:mid]) <= TX_GAS_CAP
        except Exception:
            fits = False
        lo, hi = (mid, hi) if fits else (lo, mid - 1)
    if lo == len(pool):
        raise RuntimeError("max batch search ran out of funded fills; widen the pool")
    return lo


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def run(sizes: Sequence[int] = SIZES, find_max: bool = True) -> dict[str, Any]:
    with start_anvil() as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 120}))
        out: dict[str, Any] = {}
        for scenario in SCENARIOS:
            out[scenario] = {
                str(n): g for n, g in run_scenario(w3, scenario, sizes).per_fill.items()
            }
        if find_max:
            out["max_fills_per_tx"] = max_fills_per_tx(
                w3, {int(k): v for k, v in out["fresh"].items()}
            )
        return out


def table(result: dict[str, Any]) -> Iterator[str]:
    sizes = list(result["steady"])
    yield f"Hybridex settlement gas per fill — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    yield f"machine: {machine()}; chain: anvil (cancun), solc 0.8.30, optimizer runs 1e6"
    yield "fills/batch " + "".join(f"{n:>10}" for n in sizes)
    for scenario in SCENARIOS:
        yield f"{scenario:<12}" + "".join(f"{result[scenario][n]:>10,}" for n in sizes)
    if "max_fills_per_tx" in result:
        n = result["max_fills_per_tx"]
        yield f"max fills per tx under {TX_GAS_CAP:,} gas (all-fresh, worst case): {n}"
    yield "targets at 200 fills: steady <= 30,000, fresh <= 55,000"
    yield "anchors: " + "; ".join(f"{k} {v}" for k, v in ANCHORS.items())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line"
    )
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="comma-separated batch sizes"
    )
    parser.add_argument("--no-max", action="store_true", help="skip the max-fills-per-tx search")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: batches of 1 and 10, no max search"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.no_max = "1,10", True
    sizes = [int(s) for s in args.sizes.split(",")]
    result = run(sizes, find_max=not args.no_max)
    for line in table(result):
        print(line)
    if args.json:
        print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
