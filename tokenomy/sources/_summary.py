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
import os
from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from tokenomy.model import Run, RunKind

if TYPE_CHECKING:
    from tokenomy.sources.claude_code import FileState, Resp

__all__ = [
    "LONG_CONTEXT_SPLIT",
    "PARSER_VERSION",
    "SLOT_S",
    "Agg",
    "FileSummary",
    "RunIdentity",
    "RunSums",
    "is_exact",
    "run_identity",
    "run_meta",
    "run_sums",
    "shared_keys",
    "summarize",
]

SOURCE = "claude_code"
PARSER_VERSION = 6  # bump when FileState's or FileSummary's meaning changes: stored files are re-scanned
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


class FileSummary(msgspec.Struct, array_like=True):
    """A scanned file as a report needs it: run identity, counters, sums and response-key hashes."""

    path: str
    run_id: str
    side_id: str  # the run id of a v1 session's sidechain lines
    kind: RunKind
    parent_id: str | None
    project: str | None
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
    coarse: list[Agg]  # sums without slots (slot None): all a grouping by run or model needs
    fine: bytes  # msgpack list[Agg] by 15-minute slot: decoded only for time groupings and windows
    keys: bytes  # 8-byte blake2b of each response key, concatenated


SUMMARY_ENCODER = msgspec.msgpack.Encoder()
SUMMARY_DECODER = msgspec.msgpack.Decoder(FileSummary)
_AGGS_ENCODER = msgspec.msgpack.Encoder()
_AGGS_DECODER = msgspec.msgpack.Decoder(list[Agg])


