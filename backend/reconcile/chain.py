"""The chain's side, read at one block: internal balances, the tokens the Exchange holds,
and the last applied batch. Batched JSON-RPC `eth_call`s, so 100k accounts are a few hundred
HTTP requests, not 100k."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from eth_utils.abi import function_signature_to_4byte_selector

from indexer.rpc import RpcClient

BATCH = 500
_BALANCE_OF = function_signature_to_4byte_selector("balanceOf(address,address)")
_ERC20_BALANCE_OF = function_signature_to_4byte_selector("balanceOf(address)")
_LAST_BATCH_ID = function_signature_to_4byte_selector("lastBatchId()")


def _word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address.removeprefix("0x"))


class ChainReader:
    def __init__(self, rpc: RpcClient, exchange: str) -> None:
        self.rpc = rpc
        self.exchange = exchange

    def _calls(self, to: str, datas: Sequence[bytes], block: int) -> list[int]:
        out: list[int] = []
        tag = hex(block)
        for i in range(0, len(datas), BATCH):
            params = [[{"to": to, "data": "0x" + d.hex()}, tag] for d in datas[i : i + BATCH]]
            out.extend(int(r, 16) for r in self.rpc.batch("eth_call", params))
        return out

    def last_batch_id(self, block: int) -> int:
        return self._calls(self.exchange, [_LAST_BATCH_ID], block)[0]

    def internal_balances(
        self, pairs: Iterable[tuple[str, str]], block: int
    ) -> dict[tuple[str, str], int]:
        keys = sorted(pairs)
        datas = [_BALANCE_OF + _word(t) + _word(k) for t, k in keys]
        return dict(zip(keys, self._calls(self.exchange, datas, block), strict=True))

    def held(self, tokens: Iterable[str], block: int) -> dict[str, int]:
        """What each token's contract says the Exchange holds."""
        out: dict[str, int] = {}
        for token in sorted(tokens):
            out[token] = self._calls(token, [_ERC20_BALANCE_OF + _word(self.exchange)], block)[0]
        return out
