"""Credentials never reach a log line: the URL redaction helper and the indexer's log lines."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
from structlog.testing import capture_logs

from backend.redact import redact_text, redact_url
from indexer.daemon import Indexer, IndexerConfig
from indexer.rpc import Backoff, RpcClient

INFURA_KEY = "9aa3d95b3bc440fa88ea12eaa4456161"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://mainnet.infura.io/v3/{INFURA_KEY}", "https://mainnet.infura.io/v3/***"),
        (
            "https://eth-mainnet.g.alchemy.com/v2/AbCdEfGhIjKlMnOp1234",
            "https://eth-mainnet.g.alchemy.com/v2/***",
        ),
        (
            "postgresql+psycopg://hybridex:s3cret@db:5432/hybridex",
            "postgresql+psycopg://hybridex:***@db:5432/hybridex",
        ),
        ("redis://:pw@redis:6379/0", "redis://***@redis:6379/0"),
        (
            "rediss://default:pw@h:6380/0?ssl_cert_reqs=required",
            "rediss://default:***@h:6380/0?ssl_cert_reqs=required",
        ),
        ("https://x.io/rpc?apikey=SECRET&chain=1", "https://x.io/rpc?apikey=***&chain=1"),
        ("https://x.io/rpc?API-KEY=SECRET&token=T0k", "https://x.io/rpc?API-KEY=***&token=***"),
        ("https://ab12cd34ef56gh78ij90@node.example/", "https://***@node.example/"),
        ("amqp://guest:guest@broker:5672//", "amqp://guest:***@broker:5672//"),
        # Nothing secret: unchanged.
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("sqlite:///var/hybridex.db", "sqlite:///var/hybridex.db"),
        ("http://[::1]:8545/rpc", "http://[::1]:8545/rpc"),
        ("http://hybridex-engine:7700/v1/markets", "http://hybridex-engine:7700/v1/markets"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_malformed_url_is_redacted_whole() -> None:
    assert redact_url("http://user:pw@host:notaport/") == "***"


def test_redact_text_finds_urls_inside_messages() -> None:
    msg = f"HTTPStatusError: Client error '401' for url 'https://x.io/v3/{INFURA_KEY}'"
    assert redact_text(msg) == "HTTPStatusError: Client error '401' for url 'https://x.io/v3/***'"


def test_indexer_start_up_and_failure_logs_carry_no_key() -> None:
    url = f"https://mainnet.infura.io/v3/{INFURA_KEY}?apikey=QUERYSECRET"
    indexer: Indexer | None = None

    def handler(request: httpx.Request) -> httpx.Response:
        assert indexer is not None
        indexer.stop_event.set()  # one failed step, then stop
        return httpx.Response(401, request=request)

    rpc = RpcClient(
        url,
        backoff=Backoff(base_s=0, max_attempts=2),
        sleep=lambda _s: None,
        transport=httpx.MockTransport(handler),
    )
    config = IndexerConfig(exchange_address="0x" + "11" * 20, chain_id=1, confirmations=1,
                           reorg_window=8)  # fmt: skip
    indexer = Indexer(config, rpc, cast(Any, None), cast(Any, None))
    with capture_logs() as logs:
        indexer.run()
    starting = [e for e in logs if e["event"] == "indexer starting"]
    assert starting
    assert starting[0]["rpc_url"] == "https://mainnet.infura.io/v3/***?apikey=***"
    assert len(logs) > 1  # the retries and the failure were logged too
    for entry in logs:
        assert INFURA_KEY not in repr(entry)
        assert "QUERYSECRET" not in repr(entry)


def test_configured_logging_redacts_urls_in_any_field(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    from backend.logging import configure_logging

    configure_logging("INFO", json=True)
    try:
        structlog.get_logger("t").error(
            "send failed", error=f"401 Unauthorized for url: https://x.io/v3/{INFURA_KEY}"
        )
        err = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
    assert "https://x.io/v3/***" in err
    assert INFURA_KEY not in err


def test_standard_library_records_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """httpx logs every request's URL at INFO, urllib3/web3 theirs at DEBUG: after
    `configure_logging` no record of any library carries a credential, exceptions included."""
    import logging

    import structlog

    from backend.logging import configure_logging

    url = f"https://mainnet.infura.io/v3/{INFURA_KEY}?apikey=QUERYSECRET"
    configure_logging("DEBUG", json=True)
    root = logging.getLogger()
    level = root.level
    handler = logging.StreamHandler()  # installed after: a handler of someone else's
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as c:
            c.post(url, json={})
        logging.getLogger("web3.providers.HTTPProvider").debug("Making request. URI: %s", url)
        try:
            raise ConnectionError(f"cannot reach {url}")
        except ConnectionError:
            logging.getLogger("celery").exception("broker down")
        err = capsys.readouterr().err
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()
    assert "HTTP Request: POST https://mainnet.infura.io/v3/***?apikey=***" in err
    assert "Making request. URI: https://mainnet.infura.io/v3/***" in err
    assert "cannot reach https://mainnet.infura.io/v3/***" in err
    assert INFURA_KEY not in err
    assert "QUERYSECRET" not in err


def test_settings_repr_hides_url_credentials() -> None:
    from backend.config import Mode, Settings

    s = Settings(
        mode=Mode.DEV,
        database_url="postgresql+psycopg://hybridex:s3cretpw@db/hybridex",
        redis_url="redis://:redispw@redis:6379/0",
        rpc_url=f"https://mainnet.infura.io/v3/{INFURA_KEY}",
    )
    text = repr(s) + str(s)
    for secret in ("s3cretpw", "redispw", INFURA_KEY):
        assert secret not in text
    assert "postgresql+psycopg://hybridex:***@db/hybridex" in text
    assert s.database_url.endswith("s3cretpw@db/hybridex")  # the value itself is intact
