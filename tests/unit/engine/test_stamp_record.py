"""`stamp_record` (one native call per command of a group commit) gives exactly what `stamp`
then `encode_record` give, for every command type, with and without an intake."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.engine.client import Intake
from backend.engine.records import decode_record, encode_record, stamp, stamp_record
from backend.matching import commands as c
from tests.unit.engine.helpers import SIGNATURE
from tests.unit.matching.test_codec import commands, hot_commands

u64 = st.integers(0, 2**64 - 1)
intakes = st.none() | st.just(Intake(signature=SIGNATURE)) | st.just(Intake())


@settings(max_examples=300)
@given(st.one_of(commands, hot_commands), u64, u64, intakes)
def test_stamp_record_equals_stamp_then_encode(
    command: c.Command, seq: int, now: int, intake: Intake | None
) -> None:
    stamped, payload = stamp_record(command, seq, now, intake)
    expected = stamp(command, seq, now)
    assert stamped == expected
    assert type(stamped) is type(command)
    assert payload == encode_record(expected, intake)
    assert decode_record(payload) == (expected, intake)


def test_the_hot_commands_take_the_native_path() -> None:
    from backend import _native

    h = b"\x01" * 32
    trader = "0x" + "ab" * 20
    for command in (c.CancelOrder(0, 0, h, trader),):
        _, payload = _native.stamp_record(command, 7, 9)
        assert payload is not None
        assert payload == encode_record(stamp(command, 7, 9))
