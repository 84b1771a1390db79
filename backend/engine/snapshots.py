"""Engine snapshots: atomic files `snapshot-{seq:020d}.snap` beside the journal.

Written to a temp file, fsynced, renamed, directory fsynced: a crash leaves either the old set
or the new one, never a half file under a real name. A header holds a magic, the seq and a
CRC of the body (`Engine.to_snapshot()`), so a damaged file is skipped, not trusted. The last
`keep` files are kept: start-up may need one older than the newest (see `EngineService`).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_MAGIC = b"HXSNAP01"
_HEADER = struct.Struct("<8sQI")
_PREFIX = "snapshot-"
_SUFFIX = ".snap"


class SnapshotStore:
    def __init__(self, directory: Path, *, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.keep = keep

    def seqs(self) -> list[int]:
        out = []
        for path in self.directory.glob(f"{_PREFIX}*{_SUFFIX}"):
            stem = path.name[len(_PREFIX) : -len(_SUFFIX)]
            if stem.isdigit():
                out.append(int(stem))
        return sorted(out)

    def _path(self, seq: int) -> Path:
        return self.directory / f"{_PREFIX}{seq:020d}{_SUFFIX}"

    def write(self, seq: int, body: bytes) -> Path:
        path = self._path(seq)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(_HEADER.pack(_MAGIC, seq, zlib.crc32(body)))
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for old in self.seqs()[: -self.keep]:
            self._path(old).unlink(missing_ok=True)
        return path

    def load(self, seq: int) -> bytes | None:
        """The body of snapshot `seq`, or None if it is missing or damaged."""
        try:
            data = self._path(seq).read_bytes()
        except FileNotFoundError:
            return None
        if len(data) < _HEADER.size:
            return None
        magic, stored_seq, crc = _HEADER.unpack_from(data)
        body = data[_HEADER.size :]
        if magic != _MAGIC or stored_seq != seq or zlib.crc32(body) != crc:
            log.warning("snapshot_damaged", seq=seq)
            return None
        return body

    def latest_at_most(self, seq: int) -> tuple[int, bytes] | None:
        """The newest intact snapshot taken at or before `seq`."""
        for s in reversed(self.seqs()):
            if s <= seq:
                body = self.load(s)
                if body is not None:
                    return s, body
        return None
