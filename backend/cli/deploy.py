"""`hybridex deploy`: deploy the Exchange contract from the operator key (SPEC §10).

Idempotent for one-shot jobs (compose, Kubernetes): with `HYBRIDEX_EXCHANGE_ADDRESS` set and
code already there, it checks that code and deploys nothing; set but empty, it deploys and
fails unless the new contract lands at exactly that address (on a fresh dev chain the address
is fixed by the deployer and its nonce), so no process is ever pointed at a wrong contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_EXIT_DELAY_BLOCKS = 50_400
"""One week of 12 s blocks: long enough to settle what is in flight, short enough to leave."""


def deploy(
    admin: Annotated[str | None, typer.Option(help="Admin role (default: the operator).")] = None,
    fee_recipient: Annotated[
        str | None, typer.Option(help="Fee recipient (default: HYBRIDEX_FEE_RECIPIENT or admin).")
    ] = None,
    exit_delay: Annotated[
        int, typer.Option(help="Blocks between requestExit and exitWithdraw (10 … 201600).")
    ] = DEFAULT_EXIT_DELAY_BLOCKS,
    write_env: Annotated[
        Path | None, typer.Option(help="Also write HYBRIDEX_EXCHANGE_ADDRESS=… to this file.")
    ] = None,
) -> None:
    """Deploy the Exchange (operator role: the operator key) and print its address."""
    from web3 import Web3

    from backend.chain.deploy import Sender
    from backend.chain.exchange import ExchangeReader
    from backend.config import get_settings

    settings = get_settings()
    w3 = Web3(Web3.HTTPProvider(settings.rpc_url, request_kwargs={"timeout": 60}))
    chain_id = int(w3.eth.chain_id)
    if settings.chain_id is not None and chain_id != settings.chain_id:
        typer.echo(f"the node serves chain {chain_id}, not HYBRIDEX_CHAIN_ID {settings.chain_id}")
        raise typer.Exit(2)
    expected = settings.exchange_address
    if expected is not None and w3.eth.get_code(Web3.to_checksum_address(expected)):
        reader = ExchangeReader.at(w3, Web3.to_checksum_address(expected))
        typer.echo(f"Exchange already deployed at {expected} (last batch {reader.last_batch_id()})")
        address = expected
    else:
        operator = Sender.from_key(w3, settings.operator_private_key())
        admin_address = admin or operator.address
        recipient = fee_recipient or settings.fee_recipient or admin_address
        contract = operator.deploy(
            "Exchange", admin_address, operator.address, recipient, exit_delay
        )
        address = str(contract.address)
        typer.echo(
            f"Exchange deployed at {address} on chain {chain_id} (admin {admin_address}, "
            f"operator {operator.address}, fee recipient {recipient}, exit delay {exit_delay})"
        )
        if expected is not None and address != expected:
            typer.echo(f"but HYBRIDEX_EXCHANGE_ADDRESS is {expected}: fix the configuration")
            raise typer.Exit(2)
    if write_env is not None:
        write_env.write_text(f"HYBRIDEX_EXCHANGE_ADDRESS={address}\n")
