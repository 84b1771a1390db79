"""The two engines a differential test runs side by side, and how to compare what they say.

`candidate` is the engine production runs (the native core when it is built), `reference` the
Python model it is checked against. Without a native build both are the Python engine, so the
harness itself stays exercised. `HYBRIDEX_TEST_ENGINES=reference,reference` forces that.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Protocol

from backend.matching import events as ev
from backend.matching.commands import Command
from backend.matching.engine import PythonEngine as ReferenceEngine
from backend.matching.view import FrozenState


class EngineLike(Protocol):
    last_seq: int

    def apply(self, command: Command) -> list[Any]: ...

    def state_hash(self) -> str: ...

    def validate_invariants(self) -> None: ...

    def to_snapshot(self) -> bytes: ...

    def freeze(self) -> FrozenState: ...


@dataclass(frozen=True)
class EngineKind:
    name: str
    new: Callable[[], EngineLike]
    from_snapshot: Callable[[bytes], EngineLike]


REFERENCE = EngineKind("reference", ReferenceEngine, ReferenceEngine.from_snapshot)


def _native() -> EngineKind | None:
    try:
        from backend.matching.native import NativeEngine
    except ImportError:  # not built
        return None
    return EngineKind("native", NativeEngine, NativeEngine.from_snapshot)


NATIVE = _native()


def _kind(name: str) -> EngineKind:
    if name == "reference":
        return REFERENCE
    if name == "native":
        if NATIVE is None:
            raise RuntimeError("HYBRIDEX_TEST_ENGINES names the native engine, which is not built")
        return NATIVE
    raise RuntimeError(f"unknown engine {name!r} in HYBRIDEX_TEST_ENGINES")


def pair() -> tuple[EngineKind, EngineKind]:
    """(candidate, reference)."""
    names = os.environ.get("HYBRIDEX_TEST_ENGINES")
    if names:
        a, b = names.split(",")
        return _kind(a.strip()), _kind(b.strip())
    return (NATIVE or REFERENCE), REFERENCE


_EVENT_FIELDS = {cls.__name__: [f.name for f in fields(cls)] for cls in ev.EVENT_TYPES}


def normalise(event: Any) -> tuple[Any, ...]:
    """An event as (type name, (field, value type, value)…): equal only if both engines
    emitted the same event with values of the same Python types (an int where a Side is due
    would break consumers that test `is Side.BUY`)."""
    name = type(event).__name__
    names = _EVENT_FIELDS.get(name)
    if names is None or not is_dataclass(event):
        return (name, repr(event))
    return (name, *((f, type(v).__name__, v) for f in names for v in (getattr(event, f),)))


def normalise_all(events: list[Any]) -> list[tuple[Any, ...]]:
    return [normalise(e) for e in events]
