"""`hybridex dev`'s stream: the URL given, else NATS if it answers, else Redis, else none."""

from __future__ import annotations

import pytest

from backend.devstack.stream import dev_stream_url
from tests.conftest import REDIS_URL
from tests.integration.stream.conftest import PrivateNats, free_port

pytestmark = pytest.mark.integration


def test_the_given_url_wins_and_empty_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDEX_STREAM_URL", "kafka://k:9092")
    assert dev_stream_url(REDIS_URL) == "kafka://k:9092"
    monkeypatch.setenv("HYBRIDEX_STREAM_URL", "")
    assert dev_stream_url(REDIS_URL) is None


def test_nats_then_redis_then_none(
    monkeypatch: pytest.MonkeyPatch, nats_server: PrivateNats
) -> None:
    monkeypatch.delenv("HYBRIDEX_STREAM_URL", raising=False)
    assert dev_stream_url(REDIS_URL, nats_server.url) == nats_server.url
    nowhere = f"nats://127.0.0.1:{free_port()}"
    assert dev_stream_url(REDIS_URL, nowhere) == REDIS_URL
    assert dev_stream_url(f"redis://127.0.0.1:{free_port()}/0", nowhere) is None


def test_an_empty_stream_url_setting_is_none() -> None:
    from backend.config import Settings

    assert Settings(stream_url="").stream_url is None
