"""Checks WebSocket messages against docs/asyncapi.yaml: each server message validates against
exactly one of the messages the `serverMessages` operation lists (a message no schema admits,
or one two schemas admit, is a gap in the document). `WsContract.seen` records which message
of the document each checked message was, so a test can tell what was exercised."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ASYNCAPI = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"


def load_document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text())
    return doc


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


class WsContractError(AssertionError):
    pass


@dataclass
class WsContract:
    doc: dict[str, Any] = field(default_factory=load_document)
    seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # The document's own "#/components/..." refs resolve against the document itself.
        registry: Registry[Any] = Registry().with_resource(
            "urn:hybridex:asyncapi", Resource(contents=self.doc, specification=DRAFT202012)
        )
        self.server = self._validators("serverMessages", registry)
        self.client = self._validators("clientRequests", registry)

    def _validators(
        self, operation: str, registry: Registry[Any]
    ) -> dict[str, Draft202012Validator]:
        out: dict[str, Draft202012Validator] = {}
        for ref in self.doc["operations"][operation]["messages"]:
            message = resolve(self.doc, resolve(self.doc, ref["$ref"])["$ref"])
            schema = _rebase(message["payload"])
            Draft202012Validator.check_schema(schema)
            out[message["name"]] = Draft202012Validator(schema, registry=registry)
        return out

    def check_server(self, message: Any) -> str:
        return self._check(self.server, message, "server")

    def check_client(self, message: Any) -> str:
        return self._check(self.client, message, "client")

    def _check(self, validators: dict[str, Draft202012Validator], message: Any, who: str) -> str:
        matches = [name for name, v in validators.items() if v.is_valid(message)]
        if len(matches) != 1:
            hint = ""
            if not matches:
                best = [
                    f"{name}: {next(iter(v.iter_errors(message))).message}"
                    for name, v in validators.items()
                    if _same_kind(v.schema, message)
                ]
                hint = "; ".join(best[:3])
            raise WsContractError(
                f"{who} message matches {matches or 'no message'} of docs/asyncapi.yaml: "
                f"{message!r} {hint}"
            )
        self.seen.add(matches[0])
        return matches[0]


def _same_kind(schema: dict[str, Any], message: Any) -> bool:
    if not isinstance(message, dict):
        return False
    for key in ("type", "op"):
        const = schema.get("properties", {}).get(key, {}).get("const")
        if const is not None:
            return bool(message.get(key) == const)
    return False


def _rebase(node: Any) -> Any:
    """'#/components/…' refs of a payload point into the whole document (its registry entry)."""
    if isinstance(node, dict):
        return {
            k: ("urn:hybridex:asyncapi" + v if k == "$ref" and v.startswith("#/") else _rebase(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node
