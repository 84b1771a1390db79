"""Signature check per order: the API's native check against libsecp256k1's recovery alone.

Usage: python bench/sig.py [--n N] [--json] [--quick]

- "fast" is the API's full check (`backend.eip712.signed.check` + `verified()`, native: strict
  parsing of the JSON order and signature, EIP-712 digest, recovery, compare), from the JSON
  body to the parsed `Order`.
- "floor" is libsecp256k1's public-key recovery alone, digest precomputed, through the same
  native module and the same build of the library (`_native.sig_recover_only`): no check on
  this machine can be cheaper. coincurve's recovery (another build of the library) is shown
  beside it.
- "reference" is the Python implementation (`parsing` + `hashing` + coincurve), "baseline"
  eth_account's generic typed-data path.

Target (issue 14): fast ≤ 1.15 × floor, both from this run. The paths take turns by chunks of
200 orders, so that load from other processes falls on all of them alike while each chunk
runs with its own code and data warm (as in an API worker).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine, print_machine
from coincurve import PublicKey
from eth_account import Account
from eth_account.messages import encode_typed_data

from backend import _native
from backend.domain.types import Side, TimeInForce
from backend.eip712.domain import Domain
from backend.eip712.hashing import digest, typed_data
from backend.eip712.messages import Order
from backend.eip712.parsing import message_to_json, parse_order, parse_signature
from backend.eip712.signed import check_native, check_reference
from backend.eip712.signing import sign

DOMAIN = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")
BASE = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
QUOTE = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
TARGET_RATIO = 1.15
CHUNK = 200

Item = tuple[dict[str, object], str]


def make_orders(n: int) -> list[Item]:
    keys = ["0x" + f"{i + 1:064x}" for i in range(16)]
    out = []
    for i in range(n):
        key = keys[i % len(keys)]
        order = Order(
            trader=Account.from_key(key).address,
            baseToken=BASE,
            quoteToken=QUOTE,
            side=Side(i % 2),
            price=3_000_000_000 + i,
            amount=10**15 * (1 + i % 100),
            timeInForce=TimeInForce.GTC,
            nonce=1_700_000_000_000 + i,
            expiry=0,
        )
        out.append((message_to_json(order), "0x" + sign(order, DOMAIN, key).to_bytes().hex()))
    return out


def fast(item: Item) -> bytes:
    return check_native(Order, item[0], item[1], DOMAIN).verified()


def reference(item: Item) -> bytes:
    return check_reference(Order, item[0], item[1], DOMAIN).verified()


def recovery_input(item: Item) -> tuple[bytes, bytes, int]:
    raw = parse_signature(item[1])
    return digest(parse_order(item[0]), DOMAIN), raw[:64], raw[64] - 27


def floor(x: tuple[bytes, bytes, int]) -> bytes:
    return _native.sig_recover_only(x[0], x[1], x[2])


def floor_coincurve(x: tuple[bytes, bytes, int]) -> PublicKey:
    return PublicKey.from_signature_and_message(x[1] + bytes([x[2]]), x[0], hasher=None)


def generic(item: Item) -> str:
    body, sig = item
    order = parse_order(body)
    signable = encode_typed_data(full_message=typed_data(order, DOMAIN))
    signer: str = Account.recover_message(signable, signature=bytes.fromhex(sig[2:]))
    assert signer == order.trader
    return signer


def timed(fn: Callable[[Any], object], x: object) -> float:
    t0 = time.perf_counter_ns()
    fn(x)
    return (time.perf_counter_ns() - t0) / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,000 orders")
    args = ap.parse_args()
    if args.quick:
        args.n = 1_000
    items = make_orders(args.n)
    inputs = [recovery_input(item) for item in items]
    for item, x in zip(items[:500], inputs, strict=False):  # warm caches
        fast(item), reference(item), floor(x), floor_coincurve(x)
    fast_us: list[float] = []
    ref_us: list[float] = []
    floor_us: list[float] = []
    coincurve_us: list[float] = []
    for at in range(0, len(items), CHUNK):
        chunk, xs = items[at : at + CHUNK], inputs[at : at + CHUNK]
        fast_us += [timed(fast, item) for item in chunk]
        floor_us += [timed(floor, x) for x in xs]
        ref_us += [timed(reference, item) for item in chunk]
        coincurve_us += [timed(floor_coincurve, x) for x in xs]
    generic_us = [timed(generic, item) for item in items[: max(1, args.n // 10)]]

    def pct(xs: list[float], q: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]

    def mean(xs: list[float]) -> float:
        return statistics.fmean(xs)

    ratio = mean(fast_us) / mean(floor_us)
    result = {
        "n": args.n,
        "fast_mean_us": round(mean(fast_us), 1),
        "fast_p50_us": round(pct(fast_us, 0.5), 1),
        "fast_p99_us": round(pct(fast_us, 0.99), 1),
        "floor_recover_mean_us": round(mean(floor_us), 1),
        "floor_recover_p50_us": round(pct(floor_us, 0.5), 1),
        "fast_over_floor": round(ratio, 3),
        "fast_over_floor_p50": round(pct(fast_us, 0.5) / pct(floor_us, 0.5), 3),
        "target_ratio": TARGET_RATIO,
        "floor_coincurve_mean_us": round(mean(coincurve_us), 1),
        "reference_mean_us": round(mean(ref_us), 1),
        "baseline_eth_account_mean_us": round(mean(generic_us), 1),
        "speedup_vs_reference": round(mean(ref_us) / mean(fast_us), 2),
    }
    print("Signature check per order (parse + digest + recover + compare)")
    print_machine()
    print(f"{'path':<42}{'mean µs':>10}{'p50 µs':>10}{'p99 µs':>10}")
    rows = [
        ("fast (native check)", fast_us),
        ("floor (libsecp256k1 recovery alone)", floor_us),
        ("floor, coincurve's build", coincurve_us),
        ("reference (Python parsing + coincurve)", ref_us),
        ("baseline (eth_account typed data)", generic_us),
    ]
    for name, xs in rows:
        print(f"{name:<42}{mean(xs):>10.1f}{pct(xs, 0.5):>10.1f}{pct(xs, 0.99):>10.1f}")
    ok = "✔" if ratio <= TARGET_RATIO else "✗"
    print(f"fast / floor = {ratio:.3f} (target ≤ {TARGET_RATIO}) {ok}")
    if args.json:
        print(json.dumps({**result, "machine": machine()}))


if __name__ == "__main__":
    main()
