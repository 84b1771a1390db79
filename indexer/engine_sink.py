"""How the indexer's effects reach the engine: journaled commands, stamped with the event's ref.

The projection only knows `CommandSink` (synchronous; the indexer loop is synchronous).
`EngineClientSink` adapts any async `EngineClient` (TCP or in-process) by running it on an event
loop the caller owns; its `submit_many` puts a whole window of commands in flight at once (in
order; through the client's own `submit_many` when it is a `BatchEngineClient`: one call and
one timeout for the window), so the engine journals them in a few group commits instead of one
fsync each. Every
command carries `Intake(signed_hash=ref)`: the engine journals the intake beside the command,
so after a crash a command whose answer was lost can be found in the journal by its ref
(`JournalDirLookup`) instead of being sent a second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from backend.engine.client import EngineClient, Intake, Outcome
from backend.engine.journal import read_journal
from backend.engine.records import find_intake_refs
from backend.engine.tcp_client import TcpEngineClient
from backend.matching.commands import CancelAll, Command

PROBE_TRADER = "0x0000000000000000000000000000000000000000"


class CommandSink(Protocol):
    def submit(self, command: Command, *, ref: bytes) -> Outcome:
        """Journal and apply `command`; raise `EngineUnavailableError` if no answer came."""
        ...


class BatchCommandSink(CommandSink, Protocol):
    def submit_many(
        self, commands: Sequence[tuple[Command, bytes]]
    ) -> list[Outcome | BaseException]:
        """Journal and apply every `(command, ref)`, handed to the engine **in order** (so the
        engine's seqs follow the list); one result per command, the exception of a command
        that got no answer in its place (it may still have been journaled)."""
        ...


def submit_all(
    sink: CommandSink, commands: Sequence[tuple[Command, bytes]]
) -> list[Outcome | BaseException]:
    """`sink.submit_many` when the sink has it; else one `submit` after the other, stopping at
    the first failure (the commands after it are reported as that failure, never sent)."""
    many = getattr(sink, "submit_many", None)
    if many is not None:
        results: list[Outcome | BaseException] = many(commands)
        return results
    out: list[Outcome | BaseException] = []
    for i, (command, ref) in enumerate(commands):
        try:
            out.append(sink.submit(command, ref=ref))
        except Exception as exc:
            out.append(exc)
            out.extend(NotSentError(exc) for _ in commands[i + 1 :])
            break
    return out


class NotSentError(Exception):
    """A command of a batch that was not sent because an earlier one failed."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"not sent: an earlier command failed ({cause!r})")
        self.cause = cause


class JournalLookup(Protocol):
    def find_all(
        self, refs: Sequence[bytes], *, after_seq: int, before_seq: int
    ) -> dict[bytes, int]:
        """ref → seq of the journaled commands stamped with one of `refs` in
        (after_seq, before_seq); refs not journaled there are absent. One pass over the range.

        Authoritative: every command below `before_seq` is durable in the journal.
        """
        ...


def probe_command() -> Command:
    """A command with no effect (the zero address's CancelAll bar stays 0); its seq bounds
    every command sent before it."""
    return CancelAll(seq=0, now=0, trader=PROBE_TRADER, market_id=None, nonce_below=0)


class EngineClientSink:
    """A `CommandSink` over an async `EngineClient`, run on `loop` (the client's loop)."""

    def __init__(
        self, client: EngineClient, loop: asyncio.AbstractEventLoop, *, timeout_s: float = 10.0
    ) -> None:
        self.client = client
        self.loop = loop
        self.timeout_s = timeout_s

    def submit(self, command: Command, *, ref: bytes) -> Outcome:
        coro = self.client.submit(command, timeout=self.timeout_s, intake=Intake(signed_hash=ref))
        return self.loop.run_until_complete(coro)

    def submit_many(
        self, commands: Sequence[tuple[Command, bytes]]
    ) -> list[Outcome | BaseException]:
        return self.loop.run_until_complete(self._submit_many(commands))

    async def _submit_many(
        self, commands: Sequence[tuple[Command, bytes]]
    ) -> list[Outcome | BaseException]:
        batch = [(command, Intake(signed_hash=ref)) for command, ref in commands]
        many = getattr(self.client, "submit_many", None)
        if many is not None:  # a BatchEngineClient: one call, one timeout for the window
            results: list[Outcome | BaseException] = await many(batch, timeout=self.timeout_s)
            return results
        # gather wraps each coroutine in a task, in list order; each task hands its command to
        # the client in its first step (the in-process queue, the TCP connection's writer), so
        # the engine sequences them in list order and group-commits them together.
        submit, timeout = self.client.submit, self.timeout_s
        return await asyncio.gather(
            *(submit(command, timeout=timeout, intake=intake) for command, intake in batch),
            return_exceptions=True,
        )


class JournalDirLookup:
    """Finds a stamped command in the engine's journal directory (same host, read-only:
    `read_journal` skips a group the engine is still writing and never touches the files)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def find(self, ref: bytes, *, after_seq: int, before_seq: int) -> int | None:
        return self.find_all([ref], after_seq=after_seq, before_seq=before_seq).get(ref)

    def find_all(
        self, refs: Sequence[bytes], *, after_seq: int, before_seq: int
    ) -> dict[bytes, int]:
        if not self.directory.is_dir():
            raise FileNotFoundError(f"engine journal directory {self.directory} not found")
        records = read_journal(self.directory, after_seq + 1)
        return find_intake_refs(records, refs, before_seq=before_seq)


class EngineTcpLookup:
    """`JournalLookup` through the engine's own FIND request: for an indexer that runs apart
    from the engine (another container or host) and cannot read its journal files."""

    def __init__(
        self, client: TcpEngineClient, loop: asyncio.AbstractEventLoop, *, timeout_s: float = 60.0
    ) -> None:
        self.client = client
        self.loop = loop
        self.timeout_s = timeout_s

    def find_all(
        self, refs: Sequence[bytes], *, after_seq: int, before_seq: int
    ) -> dict[bytes, int]:
        coro = self.client.find_refs(
            refs, after_seq=after_seq, before_seq=before_seq, timeout=self.timeout_s
        )
        return self.loop.run_until_complete(coro)
