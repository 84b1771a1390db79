"""docs/api.md documents every HTTP route the API serves, method and path."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute

from backend.api import app as api_app

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"
PARAM = re.compile(r"\{[^}]*\}")


def served() -> set[tuple[str, str]]:
    """(method, path with anonymous parameters) of every route `create_app` includes."""
    modules = (api_app.info, api_app.markets, api_app.orders, api_app.accounts,
               api_app.withdrawals, api_app.ws, api_app.admin)  # fmt: skip
    out: set[tuple[str, str]] = set()
    for module in modules:
        for route in module.router.routes:
            if isinstance(route, APIRoute):
                out |= {(m, PARAM.sub("{}", route.path)) for m in route.methods - {"HEAD"}}
    return out


def documented() -> set[tuple[str, str]]:
    """(method, path) from lines that name a method and backticked paths (`/v1/…?query`)."""
    out: set[tuple[str, str]] = set()
    for line in DOCS.read_text().splitlines():
        m = re.match(r"^\|?\s*(GET|POST|DELETE|PUT|PATCH)\s+(.*)", line)
        if not m:
            continue
        head = m.group(2).split("|", 1)[0]
        for path in re.findall(r"`(/[^`?\s]*)", head):
            out.add((m.group(1), PARAM.sub("{}", path)))
    return out


def test_every_route_is_in_the_endpoint_docs() -> None:
    routes = served()
    assert ("POST", "/v1/withdrawals") in routes
    assert routes - documented() == set()
