"""`stamp_record` (one native call per command of a group commit) gives exactly what `stamp`
then `encode_record` give, for every command type, with and without an intake."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.engine.client import Intake
from backend.engine.records import (
    decode_record,
    decode_submission,
    encode_intake,
    encode_record,
    stamp,
    stamp_record,
    stamp_records,
)
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


@settings(max_examples=100)
@given(
    st.lists(st.tuples(st.one_of(commands, hot_commands), intakes), max_size=12),
    st.integers(0, 2**63),
    st.none() | u64,
)
def test_stamp_records_equals_stamp_record_of_each(
    group: list[tuple[c.Command, Intake | None]], first_seq: int, now: int | None
) -> None:
    """The group's one native call gives each command's `stamp_record`, seqs counting up from
    `first_seq`, at `now` or, when None, at the command's own time."""
    tails = [encode_intake(g[1]) for g in group]
    stamped, payloads = stamp_records([g[0] for g in group], first_seq, now, tails)
    expected = [
        stamp_record(cmd, first_seq + i, cmd.now if now is None else now, intake)
        for i, (cmd, intake) in enumerate(group)
    ]
    assert stamped == [e[0] for e in expected]
    assert payloads == [e[1] for e in expected]
    assert [type(s) for s in stamped] == [type(g[0]) for g in group]


def test_stamp_records_refuses_a_group_holding_a_command_it_cannot_stamp() -> None:
    trader = "0x" + "ab" * 20
    good = c.CancelOrder(0, 0, b"\x01" * 32, trader)
    with pytest.raises(TypeError, match="not an engine command"):
        stamp_records([good, object(), good], 1, 5)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="seq beyond"):
        stamp_records([good, good], 2**64 - 1, 5)


@settings(max_examples=100)
@given(st.one_of(commands, hot_commands), intakes, u64)
def test_a_submission_is_journaled_with_the_intake_bytes_it_came_with(
    command: c.Command, intake: Intake | None, seq: int
) -> None:
    """The engine port decodes a submission and journals its intake's bytes as they came
    (`decode_submission`, then `stamp_records` with them): the record decodes to the command
    stamped and the same intake, whatever the spelling of the intake's JSON."""
    wire = encode_record(command, intake)
    got, got_intake, tail = decode_submission(wire)
    assert (got, got_intake) == decode_record(wire) == (command, intake)
    assert tail == encode_intake(intake)
    spelled = tail.replace(b",", b", ").replace(b":", b": ") if tail else tail
    _, (payload,) = stamp_records([got], seq, 5, [spelled])
    assert payload.endswith(spelled)
    assert decode_record(payload) == (stamp(command, seq, 5), intake)


@given(st.binary(min_size=0, max_size=70), st.integers(-(2**70), 2**70))
def test_a_signed_orders_intake_is_written_as_the_reference_writes_it(
    signature: bytes, fee: int
) -> None:
    from backend.engine.records import encode_intake_json

    intake = Intake(signature=signature, max_fee_bps=fee)
    assert encode_intake(intake) == encode_intake_json(intake)
    assert decode_record(encode_record(c.SweepExpired(0, 0), intake))[1] == intake
