"""Start-up as the image runs it, without a Docker engine: uid 10001, the working directory a
root-owned /app, the writable directories and settings docker/Dockerfile creates (read from the
Dockerfile itself), laid out under a temporary root."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.docker.deployfiles import created_directories, image_env
from tests.unit.engine.helpers import key_env

UID = 10001
# setpriv (util-linux) rather than Popen(user=…): the same setresuid, then exec. It keeps one
# capability, reading and searching any path (never writing), because the checkout and its
# .venv may sit under a directory only root may enter (a CI clone in `mktemp -d`, mode 0700);
# in the image the code is world-readable. Every write still needs uid 10001's own permission.
AS_USER = [
    "setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
    "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
]  # fmt: skip
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to uid 10001 needs root"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv is not installed"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def image_root() -> Iterator[Path]:
    """/app (root-owned, as `chown -R root:root /app` leaves it) and every `install -d` of the
    runtime stage, with its owner and mode, under a fresh root that uid 10001 can traverse."""
    root = Path(tempfile.mkdtemp(prefix="hybridex-image-"))
    try:
        root.chmod(0o755)
        (root / "app").mkdir(mode=0o755)
        for path, (owner, mode) in sorted(created_directories().items()):
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            target.mkdir(mode=int(mode, 8))
            target.chmod(int(mode, 8))
            uid = 0 if owner == "root" else int(owner)
            os.chown(target, uid, uid)
        yield root
    finally:
        shutil.rmtree(root)


def environment(root: Path, **extra: str) -> dict[str, str]:
    """The image's ENV, its paths moved under `root`, over this machine's non-Hybridex env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDEX_")}
    for key, value in image_env().items():
        if key.startswith("HYBRIDEX_"):
            env[key] = str(root / value.lstrip("/")) if value.startswith("/") else value
    env |= {"HOME": str(root / "app"), "PYTHONDONTWRITEBYTECODE": "1"}
    return env | extra


def as_image_user(args: list[str], root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*AS_USER, sys.executable, *args], cwd=root / "app", env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def healthcheck(role: str, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AS_USER, sys.executable, "-m", "backend.healthcheck", role], cwd=root / "app",
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def wait_healthy(role: str, root: Path, env: dict[str, str], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 40
    while True:
        done = healthcheck(role, root, env)
        if done.returncode == 0:
            return
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"{role} exited {proc.returncode}: {out[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{role} never became healthy: {done.stderr}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def owned_files(directory: Path) -> list[Path]:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert all(p.stat().st_uid == UID for p in files)
    return files


def test_beat_keeps_its_schedule_where_the_image_lets_it_write(
    image_root: Path, redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    env = environment(image_root, HYBRIDEX_REDIS_URL=url, HYBRIDEX_REDIS_KEY_PREFIX=prefix)
    proc = as_image_user(["-m", "backend.cli.main", "beat"], image_root, env)
    try:
        wait_healthy("beat", image_root, env, proc)
        schedule = Path(env["HYBRIDEX_BEAT_SCHEDULE"])
        assert schedule.parent == image_root / "var/lib/hybridex/beat"
        assert owned_files(schedule.parent)
    finally:
        stop(proc)


def test_beat_on_the_old_default_path_cannot_write_under_app(
    image_root: Path, redis_prefix: tuple[str, str]
) -> None:
    """What the image used to do: `var/celerybeat-schedule` under the root-owned /app."""
    url, prefix = redis_prefix
    env = environment(image_root, HYBRIDEX_REDIS_URL=url, HYBRIDEX_REDIS_KEY_PREFIX=prefix)
    del env["HYBRIDEX_BEAT_SCHEDULE"]
    proc = as_image_user(["-m", "backend.cli.main", "beat"], image_root, env)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert proc.returncode != 0
    assert "PermissionError" in out


def test_engine_opens_its_journal_where_the_image_lets_it_write(image_root: Path) -> None:
    env = environment(
        image_root,
        HYBRIDEX_ENGINE_PORT=str(free_port()),
        HYBRIDEX_ENGINE_METRICS_PORT=str(free_port()),
        HYBRIDEX_FEE_RECIPIENT="0x" + "fe" * 20,  # production: the operator's own fee account
        **key_env(),  # production: every role's engine key
    )
    args = ["-m", "backend.cli.main", "engine", "--no-persist", "--feeds", "none"]
    proc = as_image_user(args, image_root, env)
    try:
        wait_healthy("engine", image_root, env, proc)
        journal = Path(env["HYBRIDEX_ENGINE_JOURNAL_DIR"])
        assert journal == image_root / "var/lib/hybridex/journal"
        # A journaled command (the operator's `markets add`, over TCP): it must reach the disk.
        listing = subprocess.run(
            [*AS_USER, sys.executable, "-m", "backend.cli.main", "markets", "add", "WETH-USDC",
             "--base", "0x" + "11" * 20, "--base-symbol", "WETH", "--base-decimals", "18",
             "--quote", "0x" + "22" * 20, "--quote-symbol", "USDC", "--quote-decimals", "6",
             "--tick-size", "10000", "--lot-size", "100000000000000",
             "--min-amount", "1000000000000000"],
            cwd=image_root / "app", env=env, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert listing.returncode == 0, listing.stdout + listing.stderr
        assert "MarketAdded" in listing.stdout
    finally:
        assert stop(proc) == 0  # SIGTERM: flush and snapshot into the journal directory
    assert owned_files(journal)
