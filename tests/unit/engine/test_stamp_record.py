"""`stamp_record` (one native call per command of a group commit) gives exactly what `stamp`
then `encode_record` give, for every command type, with and without an intake."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.engine.client import Intake
from backend.engine.records import (
    decode_record,
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
    stamped, payloads = stamp_records([g[0] for g in group], first_seq, now, [g[1] for g in group])
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
