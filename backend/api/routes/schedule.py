"""The dead-man's switch: `POST /v1/orders/schedule-cancel` (a signed `ScheduleCancel`).

The trader signs "cancel all my open orders at `time` unless I renew": each renewal is a new
ScheduleCancel with a later time and a higher nonce, `time` 0 clears it. The engine journals it
(a restart keeps it) and its sweep cancels the orders when the time comes, reason `scheduled`.
Enforced off chain, like every off-chain cancel until it is committed: the signed orders stay
valid messages, the engine stops matching them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from backend.api.answers import ScheduleCancelAnswer
from backend.api.deps import ApiContext, ctx, read_json_object, require_keys
from backend.api.openapi import BODY, EDGE, ENGINE, errors
from backend.api.responses import Json
from backend.api.routes.orders import Reply, refused, submit_command
from backend.api.schemas import ScheduleCancelBody, body_schema
from backend.api.serializers import hex0x
from backend.domain.errors import DexError, ErrorCode
from backend.eip712.parsing import parse_schedule_cancel, parse_signature
from backend.eip712.recover import verify
from backend.engine.client import Intake
from backend.matching.commands import ScheduleCancel
from backend.matching.events import CancelScheduled, CommandRejected

router = APIRouter(prefix="/v1", tags=["orders"])

MIN_DELAY_S: Final = 5
"""A schedule nearer than this is refused (as Hyperliquid's): it would fire before the engine
could be told of a renewal, and it leaves room for the clocks of API and engine to differ."""

E = ErrorCode


@router.post(
    "/orders/schedule-cancel",
    summary="Dead-man's switch: cancel all the trader's open orders at a time unless renewed",
    response_model=ScheduleCancelAnswer,
    responses={
        202: {"model": ScheduleCancelAnswer, "description": "engine slow: status pending"},
        **errors(*EDGE, *BODY, E.SCHEDULE_TOO_SOON, E.NONCE_REUSED, *ENGINE),
    },
    openapi_extra=body_schema(ScheduleCancelBody),
)
async def schedule_cancel(request: Request) -> Response:
    c = ctx(request)
    try:
        prepared = prepare_schedule_cancel(c, await read_json_object(request))
        status, answer = await submit_schedule_cancel(c, prepared)
    except DexError as exc:
        raise refused(c, exc) from None
    return Json(answer, status_code=status)


@dataclass(frozen=True, slots=True)
class PreparedScheduleCancel:
    command: ScheduleCancel
    intake: Intake


def prepare_schedule_cancel(
    c: ApiContext, body: Any, now: float | None = None
) -> PreparedScheduleCancel:
    if not isinstance(body, dict):
        raise DexError(E.INVALID_REQUEST, "a schedule-cancel must be a JSON object")
    require_keys(body, ("scheduleCancel", "signature"))
    msg = parse_schedule_cancel(body["scheduleCancel"])
    signature = parse_signature(body["signature"])
    signed_hash = verify(msg, signature, c.domain)
    earliest = int(time.time() if now is None else now) + MIN_DELAY_S
    if msg.time and msg.time < earliest:
        raise DexError(
            E.SCHEDULE_TOO_SOON,
            f"scheduleCancel.time: {msg.time} is less than {MIN_DELAY_S} s from now; sign a "
            f"time of at least {earliest}, or 0 to clear the schedule",
            field="scheduleCancel.time",
        )
    intake = Intake(signature=signature, signed_hash=signed_hash, nonce=msg.nonce)
    return PreparedScheduleCancel(ScheduleCancel(0, 0, msg.trader, msg.time, msg.nonce), intake)


async def submit_schedule_cancel(c: ApiContext, prepared: PreparedScheduleCancel) -> Reply:
    command = prepared.command
    outcome = await submit_command(c, command, prepared.intake)
    base = {
        "trader": command.trader,
        "time": str(command.time),
        "nonce": str(command.nonce),
        "hash": hex0x(prepared.intake.signed_hash or b""),
    }
    if outcome is None:
        return 202, {**base, "status": "pending"}
    for e in outcome.events:
        if isinstance(e, CommandRejected):
            raise DexError(e.code, f"scheduleCancel: {e.message}")
        if isinstance(e, CancelScheduled):
            status = "scheduled" if e.time else "cleared"
            return 200, {**base, "status": status, "seq": outcome.seq}
    raise RuntimeError(f"engine answered ScheduleCancel {outcome.seq} with no outcome event")
