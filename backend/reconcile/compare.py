"""The comparison itself: pure, so every kind of discrepancy is unit-tested on plain data.

For each (trader, token) the engine's ledger must equal the chain's internal balance at the
confirmed block, plus the fills the ledger holds that the chain has not applied, less the
confirmed deposits and withdrawals the ledger has not applied yet. What is in flight is
explained; what is left is a discrepancy. A deposit or withdrawal whose engine answer the
indexer has not recorded may be in the ledger already (the persister can store it first):
the ledger may hold any of those. Failed fills and refused chain effects are
explained too (so one cause is not reported twice), and reported on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from backend.reconcile.reads import LedgerView, Pair


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: str
    """`balance_mismatch`, `failed_fill`, `refused_chain_effect`, `batch_mismatch` (a settled
    batch on chain that is not the one the worker signed, or one it never signed),
    `token_deficit` or `engine_mismatch` (the live engine and the database disagree)."""
    trader: str | None
    token: str | None
    amounts: dict[str, int]
    """Each side's amount (base units, signed where a change)."""
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self, block: int) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "trader": self.trader,
            "token": self.token,
            **{k: str(v) for k, v in self.amounts.items()},
            **self.detail,
            "block": block,
        }


@dataclass
class Report:
    block: int
    persister_seq: int
    accounts: int
    pairs: int
    tokens: dict[str, dict[str, int]]
    in_flight_fills: int
    in_flight_chain_effects: int
    discrepancies: list[Discrepancy]
    reverted_fills: int = 0
    """Fills the chain refused that the engine has undone (RevertFill): resolved."""
    engine: dict[str, Any] | None = None
    """The live engine's ledger against the database (`engine_side.EngineCheck.as_json`);
    None when the run had no way to the engine."""

    @property
    def clean(self) -> bool:
        return not self.discrepancies

    def as_json(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "persisterSeq": self.persister_seq,
            "accounts": self.accounts,
            "pairs": self.pairs,
            "tokens": {
                t: {k: str(v) for k, v in sides.items()} for t, sides in sorted(self.tokens.items())
            },
            "inFlight": {
                "fills": self.in_flight_fills,
                "chainEffects": self.in_flight_chain_effects,
            },
            "revertedFills": self.reverted_fills,
            "engine": self.engine,
            "discrepancies": [d.as_json(self.block) for d in self.discrepancies],
        }


def pairs_to_read(view: LedgerView) -> set[Pair]:
    """Every (trader, token) whose chain balance the comparison needs."""
    pairs = set(view.ledger) | view.chain_holders
    pairs |= {(e.trader, e.token) for e in (*view.in_flight, *view.refused)}
    for f in (*view.unsettled, *view.failed):
        pairs |= {(t, k) for t, k, _ in f.deltas}
    if view.fee_recipient is not None:
        pairs |= {(view.fee_recipient, token) for token in view.tokens}
    return pairs


MAX_SUBSETS_OF = 10  # unanswered effects of one pair whose every subset is tried


def _subset_sums(deltas: Sequence[int]) -> set[int]:
    """What the ledger may hold beyond the expected balance: any subset of the unanswered
    effects applied (beyond MAX_SUBSETS_OF of them, none or all)."""
    if len(deltas) > MAX_SUBSETS_OF:
        return {0, sum(deltas)}
    sums = {0}
    for d in deltas:
        sums |= {s + d for s in sums}
    return sums


def compare(view: LedgerView, chain: dict[Pair, int], held: dict[str, int]) -> Report:
    expected = dict(chain)
    for f in (*view.unsettled, *view.failed):
        for trader, token, delta in f.deltas:
            expected[(trader, token)] = expected.get((trader, token), 0) + delta
    maybe: dict[Pair, list[int]] = {}  # unanswered effects' deltas the ledger may already hold
    for e in (*view.in_flight, *view.refused):
        expected[(e.trader, e.token)] = expected.get((e.trader, e.token), 0) - e.delta
        if e.unanswered:
            maybe.setdefault((e.trader, e.token), []).append(e.delta)
    out: list[Discrepancy] = []
    for pair in sorted(set(expected) | set(view.ledger)):
        ledger, want = view.ledger.get(pair, 0), expected.get(pair, 0)
        if ledger != want and (ledger - want) not in _subset_sums(maybe.get(pair, ())):
            out.append(
                Discrepancy(
                    "balance_mismatch",
                    *pair,
                    amounts={
                        "ledger": ledger,
                        "chain": chain.get(pair, 0),
                        "expected": want,
                        "difference": ledger - want,
                    },
                )
            )
    for f in view.failed:
        for trader, token, delta in f.deltas:
            out.append(
                Discrepancy(
                    "failed_fill",
                    trader,
                    token,
                    amounts={"ledger": delta, "chain": 0},
                    detail={"fillId": f.fill_id, "seq": f.seq, "reason": f.failure_reason},
                )
            )
    for e in view.refused:
        out.append(
            Discrepancy(
                "refused_chain_effect",
                e.trader,
                e.token,
                amounts={"ledger": 0, "chain": e.delta},
                detail={"commandKind": e.kind, "outcome": e.outcome, "eventBlock": e.block_number},
            )
        )
    for b in view.batches:
        if (b.recorded_fill_count, b.recorded_fills_hash) != (
            b.chain_fill_count,
            b.chain_fills_hash,
        ):
            out.append(
                Discrepancy(
                    "batch_mismatch",
                    None,
                    None,
                    amounts={
                        "chainFills": b.chain_fill_count,
                        "recordedFills": -1
                        if b.recorded_fill_count is None
                        else b.recorded_fill_count,
                    },
                    detail={
                        "batchId": b.batch_id,
                        "eventBlock": b.block_number,
                        "chainFillsHash": "0x" + b.chain_fills_hash.hex(),
                        "recordedFillsHash": None
                        if b.recorded_fills_hash is None
                        else "0x" + b.recorded_fills_hash.hex(),
                    },
                )
            )
    tokens: dict[str, dict[str, int]] = {}
    for token, amount in held.items():
        internal = sum(v for (_, k), v in chain.items() if k == token)
        tokens[token] = {
            "held": amount,
            "internal": internal,
            "unattributed": max(amount - internal, 0),
        }
        if amount < internal:
            out.append(
                Discrepancy(
                    "token_deficit", None, token, amounts={"held": amount, "internal": internal}
                )
            )
    return Report(
        block=view.block,
        persister_seq=view.persister_seq,
        accounts=len({t for t, _ in expected} | {t for t, _ in view.ledger}),
        pairs=len(set(expected) | set(view.ledger)),
        tokens=tokens,
        in_flight_fills=len(view.unsettled),
        in_flight_chain_effects=len(view.in_flight),
        discrepancies=out,
        reverted_fills=view.reverted,
    )
