"""`python -m backend.healthcheck [ROLE]`: the image's HEALTHCHECK, one probe per process.

One image runs every process, so the role comes from the argument or, by default, from the
container's main process (`hybridex api`, `hybridex beat`, … in /proc/1/cmdline). Exit 0:
healthy; 1: unhealthy, with the reason on stderr. Standard library and `Settings` only: it runs
every few seconds, so it must start fast and need nothing the process itself does not.
"""

from __future__ import annotations

import socket
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from backend.config import Settings

ROLES = ("api", "engine", "worker", "beat", "indexer")
TIMEOUT_S = 3.0
# Beat rewrites its schedule file on its first tick and then every 3 minutes (Celery's
# `Scheduler.sync_every`); older than this, the scheduler has stopped ticking.
BEAT_STALE_S = 600.0
_ANY_ADDRESS = ("", "0.0.0.0", "::")  # noqa: S104 (compared with, never bound)


class UnhealthyError(Exception):
    pass


def role_from_cmdline(words: Sequence[str]) -> str | None:
    """The `hybridex` subcommand in a command line; None for one-shot jobs (`db upgrade`)."""
    for i, word in enumerate(words):
        if Path(word).name == "hybridex":
            rest = [w for w in words[i + 1 :] if not w.startswith("-")]
            return rest[0] if rest and rest[0] in ROLES else None
    return None


def main_process_role(proc: Path = Path("/proc/1/cmdline")) -> str | None:
    try:
        raw = proc.read_bytes()
    except OSError:
        return None
    return role_from_cmdline([w.decode() for w in raw.split(b"\0") if w])


def _local(host: str) -> str:
    """Where to reach a server bound to `host` from inside its own container."""
    return "127.0.0.1" if host in _ANY_ADDRESS else host


def _http_ok(host: str, port: int, path: str) -> None:
    url = f"http://{_local(host)}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            status = answer.status
    except OSError as exc:  # URLError, HTTPError (a 503 from /ready), refused, timed out
        raise UnhealthyError(f"{url}: {exc}") from exc
    if status != 200:
        raise UnhealthyError(f"{url}: HTTP {status}")


def _tcp_open(host: str, port: int) -> None:
    try:
        socket.create_connection((_local(host), port), TIMEOUT_S).close()
    except OSError as exc:
        raise UnhealthyError(f"{_local(host)}:{port}: {exc}") from exc


def _unix_open(path: Path) -> None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(TIMEOUT_S)
            s.connect(str(path))
    except OSError as exc:
        raise UnhealthyError(f"{path}: {exc}") from exc


def _metrics(host: str, port: int | None, setting: str) -> None:
    if port is None:
        raise UnhealthyError(f"{setting} is not set: the metrics endpoint is this process's probe")
    _http_ok(host, port, "/metrics")


def _beat_schedule_fresh(schedule: Path, now: float) -> None:
    # dbm may add a suffix (`.db`, or `.dat`/`.dir`) to the name beat was given.
    files = [p for p in schedule.parent.glob(schedule.name + "*") if p.is_file()]
    if not files:
        raise UnhealthyError(f"no beat schedule at {schedule}")
    age = now - max(p.stat().st_mtime for p in files)
    if age > BEAT_STALE_S:
        raise UnhealthyError(f"beat schedule {schedule} not written for {age:.0f} s")


def check(role: str, settings: Settings, *, now: float | None = None) -> None:
    """Raises UnhealthyError if the process of `role` does not answer as it should."""
    if role == "api":
        _http_ok(settings.api_host, settings.api_port, "/ready")
    elif role == "engine":  # it listens (connect only: no frame, so nothing is refused)
        if settings.engine_transport == "unix":
            _unix_open(settings.engine_socket_path())
        else:
            _tcp_open(settings.engine_host, settings.engine_port)
    elif role == "worker":
        _metrics(
            settings.settlement_metrics_host,
            settings.settlement_metrics_port,
            "HYBRIDEX_SETTLEMENT_METRICS_PORT",
        )
    elif role == "indexer":
        _metrics(
            settings.indexer_metrics_host,
            settings.indexer_metrics_port,
            "HYBRIDEX_INDEXER_METRICS_PORT",
        )
    elif role == "beat":
        _beat_schedule_fresh(settings.beat_schedule, time.time() if now is None else now)
    else:
        raise UnhealthyError(f"unknown role {role!r}; one of {', '.join(ROLES)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    role = args[0] if args else main_process_role()
    if role is None:
        return 0  # a one-shot job (migrations, deploy): its exit status is its health
    try:
        check(role, Settings())
    except UnhealthyError as exc:
        print(f"unhealthy: {role}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
