"""The image's HEALTHCHECK: the role from the container's command, one real probe per role."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from backend.config import Settings
from backend.healthcheck import (
    BEAT_STALE_S,
    UnhealthyError,
    check,
    main,
    main_process_role,
    role_from_cmdline,
)


@pytest.mark.parametrize(
    ("cmdline", "role"),
    [
        (["/opt/venv/bin/python", "/opt/venv/bin/hybridex", "api"], "api"),
        (["/opt/venv/bin/python", "/opt/venv/bin/hybridex", "beat", "--loglevel", "INFO"], "beat"),
        (["hybridex", "engine"], "engine"),
        (["/opt/venv/bin/python", "/opt/venv/bin/hybridex", "db", "upgrade"], None),
        (["/bin/sh", "-c", "hybridex db upgrade && hybridex deploy"], None),
        (["python", "-m", "something"], None),
    ],
)
def test_role_comes_from_the_hybridex_subcommand(cmdline: list[str], role: str | None) -> None:
    assert role_from_cmdline(cmdline) == role


def test_role_is_read_from_the_main_process(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/opt/venv/bin/python\0/opt/venv/bin/hybridex\0worker\0")
    assert main_process_role(cmdline) == "worker"
    assert main_process_role(tmp_path / "missing") is None


class _Answer(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path in ("/ready", "/metrics") else 404)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_api_is_healthy_when_ready_answers_200(http_server: ThreadingHTTPServer) -> None:
    port = http_server.server_address[1]
    check("api", Settings(api_host="0.0.0.0", api_port=port))  # reached on the loopback


def test_api_is_unhealthy_on_503_or_nothing_listening(http_server: ThreadingHTTPServer) -> None:
    port = http_server.server_address[1]
    _Answer.status = 503
    try:
        with pytest.raises(UnhealthyError, match="503"):
            check("api", Settings(api_port=port))
    finally:
        _Answer.status = 200
    with pytest.raises(UnhealthyError, match="/ready"):
        check("api", Settings(api_port=closed_port()))


def test_engine_is_probed_on_its_tcp_port(http_server: ThreadingHTTPServer) -> None:
    port = http_server.server_address[1]
    check("engine", Settings(engine_transport="tcp", engine_host="0.0.0.0", engine_port=port))
    with pytest.raises(UnhealthyError):
        check("engine", Settings(engine_transport="tcp", engine_port=closed_port()))


def test_engine_is_probed_on_its_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "engine.sock"
    with pytest.raises(UnhealthyError, match=r"engine\.sock"):
        check("engine", Settings(engine_socket=path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        check("engine", Settings(engine_socket=path))


def test_worker_and_indexer_are_probed_on_their_metrics(http_server: ThreadingHTTPServer) -> None:
    port = http_server.server_address[1]
    check("worker", Settings(settlement_metrics_port=port))
    check("indexer", Settings(indexer_metrics_port=port))
    with pytest.raises(UnhealthyError, match="HYBRIDEX_SETTLEMENT_METRICS_PORT is not set"):
        check("worker", Settings())
    with pytest.raises(UnhealthyError, match="/metrics"):
        check("indexer", Settings(indexer_metrics_port=closed_port()))


def test_beat_is_healthy_while_it_keeps_writing_its_schedule(tmp_path: Path) -> None:
    schedule = tmp_path / "celerybeat-schedule"
    settings = Settings(beat_schedule=schedule)
    with pytest.raises(UnhealthyError, match="no beat schedule"):
        check("beat", settings)
    written = tmp_path / "celerybeat-schedule.db"  # dbm.ndbm's suffix
    written.write_bytes(b"x")
    mtime = written.stat().st_mtime
    check("beat", settings, now=mtime + BEAT_STALE_S - 1)
    with pytest.raises(UnhealthyError, match="not written for"):
        check("beat", settings, now=mtime + BEAT_STALE_S + 1)


def test_main_exits_1_with_the_reason(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HYBRIDEX_SETTLEMENT_METRICS_PORT", raising=False)
    assert main(["worker"]) == 1
    assert "unhealthy: worker: HYBRIDEX_SETTLEMENT_METRICS_PORT" in capsys.readouterr().err
    assert main(["nonsense"]) == 1
