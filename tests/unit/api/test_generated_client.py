"""A client generated from the served OpenAPI document by a standard generator
(openapi-python-client, in `.venv/openapi-client`) type-checks and trades: it reads
`/v1/info`, places a signed order and reads it back, with the API's own answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from backend.api.sessions import HEADER
from backend.domain.types import Side
from tests.unit.api.harness import PRICE, TICK, running_api

REPO = Path(__file__).resolve().parents[3]
GENERATOR_BIN = REPO / ".venv" / "openapi-client" / "bin"
PACKAGE = "hybridex_generated"

# What a market maker would write against the generated package; mypy --strict checks it.
PROGRAM = """
from typing import Any

import httpx

from hybridex_generated import AuthenticatedClient, Client
from hybridex_generated.api.default import get_info
from hybridex_generated.api.orders import get_order, place_order
from hybridex_generated.models import (
    ErrorBody, InfoAnswer, OrderAnswer, OrderOutcome, PlaceOrderBody,
)


def connect(http: httpx.Client) -> Client:
    client = Client(base_url="http://testserver")
    client.set_httpx_client(http)
    return client


def as_trader(transport: httpx.BaseTransport, session: str) -> AuthenticatedClient:
    # The read Session is the document's apiKey security scheme (a header, no prefix).
    return AuthenticatedClient(
        base_url="http://testserver", token=session, prefix="",
        auth_header_name="X-Hybridex-Session", httpx_args={"transport": transport},
    )


def chain_id(client: Client) -> int:
    info = get_info.sync(client=client)
    assert isinstance(info, InfoAnswer)
    return info.chain_id


def place(client: Client, signed: dict[str, Any]) -> OrderOutcome | ErrorBody:
    answer = place_order.sync(client=client, body=PlaceOrderBody.from_dict(signed))
    assert answer is not None
    return answer


def status(client: AuthenticatedClient, order_hash: str) -> str:
    answer = get_order.sync(order_hash, client=client)
    assert isinstance(answer, OrderAnswer), answer
    return answer.status
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    if not (GENERATOR_BIN / "openapi-python-client").exists():
        pytest.fail(f"{GENERATOR_BIN} is missing: run `make setup`")
    out = tmp_path_factory.mktemp("generated")
    (out / "api").mkdir()
    with running_api(out / "api") as h:
        doc: dict[str, Any] = h.client.get("/openapi.json").json()
    spec = out / "openapi.json"
    spec.write_text(json.dumps(doc))
    env = {**os.environ, "PATH": f"{GENERATOR_BIN}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(
        [str(GENERATOR_BIN / "openapi-python-client"), "generate", "--path", str(spec),
         "--output-path", str(out / PACKAGE), "--meta", "none", "--fail-on-warning"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (out / "program.py").write_text(textwrap.dedent(PROGRAM))
    (out / "mypy.ini").write_text("[mypy]\n")  # not the repository's settings
    sys.path.insert(0, str(out))
    try:
        yield out, doc
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        sys.modules.pop("program", None)


def test_the_generated_client_type_checks(generated: tuple[Path, dict[str, Any]]) -> None:
    out, _ = generated
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file",
         str(out / "mypy.ini"), PACKAGE, "program.py"],
        capture_output=True, text=True, cwd=out, timeout=300, check=False,
    )  # fmt: skip
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    # The generator's fixed client.py template passes `*args: object` to httpx's
    # __exit__/__aexit__: its own typing, the same for every document. Everything generated
    # from ours, and the program using it, must be clean.
    ours = [e for e in errors if not (e.startswith(f"{PACKAGE}/client.py:") and "exit__" in e)]
    assert ours == [], "\n".join(ours)
    assert "Success" in run.stdout or errors, run.stdout[-2000:] + run.stderr[-2000:]


def test_the_generated_client_places_and_reads_an_order(
    generated: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import importlib

    program: ModuleType = importlib.import_module("program")
    with running_api(tmp_path) as h:
        client = program.connect(h.client)
        assert program.chain_id(client) == h.settings.chain_id
        order = h.order(0, Side.BUY, PRICE - TICK)
        placed = program.place(client, h.order_body(order))
        assert type(placed).__name__ == "OrderOutcome", placed
        assert placed.status == "open"
        # The in-process app's transport (what the harness's client sends through).
        transport = h.client._transport
        trader = program.as_trader(transport, h.as_trader(0)[HEADER])
        assert program.status(trader, placed.order_hash) == "open"
        # A refusal parses into the error model, with the API's code.
        again = h.order(0, Side.BUY, PRICE - 2 * TICK, nonce=order.nonce)  # same nonce
        refused = program.place(client, h.order_body(again))
        assert type(refused).__name__ == "ErrorBody", refused
        assert refused.error.code == "NONCE_REUSED"
