"""Column types that make the database hold exactly what the domain holds (CONVENTIONS "Money").

Every type validates on the way in, so a float, a negative amount, a 31-byte hash or a lowercase
address never reaches a row, whatever process writes it. Both dialects store the same values:

- `U256`: `NUMERIC(78,0)` on PostgreSQL; on SQLite a 78-digit zero-padded decimal `VARCHAR(78)`,
  lossless (SQLite's own numbers are 64-bit or float) and ordered like the integers it encodes, so
  `ORDER BY`, `<`, `MAX()` and CHECKs such as `locked <= total` work on both. Do arithmetic in
  Python, never in SQL: `SUM()` / `+` on the SQLite encoding would go through floats.
- `Address`: `VARCHAR(42)`, always EIP-55 checksummed (any case accepted on the way in).
- `Bytes32` / `FixedBytes(n)`: `BYTEA` / `BLOB` of exactly n bytes (half the size of 0x-hex text,
  and the domain's `OrderHash` is `bytes` already).
- `IntEnumType` / `StrEnumType`: `SMALLINT` / `VARCHAR`, values as signed (`side` 0/1) or as the
  enum's string value; `enum_check` adds the matching CHECK constraint, so both dialects refuse
  what Python would.
- `UtcDateTime`: timezone-aware in and out, stored as UTC (SQLite's `CURRENT_TIMESTAMP` is UTC).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import Enum, IntEnum, StrEnum
from functools import lru_cache
from typing import Any, Generic, TypeVar

from eth_utils.address import to_checksum_address
from sqlalchemy import CheckConstraint, Dialect
from sqlalchemy.types import (
    NUMERIC,
    DateTime,
    LargeBinary,
    SmallInteger,
    String,
    TypeDecorator,
    TypeEngine,
)

UINT256_MAX = 2**256 - 1
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
U256_DIGITS = 78  # len(str(2**256 - 1))
ADDRESS_CACHE_SIZE = 1 << 15  # ~8 MB at most


@lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def checksum_address(value: str) -> str:
    """`value` EIP-55 checksummed, or ValueError: 0x + 40 hex digits, any single case or a
    correct checksum. Cached by the string: the persister binds the same few thousand traders
    and tokens in every group, and keccak per bind was most of its CPU (exceptions are not
    cached, so a bad value is refused every time)."""
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"not a 0x-hex address: {value!r}")
    checksummed = str(to_checksum_address(value))
    digits = value[2:]
    if value != checksummed and digits not in (digits.lower(), digits.upper()):
        raise ValueError(f"address with a bad EIP-55 checksum: {value!r}")
    return checksummed


def check_u256(value: object) -> int:
    """The value as a uint256, or TypeError/ValueError: no bool, float, Decimal or str coercion."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"uint256 must be an int, not {type(value).__name__}: {value!r}")
    if not 0 <= value <= UINT256_MAX:
        raise ValueError(f"uint256 out of range: {value}")
    return int(value)


class U256(TypeDecorator[int]):
    """An unsigned 256-bit integer: `NUMERIC(78,0)` on PostgreSQL, sortable text on SQLite."""

    impl = NUMERIC(U256_DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(U256_DIGITS))
        return dialect.type_descriptor(NUMERIC(U256_DIGITS, 0, asdecimal=True))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        number = check_u256(value)
        if dialect.name == "sqlite":
            return f"{number:0{U256_DIGITS}d}"
        return number  # psycopg sends a Python int as an exact numeric

    def process_literal_param(self, value: int | None, dialect: Dialect) -> str:
        if value is None:
            return "NULL"
        number = check_u256(value)
        return f"'{number:0{U256_DIGITS}d}'" if dialect.name == "sqlite" else str(number)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):
            return int(value, 10)
        # Decimal from NUMERIC(78,0): exact, integral by the column's scale.
        return int(value)

    @property
    def python_type(self) -> type[int]:
        return int


class Address(TypeDecorator[str]):
    """A 20-byte account address, stored (and returned) EIP-55 checksummed."""

    impl = String(42)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"not a 0x-hex address: {value!r}")
        return checksum_address(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return value

    @property
    def python_type(self) -> type[str]:
        return str


class FixedBytes(TypeDecorator[bytes]):
    """Exactly `length` raw bytes (hashes, signatures): `BYTEA` / `BLOB`."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"expected {self.length} bytes, not {type(value).__name__}")
        raw = bytes(value)
        if len(raw) != self.length:
            raise ValueError(f"expected {self.length} bytes, got {len(raw)}")
        return raw

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else bytes(value)

    @property
    def python_type(self) -> type[bytes]:
        return bytes

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.length})"


class Bytes32(FixedBytes):
    """A 32-byte hash (order, cancel, withdrawal, block and transaction hashes)."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(32)

    def __repr__(self) -> str:
        return "Bytes32()"


class Signature(FixedBytes):
    """A 65-byte (r, s, v) ECDSA signature, as signed (SPEC §3)."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(65)

    def __repr__(self) -> str:
        return "Signature()"


IE = TypeVar("IE", bound=IntEnum)
SE = TypeVar("SE", bound=StrEnum)


class IntEnumType(TypeDecorator[IE], Generic[IE]):
    """An `IntEnum` stored as its number (`side`, `time_in_force` are numbers when signed)."""

    impl = SmallInteger
    cache_ok = True

    def __init__(self, enum: type[IE]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: IE | int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{self.enum.__name__} expected, not {value!r}")
        return int(self.enum(value))

    def process_result_value(self, value: int | None, dialect: Dialect) -> IE | None:
        return None if value is None else self.enum(value)

    @property
    def python_type(self) -> type[IE]:
        return self.enum

    def __repr__(self) -> str:
        return f"IntEnumType({self.enum.__name__})"


class StrEnumType(TypeDecorator[SE], Generic[SE]):
    """A `StrEnum` stored as its value in a `VARCHAR` just wide enough."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[SE]) -> None:
        super().__init__(max(len(member.value) for member in enum))
        self.enum = enum

    def process_bind_param(self, value: SE | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{self.enum.__name__} expected, not {value!r}")
        return self.enum(value).value  # ValueError on an unknown string

    def process_result_value(self, value: str | None, dialect: Dialect) -> SE | None:
        return None if value is None else self.enum(value)

    @property
    def python_type(self) -> type[SE]:
        return self.enum

    def __repr__(self) -> str:
        return f"StrEnumType({self.enum.__name__})"


def enum_check(column: str, members: Iterable[Enum]) -> CheckConstraint:
    """`CHECK (column IN (...))` named `ck_<table>_<column>`, for either enum type.

    A subset may be given when a table holds only some states (e.g. the engine's withdrawal
    statuses), which documents the table's writer in the schema itself.
    """
    values = [member.value for member in members]
    rendered = ", ".join(str(v) if isinstance(v, int) else f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({rendered})", name=column)


class UtcDateTime(TypeDecorator[datetime]):
    """`TIMESTAMP WITH TIME ZONE`; naive datetimes are refused, results are always UTC-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"timezone-aware datetime expected, not {value!r}")
        utc = value.astimezone(UTC)
        # SQLite has no time zones: store naive UTC, the same shape CURRENT_TIMESTAMP writes.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime
