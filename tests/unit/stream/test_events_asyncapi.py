"""docs/events-asyncapi.yaml describes the stream as published: a channel per event type with
its schema in docs/events, at the NATS publisher's subject `<prefix>.<type>.<key token>`."""

from __future__ import annotations

from pathlib import Path

import yaml

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_every_event_type_has_a_channel_a_message_and_its_schema() -> None:
    doc = yaml.safe_load((DOCS / "events-asyncapi.yaml").read_text())
    types = {p.name.split(".")[0] for p in (DOCS / "events").glob("*.v1.json")}
    assert types == set(doc["channels"]) == set(doc["components"]["messages"])
    for name, channel in doc["channels"].items():
        assert channel["address"] == "{prefix}." + name + ".{key}"
        ref = doc["components"]["messages"][name]["payload"]["$ref"]
        assert (DOCS / ref).resolve() == (DOCS / "events" / f"{name}.v1.json").resolve()
    receives = {op["channel"]["$ref"] for op in doc["operations"].values()}
    assert receives == {f"#/channels/{name}" for name in types}
