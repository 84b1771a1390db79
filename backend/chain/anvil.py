"""Start and stop a local `anvil` from the project's pinned npm toolchain.

Used by the test harness and by `hybridex dev`; never in production.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from backend.chain.build import CONTRACTS_DIR

ANVIL_CHAIN_ID = 31337
DEV_RPC_PORT = 8545
# Without history pruning, anvil's per-block cost grows with chain height (SPEC §13).
DEFAULT_ARGS = ("--hardfork", "cancun", "--prune-history", "64")


def anvil_binary() -> Path:
    """The platform binary the npm package ships (skips the ~100 ms Node launcher)."""
    candidates = sorted((CONTRACTS_DIR / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil"))
    if candidates:
        return candidates[0]
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(f"anvil not found: run `npm ci` in {CONTRACTS_DIR}")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG;
    strictly, when the thread that started it ends: start anvil from a long-lived thread)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rpc_call(
    url: str, method: str, params: list[object] | None = None, timeout: float = 2.0
) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    req = urllib.request.Request(  # noqa: S310 - loopback URL built by us
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        reply = json.loads(resp.read())
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


@dataclass
class Anvil:
    """An anvil child process bound to 127.0.0.1; a context manager that always stops it."""

    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    startup_timeout_s: float = 10.0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Anvil:
        cmd = [
            str(anvil_binary()),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *DEFAULT_ARGS,
            *self.extra_args,
        ]
        # Its own session: a terminal's Ctrl-C reaches only our process, which stops the
        # services that use the chain first and the chain last; PDEATHSIG still ends it if
        # we are killed outright.
        self.process = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1"},
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - async-signal-safe prctl only
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"anvil exited with {self.process.returncode}: {err}")
            try:
                rpc_call(self.url, "eth_chainId", timeout=0.5)
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"anvil did not answer on {self.url} within {self.startup_timeout_s}s")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