def summarize(st: FileState, idents: Iterable[str] | None = None) -> FileSummary:
    """Fold a scanned file's responses into sums (cost: one dictionary update per response).

    ``idents`` are the responses' ``ident()`` in order, when the scan has them at hand (its key
    dictionary): they are hashed into ``keys`` without being made again."""
    ident = run_identity(st.path, st.session_id, st.cwd)
    session_file = ident.kind == "session"
    aggs: dict[tuple[bool, str, str, str | None, bool, int | None], Agg] = {}
    blake2b = hashlib.blake2b
    resps = st.resps
    if idents is None:
        idents = [r.ident() for r in resps]
    keys = b"".join([blake2b(k.encode(), digest_size=8).digest() for k in idents])
    tiers = _TIERS
    for r in resps:
        prompt = r.input_tokens + r.cache_write_5m + r.cache_write_1h + r.cache_read
        at = r.started_at
        tier = r.service_tier
        k = (
            r.sidechain and session_file,
            r.model,
            tier if tier in tiers else "standard",  # service_tier(r), inlined
            r.inference_geo,
            prompt > LONG_CONTEXT_SPLIT,
            int(at // SLOT_S) if at is not None else None,
        )
        a = aggs.get(k)
        if a is None:
            a = aggs[k] = Agg(*k)
        a.n += 1
        out = r.output_tokens
        if not (r.final or out > r.first_output):  # is_exact(r), inlined
            a.lower += 1
        if prompt + out == 0 and not r.web_search:
            a.zero += 1
        a.input_tokens += r.input_tokens
        a.cache_write_5m += r.cache_write_5m
        a.cache_write_1h += r.cache_write_1h
        a.cache_read += r.cache_read
        a.output_tokens += out
        a.web_search += r.web_search
        if at is not None:
            first = a.first_at
            if first is None:
                a.first_at = a.last_at = at
            elif at < first:
                a.first_at = at
            elif at > a.last_at:  # type: ignore[operator]  # set with first_at
                a.last_at = at
    return FileSummary(
        path=st.path,
        run_id=ident.run_id,
        side_id=ident.side_id,
        kind=ident.kind,
        parent_id=ident.parent_id,
        project=ident.project,
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
        coarse=_coarse(aggs.values()),
        fine=_AGGS_ENCODER.encode(list(aggs.values())),
        keys=keys,
    )


def _coarse(aggs: Iterable[Agg]) -> list[Agg]:
    out: dict[tuple[bool, str, str, str | None, bool], Agg] = {}
    for a in aggs:
        k = (a.side, a.model, a.tier, a.geo, a.long)
        c = out.get(k)
        if c is None:
            out[k] = msgspec.structs.replace(a, slot=None)
            continue
        c.n += a.n
        c.lower += a.lower
        c.zero += a.zero
        c.input_tokens += a.input_tokens
        c.cache_write_5m += a.cache_write_5m
        c.cache_write_1h += a.cache_write_1h
        c.cache_read += a.cache_read
        c.output_tokens += a.output_tokens
        c.web_search += a.web_search
        if a.first_at is not None and (c.first_at is None or a.first_at < c.first_at):
            c.first_at = a.first_at
        if a.last_at is not None and (c.last_at is None or a.last_at > c.last_at):
            c.last_at = a.last_at
    return list(out.values())


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


def is_exact(r: Resp) -> bool:
    """Whether a response's input and output are final (else the stream-start lower bounds)."""
    return r.final or r.output_tokens > r.first_output


_TIERS = frozenset(("standard", "batch", "priority"))


def service_tier(r: Resp) -> str:
    return r.service_tier if r.service_tier in _TIERS else "standard"


def _file_kind(path: str) -> tuple[RunKind, str | None]:
    """The run kind of a file and, for sub-agent files, the parent session id from the path."""
    folder, file = os.path.split(path)
    name = os.path.splitext(file)[0]
    up, folder_name = os.path.split(folder)
    in_subagents = folder_name == "subagents"
    parent = os.path.basename(up) if in_subagents else None
    if name.startswith(("agent-acompact", "agent-compact")):
        return "compaction", parent
    if in_subagents or name.startswith("agent-"):
        return "subagent", parent
    return "session", None


def _project(path: str, kind: RunKind, cwd: str | None) -> str | None:
    if cwd:
        return cwd
    folder = os.path.dirname(path)
    if kind != "session" and os.path.basename(folder) == "subagents":
        folder = os.path.dirname(os.path.dirname(folder))
    return os.path.basename(folder) or None


class RunIdentity(NamedTuple):
    """Who a transcript file's run is: its kind, id, parent, session and project."""

    kind: RunKind
    run_id: str
    parent_id: str | None
    session: str
    project: str | None

    @property
    def side_id(self) -> str:
        """The id of the run made of a v1 session's sidechain lines."""
        return f"{self.session}/sidechain"


def run_identity(path: str, session_id: str | None, cwd: str | None) -> RunIdentity:
    """The run a file holds, from its path and the session id and cwd its lines carry."""
    kind, parent = _file_kind(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    session = session_id or (parent if parent else stem)
    if kind == "session":
        run_id, parent_id = stem, None
    else:
        parent_id = parent or session_id
        run_id = f"{parent_id}/{stem}" if parent_id else stem
    return RunIdentity(kind, run_id, parent_id, session, _project(path, kind, cwd))


def run_meta(version: str | None, cwd: str | None, branch: str | None, agent: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if version:
        meta["version"] = version
    if cwd:
        meta["cwd"] = cwd
    if branch:
        meta["git_branch"] = branch
    if agent:
        meta["agent_id"] = agent
    return meta


class RunSums:
    """One run as sums: ``run`` carries its identity (no turns), ``coarse`` its responses summed
    without slots, ``aggs`` by slot (decoded from the file's summary on first use)."""

    __slots__ = ("_aggs", "_fine", "coarse", "run", "side")

    def __init__(self, run: Run, coarse: tuple[Agg, ...], fine: bytes, side: bool) -> None:
        self.run, self.coarse, self._fine, self.side = run, coarse, fine, side
        self._aggs: tuple[Agg, ...] | None = None

    @property
    def aggs(self) -> tuple[Agg, ...]:
        if self._aggs is None:
            self._aggs = tuple(a for a in _AGGS_DECODER.decode(self._fine) if a.side == self.side)
        return self._aggs


def run_sums(s: FileSummary) -> list[RunSums]:
    """The runs a file holds (its main run, and a v1 session's sidechain run), as sums."""
    meta = run_meta(s.version, s.cwd, s.git_branch, s.agent_id)
    main: list[Agg] = []
    side: list[Agg] = []
    for a in s.coarse:
        (side if a.side else main).append(a)
    out: list[RunSums] = []
    if main:
        run = Run(
            run_id=s.run_id,
            turns=(),
            source=SOURCE,
            kind=s.kind,
            parent_id=s.parent_id,
            project=s.project,
            title=s.title,
            path=s.path,
            meta=meta,
        )
        out.append(RunSums(run, tuple(main), s.fine, False))
    if side:
        run = Run(
            run_id=s.side_id,
            turns=(),
            source=SOURCE,
            kind="subagent",
            parent_id=s.run_id,
            project=s.project,
            path=s.path,
            meta=meta,
        )
        out.append(RunSums(run, tuple(side), s.fine, True))
    return out
