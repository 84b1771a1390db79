"""Restart benchmark (SPEC §12): snapshot load + journal replay through `EngineService.open`.

    python bench/replay.py                    # 1M journaled commands, table
    python bench/replay.py --commands 200000 --json
    python bench/replay.py --quick            # smoke run: 100k commands

Builds, in a temp directory, a journal of the `bench/engine.py` mixed workload (new limit
orders near the mid, cancels, crossing orders; ~1k resting orders): the setup and a warm-up
run go into a snapshot, then `--commands` more commands are journaled behind it in groups of
1000. Then it times what a restart does — open the journal, load the newest snapshot, decode
and apply every command after it (no consumers attached) — and reports
`replay_commands_per_s` = replayed commands / (snapshot load + replay) wall time. The same
run also times the engine alone on the same commands (`apply` only, from the same snapshot
state, as `bench/engine.py` does): `engine_commands_per_s`. Target: replay ≥ 0.5× the engine
alone (`replay_vs_engine`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine, print_machine
from engine import collector, generate

from backend.engine.journal import Journal
from backend.engine.records import encode_record
from backend.engine.service import EngineService
from backend.engine.snapshots import SnapshotStore
from backend.matching import Engine

WARM = 20_000
GROUP = 1_000


def build(directory: Path, n: int) -> tuple[int, float, int, float]:
    """Journal setup + warm-up + n commands; snapshot after the warm-up. Returns (snapshot
    seq, build seconds, journal bytes, seconds the engine alone takes to apply the n)."""
    t0 = time.perf_counter()
    commands = generate(n + WARM)
    head = len(commands) - n
    journal = Journal(directory)
    engine = Engine()
    for i in range(0, len(commands), GROUP):
        group = commands[i : i + GROUP]
        journal.append_group([encode_record(c) for c in group])
        if i < head:
            for c in group[: head - i]:
                engine.apply(c)
    journal.close()
    SnapshotStore(directory / "snapshots").write(engine.last_seq, engine.to_snapshot())
    size = sum(p.stat().st_size for p in directory.glob("journal-*.log"))
    build_s = time.perf_counter() - t0
    apply = engine.apply
    rest = commands[head:]
    del commands
    with collector("tuned"):  # what `hybridex engine` runs under after start-up
        t1 = time.perf_counter()
        for c in rest:
            apply(c)
        alone_s = time.perf_counter() - t1
    del rest, engine
    gc.collect()
    return head, build_s, size, alone_s


async def restart(directory: Path) -> tuple[float, int, float, str]:
    t0 = time.perf_counter()
    service = await EngineService.open(journal_dir=directory, sweep_interval=0)
    wall = time.perf_counter() - t0
    replayed, replay_s = service.replayed, service.replay_seconds
    digest = service.engine.state_hash()
    await service.close(snapshot=False)
    return wall, replayed, replay_s, digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 100k commands")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.commands = 100_000

    directory = Path(tempfile.mkdtemp(prefix="hybridex-replay-"))
    try:
        snapshot_seq, build_s, journal_bytes, alone_s = build(directory, args.commands)
        wall, replayed, replay_s, _ = asyncio.run(restart(directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert replayed == args.commands, (replayed, args.commands)
    result = {
        "machine": machine(),
        "commands": args.commands,
        "snapshot_seq": snapshot_seq,
        "journal_mb": round(journal_bytes / 1e6, 1),
        "startup_s": round(wall, 3),
        "snapshot_load_s": round(wall - replay_s, 3),
        "replay_s": round(replay_s, 3),
        "replay_commands_per_s": round(replayed / wall),
        "engine_commands_per_s": round(args.commands / alone_s),
        "replay_vs_engine": round(alone_s / wall, 3),
        "target_replay_vs_engine": 0.5,
        "build_s": round(build_s, 1),
    }
    print_machine()
    print()
    print(f"{'what':<34}{'value':>14}")
    for key in ("commands", "snapshot_seq", "journal_mb", "snapshot_load_s", "replay_s",
                "startup_s", "replay_commands_per_s", "engine_commands_per_s", "replay_vs_engine",
                "target_replay_vs_engine"):  # fmt: skip
        print(f"{key:<34}{result[key]!s:>14}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
