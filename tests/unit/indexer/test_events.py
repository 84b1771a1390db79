"""The decoder's fast path for static words gives exactly what eth_abi gives."""

from __future__ import annotations

import random

import pytest
from eth_abi import encode
from eth_abi.abi import decode
from eth_abi.exceptions import NonEmptyPaddingBytes
from eth_utils.address import to_checksum_address

from indexer.events import EventCodec
from indexer.rpc import Log


def _value(rng: random.Random, typ: str) -> object:
    if typ == "address":
        return "0x" + rng.randbytes(20).hex()
    if typ.startswith("uint"):
        return rng.getrandbits(int(typ[4:]))
    if typ.startswith("bytes"):
        return rng.randbytes(int(typ[5:]))
    assert typ == "bool", typ
    return rng.random() < 0.5


def _expected(typ: str, value: object) -> object:
    return to_checksum_address(str(value)) if typ == "address" else value


def test_every_followed_event_decodes_like_eth_abi() -> None:
    codec = EventCodec.exchange()
    rng = random.Random(5)
    for spec in codec.by_topic.values():
        assert spec.words is not None
        assert spec.topic_words is not None
        assert spec.plan is not None  # the hot path, not the general one, is what is tested
        for i in range(40):
            indexed = [_value(rng, t) for _, t in spec.indexed]
            data_values = [_value(rng, t) for _, t in spec.data]
            topics = (
                spec.topic,
                *(encode([t], [v]) for (_, t), v in zip(spec.indexed, indexed, strict=True)),
            )
            data = encode([t for _, t in spec.data], data_values)
            raw = Log(7, b"\x01" * 32, b"\x02" * 32, i, "0x" + "ab" * 20, topics, data)
            event = codec.decode(raw)
            assert event is not None
            assert event.name == spec.name
            want = {
                name: _expected(typ, decode([typ], topic)[0])
                for (name, typ), topic in zip(spec.indexed, topics[1:], strict=True)
            }
            if spec.data:
                values = decode([t for _, t in spec.data], data)
                want |= {n: _expected(t, v) for (n, t), v in zip(spec.data, values, strict=True)}
            assert dict(event.args) == want
            assert list(event.args) == list(spec.order)
            assert event.address == to_checksum_address("0x" + "ab" * 20)


def test_a_word_with_dirty_padding_falls_back_to_eth_abi() -> None:
    codec = EventCodec.exchange()
    spec = next(s for s in codec.by_topic.values() if s.name == "Deposited")
    trader, token, payer = ("0x" + bytes([n]).hex() * 20 for n in (1, 2, 3))
    topics = (spec.topic, encode(["address"], [trader]), encode(["address"], [token]))
    good = encode(["uint256", "address"], [5, payer])
    dirty = good[:32] + b"\xff" + good[33:]  # non-zero padding above the 20 address bytes
    ok = codec.decode(Log(1, b"\x01" * 32, b"\x02" * 32, 0, "0x" + "ab" * 20, topics, good))
    assert ok is not None
    assert ok.args["amount"] == 5
    assert ok.args["payer"] == to_checksum_address(payer)
    # The fast path does not judge a dirty word: eth_abi does, and refuses it.
    with pytest.raises(NonEmptyPaddingBytes):
        codec.decode(Log(1, b"\x01" * 32, b"\x02" * 32, 0, "0x" + "ab" * 20, topics, dirty))
