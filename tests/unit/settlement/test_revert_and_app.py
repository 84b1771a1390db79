from __future__ import annotations

from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector

from backend.config import Settings
from backend.settlement.celery_app import celery_config
from backend.settlement.crashpoints import CRASH_ENV, crash_point
from backend.settlement.revert import decode_revert
from backend.settlement.withdrawals import withdrawal_id_for
from indexer.projection import withdrawal_id_for as indexer_withdrawal_id

TRADER = "0x" + "ab" * 20


def test_custom_error_decodes_to_name_and_arguments() -> None:
    data = function_signature_to_4byte_selector(
        "InsufficientBalance(address,address,uint256,uint256)"
    ) + encode(["address", "address", "uint256", "uint256"], [TRADER, TRADER, 41, 42])
    revert = decode_revert(data)
    assert revert.name == "InsufficientBalance"
    assert revert.reason == (
        "InsufficientBalance(0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB, "
        "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB, 41, 42)"
    )
    assert not revert.is_global


def test_batch_id_mismatch_is_global_and_unknown_selectors_too() -> None:
    data = function_signature_to_4byte_selector("BatchIdMismatch(uint256,uint256)") + encode(
        ["uint256", "uint256"], [2, 3]
    )
    assert decode_revert(data).is_global
    assert decode_revert(b"\xde\xad\xbe\xef").is_global


def test_celery_is_json_only_late_acking_and_prefixed() -> None:
    conf = celery_config(Settings(mode="dev", redis_key_prefix="pfx:"))
    assert conf["accept_content"] == ["json"]
    assert conf["task_serializer"] == "json"
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"]["global_keyprefix"] == "pfx:"
    assert conf["result_backend"] is None


def test_crash_point_is_inert_unless_named(monkeypatch: object) -> None:
    import os

    assert CRASH_ENV not in os.environ
    crash_point("after_broadcast")  # returns: nothing set


def test_withdrawal_reservation_id_is_the_indexers() -> None:
    assert withdrawal_id_for(TRADER, 7) == indexer_withdrawal_id(
        "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB", 7
    )
