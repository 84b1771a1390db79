"""Checks outbox rows against the published schemas (docs/events/<type>.v<version>.json) and
the stream's ordering promise; shared by the tests that drive the real writers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from backend.stream.outbox import OutboxRow

DOCS = Path(__file__).resolve().parents[1] / "docs" / "events"


@cache
def validator(type_: str, version: int) -> Draft202012Validator:
    schema = json.loads((DOCS / f"{type_}.v{version}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def outbox_rows(factory: sessionmaker[Session]) -> list[OutboxRow]:
    with factory() as session:
        return [
            OutboxRow(r.id, r.event_id, r.type, r.version, r.partition_key, r.payload, r.created_at)
            for r in session.execute(
                text(
                    "SELECT id, event_id, type, version, partition_key, payload, created_at "
                    "FROM stream_outbox ORDER BY id"
                )
            )
        ]


def check_conformance(rows: Iterable[OutboxRow]) -> list[dict[str, Any]]:
    """Every row's published envelope is valid against its type's schema; returns them."""
    out = []
    for row in rows:
        message = json.loads(row.envelope())
        errors = sorted(validator(row.type, row.version).iter_errors(message), key=str)
        assert not errors, (message, [e.message for e in errors[:3]])
        out.append(message)
    return out


def check_key_order(messages: Iterable[dict[str, Any]]) -> None:
    """Per key, the engine seq (where the event has one) never goes back in outbox order, and
    no id appears twice."""
    ids: set[str] = set()
    last: dict[str, int] = {}
    for m in messages:
        assert m["id"] not in ids, m["id"]
        ids.add(m["id"])
        seq = m["data"].get("seq")
        if isinstance(seq, int) and m["id"].startswith("eng-"):
            assert seq >= last.get(m["key"], 0), m
            last[m["key"]] = seq
