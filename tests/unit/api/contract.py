"""Checks answers against the app's own OpenAPI document: the status is declared for the
operation, the body validates against the declared schema, an error's code is one the
operation declares for that status. `Contract.check` raises `ContractError` naming the gap."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from backend.api.openapi import documented_codes

PARAM = re.compile(r"\\\{[^}]*\\\}")


class ContractError(AssertionError):
    pass


@dataclass
class Contract:
    doc: dict[str, Any]
    seen: set[tuple[str, str, int, str | None]] = field(default_factory=set)
    """(METHOD, path template, status, error code or None) of every answer checked."""

    def __post_init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template in self.doc["paths"]:
            pattern = re.compile("^" + PARAM.sub("[^/]+", re.escape(template)) + "$")
            self._routes.append((pattern, template))
        # literal paths first: /v1/orders/cancel-all is not /v1/orders/{order_hash}
        self._routes.sort(key=lambda r: r[1].count("{"))

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template in self._routes:
            if pattern.match(path):
                op = self.doc["paths"][template].get(method.lower())
                if op is not None:
                    return template, op
        return None

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        found = self.operation(method, path)
        if found is None:
            return  # not an API route (unknown path, /openapi.json, /docs)
        template, op = found
        where = f"{method} {template} → {status}"
        response = op["responses"].get(str(status))
        if response is None:
            raise ContractError(f"{where}: status not in the document ({body[:200]!r})")
        if not content_type.startswith("application/json"):
            if not any(t.split(";")[0] in content_type for t in response.get("content", {})):
                raise ContractError(f"{where}: {content_type} not declared")
            self.seen.add((method, template, status, None))
            return
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if not schema:
            raise ContractError(f"{where}: no schema for the JSON answer")
        value = orjson.loads(body)
        validator = Draft202012Validator({**schema, "components": self.doc["components"]})
        problems = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        if problems:
            first = problems[0]
            raise ContractError(
                f"{where}: {first.message} at {list(first.absolute_path)} in {value!r:.300}"
            )
        code = None
        if schema.get("$ref", "").endswith("/ErrorBody"):
            code = value["error"]["code"]
            if code not in documented_codes(op, status):
                raise ContractError(f"{where}: code {code} not declared for this status")
        self.seen.add((method, template, status, code))
