"""`hybridex deploy`: deploy the Exchange contract from the operator key (SPEC §10).

The operator key gets OPERATOR_ROLE only. The admin role goes to an `AdminTimelock` that the
admin (`--admin`, a multisig: never the operator's hot key, refused unless `--dev`) drives:
every admin action is scheduled in public and runs `--admin-delay` seconds later, longer than
the exit delay, so traders can leave before it takes effect (docs/contract.md "Trust model").

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
DEFAULT_ADMIN_DELAY_S = 8 * 86_400
"""Eight days: longer than the default exit delay, so an exit requested when an admin action
is scheduled takes effect before the action can run."""
SECONDS_PER_BLOCK = 12
"""Ethereum's slot time: the exit delay in seconds is at most this many per block."""


def deploy(
    *,
    admin: Annotated[
        str | None,
        typer.Option(
            envvar="HYBRIDEX_DEPLOY_ADMIN",
            help="The admin (a multisig) that proposes and executes through the timelock.",
        ),
    ] = None,
    admin_delay: Annotated[
        int,
        typer.Option(
            envvar="HYBRIDEX_DEPLOY_ADMIN_DELAY_S",
            help="Seconds every admin action waits in the timelock (longer than the exit delay).",
        ),
    ] = DEFAULT_ADMIN_DELAY_S,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev", help="Development chain: the admin may be the operator, any admin delay."
        ),
    ] = False,
    fee_recipient: Annotated[
        str | None, typer.Option(help="Fee recipient (default: HYBRIDEX_FEE_RECIPIENT or admin).")
    ] = None,
    exit_delay: Annotated[
        int, typer.Option(help="Blocks between requestExit and exitWithdraw (10 … 201600).")
    ] = DEFAULT_EXIT_DELAY_BLOCKS,
    cancel_delay: Annotated[
        int | None,
        typer.Option(
            help="Seconds an on-chain cancelOrder / invalidateNonces waits before it takes effect "
            "(60 … 604800; default HYBRIDEX_CANCEL_DELAY_S, 3600). Keep it above settlement "
            "latency: fills matched before it runs out still settle."
        ),
    ] = None,
    write_env: Annotated[
        Path | None, typer.Option(help="Also write HYBRIDEX_EXCHANGE_ADDRESS=… to this file.")
    ] = None,
) -> None:
    """Deploy the Exchange (operator role: the operator key) behind the admin timelock and print
    both addresses."""
    from web3 import Web3

    from backend.chain.deploy import Sender, deploy_exchange_behind_timelock
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
        admin_address = _checked_admin(admin, operator.address, dev=dev)
        _check_admin_delay(admin_delay, exit_delay, dev=dev)
        recipient = fee_recipient or settings.fee_recipient or admin_address
        cancel_delay_s = settings.cancel_delay_s if cancel_delay is None else cancel_delay
        if cancel_delay_s != settings.cancel_delay_s:
            typer.echo(
                f"--cancel-delay {cancel_delay_s} differs from HYBRIDEX_CANCEL_DELAY_S "
                f"({settings.cancel_delay_s}): the API would publish the wrong delay and the "
                "indexer refuses to start; set both alike"
            )
            raise typer.Exit(2)
        deployed = deploy_exchange_behind_timelock(
            operator,
            admin=admin_address,
            fee_recipient=recipient,
            exit_delay=exit_delay,
            admin_delay_s=admin_delay,
            cancel_delay_s=cancel_delay_s,
        )
        address = str(deployed.exchange)
        typer.echo(
            f"Exchange deployed at {address} on chain {chain_id} (admin timelock "
            f"{deployed.timelock}: proposer and executor {admin_address}, delay {admin_delay} s; "
            f"operator {operator.address}, fee recipient {recipient}, exit delay {exit_delay}, "
            f"cancel delay {cancel_delay_s} s)"
        )
        if expected is not None and address != expected:
            typer.echo(f"but HYBRIDEX_EXCHANGE_ADDRESS is {expected}: fix the configuration")
            raise typer.Exit(2)
    if write_env is not None:
        write_env.write_text(f"HYBRIDEX_EXCHANGE_ADDRESS={address}\n")


def _checked_admin(admin: str | None, operator: str, *, dev: bool) -> str:
    from web3 import Web3

    if admin is None:
        if dev:
            return operator
        typer.echo("pass --admin (or HYBRIDEX_DEPLOY_ADMIN): the admin multisig's address")
        raise typer.Exit(2)
    if not Web3.is_address(admin):
        typer.echo(f"--admin {admin!r} is not an address")
        raise typer.Exit(2)
    checked = Web3.to_checksum_address(admin)
    if checked == operator and not dev:
        typer.echo(
            f"the admin {checked} is the operator's hot key: a stolen operator key would then "
            "also rule the contract. Use a separate multisig (or --dev on a development chain)"
        )
        raise typer.Exit(2)
    return checked


def _check_admin_delay(admin_delay: int, exit_delay: int, *, dev: bool) -> None:
    if admin_delay < 0:
        typer.echo("--admin-delay must not be negative")
        raise typer.Exit(2)
    exit_window = exit_delay * SECONDS_PER_BLOCK
    if admin_delay <= exit_window and not dev:
        typer.echo(
            f"--admin-delay {admin_delay} s is not longer than the exit delay ({exit_delay} "
            f"blocks ≈ {exit_window} s): traders could not leave before a scheduled admin "
            "action runs. Raise it (or --dev on a development chain)"
        )
        raise typer.Exit(2)
