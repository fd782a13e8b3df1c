"""Per-file sums of a scanned Claude Code transcript: what a report adds up without building turns.

A 1 GB history holds ~80k responses; building a ``Turn`` for each costs more than everything else
a report over an unchanged tree does. So each scan also folds its file's responses into a few
``Agg`` rows (sums per part of the run, model, tier, geo, long-context band and 15-minute slot),
stored in the index beside the resumable state. A report sums those rows; only per-turn views
(``--run``, ``--html``) build turns.

Why these keys: every time zone's offset is a multiple of 15 minutes, so a 15-minute slot lies in
one local day, week and month in any zone, and day-aligned ``--since/--until`` windows cut
between slots. A model with long-context rates prices a request by its own prompt size, so
requests above and below ``LONG_CONTEXT_SPLIT`` are summed apart. Cross-file dedupe needs each
response's key; ``keys`` holds an 8-byte hash of each, enough to find the files that share a
response (those are then read from their full state).
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from tokenomy.model import Run
from tokenomy.sources.claude_code import SOURCE, FileState, is_exact, run_identity, run_meta, service_tier

__all__ = ["LONG_CONTEXT_SPLIT", "SLOT_S", "Agg", "FileSummary", "RunSums", "run_sums", "shared_keys", "summarize"]

LONG_CONTEXT_SPLIT = 200_000  # prompt tokens above which long-context rates apply (every model today)
SLOT_S = 900  # 15 minutes


class Agg(msgspec.Struct, array_like=True):
    """Sums over the responses of one file that share a part, model, tier, geo, band and slot."""

    side: bool  # the v1 sidechain part of a session file (a run of its own)
    model: str
    tier: str
    geo: str | None
    long: bool  # prompt tokens above LONG_CONTEXT_SPLIT
    slot: int | None  # start time // SLOT_S; None when undated
    n: int = 0
    lower: int = 0  # responses whose input and output are stream-start lower bounds
    zero: int = 0  # responses that billed no tokens
    input_tokens: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    output_tokens: int = 0
    web_search: int = 0
    first_at: float | None = None
    last_at: float | None = None


class FileSummary(msgspec.Struct):
    """A scanned file as a report needs it: run identity, counters, sums and response-key hashes."""

    path: str
    session_id: str | None
    agent_id: str | None
    version: str | None
    cwd: str | None
    git_branch: str | None
    title: str | None
    first_ts: float | None
    skipped: int
    synthetic: int
    lines: int
    responses: int
    aggs: list[Agg]
    keys: bytes  # 8-byte blake2b of each response key, concatenated


SUMMARY_ENCODER = msgspec.msgpack.Encoder()
SUMMARY_DECODER = msgspec.msgpack.Decoder(FileSummary)


def summarize(st: FileState) -> FileSummary:
    """Fold a scanned file's responses into sums (cost: one dictionary update per response)."""
    session_file = run_identity(st.path, st.session_id, st.cwd).kind == "session"
    aggs: dict[tuple[bool, str, str, str | None, bool, int | None], Agg] = {}
    keys = bytearray()
    for r in st.resps:
        keys += hashlib.blake2b(r.key.encode(), digest_size=8).digest()
        prompt = r.input_tokens + r.cache_write_5m + r.cache_write_1h + r.cache_read
        at = r.started_at
        slot = int(at // SLOT_S) if at is not None else None
        side = r.sidechain and session_file
        tier = service_tier(r)
        k = (side, r.model, tier, r.inference_geo, prompt > LONG_CONTEXT_SPLIT, slot)
        a = aggs.get(k)
        if a is None:
            a = aggs[k] = Agg(side, r.model, tier, r.inference_geo, k[4], slot)
        a.n += 1
        if not is_exact(r):
            a.lower += 1
        if prompt + r.output_tokens == 0 and not r.web_search:
            a.zero += 1
        a.input_tokens += r.input_tokens
        a.cache_write_5m += r.cache_write_5m
        a.cache_write_1h += r.cache_write_1h
        a.cache_read += r.cache_read
        a.output_tokens += r.output_tokens
        a.web_search += r.web_search
        if at is not None:
            if a.first_at is None or at < a.first_at:
                a.first_at = at
            if a.last_at is None or at > a.last_at:
                a.last_at = at
    return FileSummary(
        path=st.path,
        session_id=st.session_id,
        agent_id=st.agent_id,
        version=st.version,
        cwd=st.cwd,
        git_branch=st.git_branch,
        title=st.title,
        first_ts=st.first_ts,
        skipped=st.skipped + st.tail_skipped,
        synthetic=st.synthetic,
        lines=st.lines,
        responses=len(st.resps),
        aggs=list(aggs.values()),
        keys=bytes(keys),
    )


def shared_keys(summaries: Iterable[FileSummary]) -> set[str]:
    """Paths of the files that share a response key with another file (hash equality suffices:
    a false match only sends a file down the exact, slower path)."""
    items = list(summaries)
    hashes = array("Q")
    for s in items:
        hashes.frombytes(s.keys)
    if len(set(hashes)) == len(hashes):
        return set()
    seen: dict[int, str] = {}
    out: set[str] = set()
    for s in items:
        for h in array("Q", s.keys):
            other = seen.setdefault(h, s.path)
            if other != s.path:
                out.add(other)
                out.add(s.path)
    return out


@dataclass(frozen=True, slots=True)
class RunSums:
    """One run as sums: ``run`` carries its identity (no turns), ``aggs`` its responses."""

    run: Run
    aggs: tuple[Agg, ...]


def run_sums(s: FileSummary) -> list[RunSums]:
    """The runs a file holds (its main run, and a v1 session's sidechain run), as sums."""
    ident = run_identity(s.path, s.session_id, s.cwd)
    meta = run_meta(s.version, s.cwd, s.git_branch, s.agent_id)
    main = tuple(a for a in s.aggs if not a.side)
    side = tuple(a for a in s.aggs if a.side)
    out: list[RunSums] = []
    if main:
        run = Run(
            run_id=ident.run_id,
            turns=(),
            source=SOURCE,
            kind=ident.kind,
            parent_id=ident.parent_id,
            project=ident.project,
            title=s.title,
            path=s.path,
            meta=meta,
        )
        out.append(RunSums(run, main))
    if side:
        run = Run(
            run_id=ident.side_id,
            turns=(),
            source=SOURCE,
            kind="subagent",
            parent_id=ident.run_id,
            project=ident.project,
            path=s.path,
            meta=meta,
        )
        out.append(RunSums(run, side))
    return out
