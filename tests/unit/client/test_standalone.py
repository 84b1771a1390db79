"""hybridex-client installs and imports without the server: nothing of backend/indexer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_the_sdk_imports_with_the_server_packages_blocked(tmp_path: Path) -> None:
    probe = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('backend', 'indexer'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.path.insert(0, {str(ROOT / 'client')!r})\n"
        "import hybridex_client, hybridex_client.stream\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('backend', 'indexer')]\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_its_declared_dependencies_are_the_four() -> None:
    text = (ROOT / "client" / "pyproject.toml").read_text()
    deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    names = sorted(
        line.strip().strip('",').split(">")[0] for line in deps.splitlines() if line.strip()
    )
    assert names == ["eth-account", "httpx", "msgspec", "websockets"]
