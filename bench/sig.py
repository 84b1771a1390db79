"""Signature check per order: fast digest + coincurve recovery vs eth_account's generic path.

Target (SPEC §12): ≤ 70 µs per order on the hot path. Usage: python bench/sig.py [--n N] [--json]

The "floor" row is libsecp256k1's public-key recovery alone (coincurve, digest precomputed):
no check on this machine can be cheaper than that.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine, print_machine
from coincurve import PublicKey
from eth_account import Account
from eth_account.messages import encode_typed_data

from backend.domain.types import Side, TimeInForce
from backend.eip712.domain import Domain
from backend.eip712.hashing import digest, typed_data
from backend.eip712.messages import Order
from backend.eip712.parsing import message_to_json, parse_order, parse_signature
from backend.eip712.recover import verify
from backend.eip712.signing import sign

DOMAIN = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")
BASE = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
QUOTE = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"


def make_orders(n: int) -> list[tuple[dict[str, object], str]]:
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


def per_call_us(fn, items) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for item in items:
        t0 = time.perf_counter_ns()
        fn(item)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


def fast(item: tuple[dict[str, object], str]) -> bytes:
    body, sig = item
    return verify(parse_order(body), parse_signature(sig), DOMAIN)


def recovery_input(item: tuple[dict[str, object], str]) -> tuple[bytes, bytes]:
    body, sig = item
    raw = parse_signature(sig)
    return raw[:64] + bytes([raw[64] - 27]), digest(parse_order(body), DOMAIN)


def recovery_only(pair: tuple[bytes, bytes]) -> PublicKey:
    return PublicKey.from_signature_and_message(pair[0], pair[1], hasher=None)


def generic(item: tuple[dict[str, object], str]) -> str:
    body, sig = item
    order = parse_order(body)
    signable = encode_typed_data(full_message=typed_data(order, DOMAIN))
    signer: str = Account.recover_message(signable, signature=bytes.fromhex(sig[2:]))
    assert signer == order.trader
    return signer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,000 orders")
    args = ap.parse_args()
    if args.quick:
        args.n = 1_000
    items = make_orders(args.n)
    per_call_us(fast, items[:500])  # warm caches
    fast_us = per_call_us(fast, items)
    generic_us = per_call_us(generic, items[: max(1, args.n // 10)])
    floor_us = per_call_us(recovery_only, [recovery_input(item) for item in items])

    def pct(xs: list[float], q: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]

    result = {
        "fast_mean_us": round(statistics.fmean(fast_us), 1),
        "fast_p50_us": round(pct(fast_us, 0.5), 1),
        "fast_p99_us": round(pct(fast_us, 0.99), 1),
        "baseline_eth_account_mean_us": round(statistics.fmean(generic_us), 1),
        "speedup": round(statistics.fmean(generic_us) / statistics.fmean(fast_us), 1),
        "floor_recover_mean_us": round(statistics.fmean(floor_us), 1),
        "floor_recover_p50_us": round(pct(floor_us, 0.5), 1),
        "target_us": 70,
    }
    print("Signature check per order (parse + digest + recover + compare)")
    print_machine()
    print(f"{'path':<37}{'mean µs':>10}{'p50 µs':>10}{'p99 µs':>10}")
    rows = [
        ("fast (hashing + coincurve)", fast_us),
        ("baseline (eth_account typed data)", generic_us),
        ("floor (libsecp256k1 recovery alone)", floor_us),
    ]
    for name, xs in rows:
        cells = f"{statistics.fmean(xs):>10.1f}{pct(xs, 0.5):>10.1f}{pct(xs, 0.99):>10.1f}"
        print(f"{name:<37}{cells}")
    print(f"speedup ×{result['speedup']}; target ≤ {result['target_us']} µs")
    if args.json:
        print(json.dumps({**result, "machine": machine()}))


if __name__ == "__main__":
    main()
