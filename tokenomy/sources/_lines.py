"""Stream JSON Lines with a bounded buffer: no line is ever held whole beyond a cap.

A transcript can hold a multi-gigabyte line (a pasted file, a runaway tool result). Reading such a
line would exhaust memory, so lines longer than ``max_line_bytes`` are skipped while streaming and
counted, and memory stays at about one read chunk plus one capped line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class LineStats:
    """What the reader saw: where it stopped and how many lines it had to drop."""

    end_offset: int = 0  # byte offset just past the last complete line consumed
    oversized: int = 0  # lines skipped because they exceeded the cap
    tail: bytes = b""  # an unterminated last line (may be a truncated write still in progress)


def iter_lines(
    fh: BinaryIO,
    *,
    start: int = 0,
    max_line_bytes: int = MAX_LINE_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
    stats: LineStats,
    include_tail: bool = False,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, line)`` for each newline-terminated, non-blank line from ``start``.

    ``stats.end_offset`` ends just past the last newline read; an unterminated last line is left
    in ``stats.tail`` (unless oversized) so the caller decides whether it is complete JSON or a
    truncated write to re-read later. With ``include_tail`` it is yielded like any other line.
    """
    for base, block in iter_blocks(
        fh, start=start, max_line_bytes=max_line_bytes, chunk_bytes=chunk_bytes, stats=stats
    ):
        at = base
        for line in block[:-1].split(b"\n"):  # a block ends with its last line's newline
            if line.strip():
                yield at, line
            at += len(line) + 1
    if include_tail and stats.tail:
        tail, stats.tail = stats.tail, b""
        at = stats.end_offset
        stats.end_offset = at + len(tail)
        yield at, tail


def read_head(path: str, limit: int = 1024 * 1024) -> bytes:
    """The first non-blank line of a file, cut at ``limit`` bytes: enough to sniff its format.

    Plain ``os`` calls: a report sniffs every new file, and a buffered file object costs more to
    set up than the read."""
    out = b""
    step = 8192  # most first lines are short: read a little first
    fd = os.open(path, os.O_RDONLY)
    try:
        while len(out) < limit:
            chunk = os.read(fd, min(step, limit))
            step = 65536
            if not chunk:
                break
            out += chunk
            stripped = out.lstrip()
            nl = stripped.find(b"\n")
            if nl >= 0:
                return stripped[:nl]
        return out.lstrip()[:limit]
    finally:
        os.close(fd)


def iter_blocks(
    fh: BinaryIO,
    *,
    start: int = 0,
    max_line_bytes: int = MAX_LINE_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
    stats: LineStats,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, block)``: runs of whole newline-terminated lines, each at most the cap.

    The same contract as ``iter_lines`` (oversized lines skipped and counted, an unterminated last
    line left in ``stats.tail``), but a block holds many lines so a caller can decode them in one
    call. A block ends with its last line's newline; it may hold blank lines.
    """
    fh.seek(start)
    pos = start  # file offset of buf[0]
    buf = b""
    skipping = False
    stats.end_offset = start
    while True:
        chunk = fh.read(chunk_bytes)
        if not chunk:
            break
        if skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                pos += len(chunk)
                continue
            skipping = False
            pos += nl + 1
            stats.end_offset = pos
            chunk = chunk[nl + 1 :]
        data = buf + chunk if buf else chunk
        last = data.rfind(b"\n")
        if last < 0:
            buf = data
        else:
            block = data[: last + 1]
            if len(block) > max_line_bytes:
                yield from _capped(block, pos, max_line_bytes, stats)
            else:
                yield pos, block
            pos += last + 1
            stats.end_offset = pos
            buf = data[last + 1 :]
        if len(buf) > max_line_bytes:
            stats.oversized += 1
            pos += len(buf)
            buf = b""
            skipping = True
    if skipping:
        stats.end_offset = pos
    elif buf.strip():
        stats.tail = buf
    else:
        stats.end_offset = pos + len(buf)


def _capped(block: bytes, pos: int, cap: int, stats: LineStats) -> Iterator[tuple[int, bytes]]:
    """Split a block that may hold an oversized line into blocks without one (rare: big lines only)."""
    begin = 0  # start of the current run of acceptable lines
    at = 0
    n = len(block)
    while at < n:
        nl = block.find(b"\n", at)
        if nl - at > cap:
            if at > begin:
                yield pos + begin, block[begin:at]
            stats.oversized += 1
            begin = nl + 1
        at = nl + 1
    if begin < n:
        yield pos + begin, block[begin:]
