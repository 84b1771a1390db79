"""The floor phases of `bench/api.py`: the same HTTP stack (uvicorn workers, FastAPI routing,
JSON in and out) with no work behind it — no signature check, rate limit, engine or database.

Whatever rate this reaches on a machine bounds what the real intake can reach there.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request

from backend.api.responses import Json  # the API's own JSON answer (orjson), as its routes

app = FastAPI()


@app.get("/ready")
async def ready() -> Json:
    return Json({"status": "ok"})


@app.post("/v1/orders")
async def place(request: Request) -> Json:
    body = orjson.loads(await request.body())
    return Json({"status": "accepted", "signature": body["signature"]})
