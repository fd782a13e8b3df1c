"""The prompt-cache engine: the single implementation of the API's caching rules (spec §2).

The emulator, the simulator, the oracle, the doctor and the planner all ask this engine; none
re-implements a rule. It works in whatever time the caller gives it (``at=`` seconds), so
simulations run in virtual time and the emulator in wall time.

Rules, as the docs state them (spec §2.4-§2.6):

- writes happen only at breakpoints, one entry per breakpoint, keyed by the hash of the prefix
  ending there (plus model, workspace and the prompt-affecting parameters of each level);
- a read walks back from each breakpoint at most 20 lookback positions, looking for entries
  that earlier requests wrote;
- nothing is cached for a breakpoint whose prefix is shorter than the model's minimum;
- an entry lives for its TTL from the start of the request that wrote or last read it, and is
  readable only once the writing request's first token has been produced;
- billing: A = tokens at the highest hit, B = tokens at the highest 1h breakpoint after A,
  C = tokens at the last breakpoint: reads A, 1h writes B-A, 5m writes C-B, input total-C.

Readings of UNCONFIRMED points are named options in ``CacheOptions``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from tokenomy.cache._rules import (
    effective_breakpoints,
    min_cacheable_tokens,
    scope_model,
)
from tokenomy.model import TTL, TTL_SECONDS, Block, Request, Usage

__all__ = [
    "BreakpointOutcome",
    "CacheEngine",
    "CacheOptions",
    "CacheResult",
    "Entry",
    "billing_split",
    "effective_breakpoints",
    "min_cacheable_tokens",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheOptions:
    """Readings of the rules the docs leave open (spec §9), each a named choice.

    - ``lookback``: positions checked per breakpoint, the breakpoint itself first (20).
    - ``collapse_tool_runs``: a run of tool_use / tool_result blocks is one position
      (PC-Sep26, "on the Claude API"); False counts every block.
    - ``refresh_to``: a hit refreshes the entry for its own TTL ("entry", the documented
      "refreshed ... each time used") or for the reading breakpoint's TTL ("breakpoint").
    - ``write_covered_breakpoints``: whether a breakpoint at or before the highest hit writes
      an entry of its own; the docs' example implies it is refreshed, not rewritten (False).
    - ``readable_after``: "first_token" (docs: "after the first response begins") or
      "request_start" (optimistic).
    """

    lookback: int = 20
    max_breakpoints: int = 4
    collapse_tool_runs: bool = True
    refresh_to: Literal["entry", "breakpoint"] = "entry"
    write_covered_breakpoints: bool = False
    readable_after: Literal["first_token", "request_start"] = "first_token"


@dataclass(slots=True)
class Entry:
    """One cache entry, written at a breakpoint."""

    ttl: TTL
    tokens: int
    written_at: float
    available_at: float
    expires_at: float
    block_index: int
    hits: int = 0


_Met = tuple[int, float] | None  # (block index, time) of an entry met in a lookback walk


class BreakpointOutcome(NamedTuple):
    """What happened at one breakpoint, for the doctor and for tests.

    A NamedTuple, not a dataclass: the engine builds up to four per request on its hot path.
    """

    block_index: int
    ttl: TTL
    tokens: int
    automatic: bool
    qualifies: bool  # prefix reaches the model's minimum cacheable length
    hit_block: int | None  # block whose entry was read, None on a miss
    hit_tokens: int
    wrote: bool
    expired_block: int | None = None  # nearest entry found in the window but expired
    expired_at: float | None = None
    pending_block: int | None = None  # nearest entry found but not readable yet (concurrent)
    pending_until: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheResult:
    """The usage split for one request and how it came about."""

    usage: Usage
    total_tokens: int
    read_tokens: int
    breakpoints: tuple[BreakpointOutcome, ...]
    min_tokens: int
    at: float
    written: tuple[int, ...] = field(default_factory=tuple)

    @property
    def hit_block(self) -> int | None:
        hits = [b.hit_block for b in self.breakpoints if b.hit_block is not None]
        return max(hits) if hits else None


_Scope = tuple[str, str, bytes]  # (workspace, model, key material of the block's section)


class CacheEngine:
    """Holds cache entries and prices each request's prompt into usage, in caller-given time.

    ``process`` is the only mutating call; ``peek`` answers the same question without changing
    anything (for what-ifs and the doctor).

    Entries are stored per scope (workspace, model, the section's parameter key material), each
    scope a dict from prefix hash to entry: a lookup on the hot path hashes one bytes object.
    """

    def __init__(
        self,
        options: CacheOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options or CacheOptions()
        self.clock = clock
        self._scopes: dict[_Scope, dict[bytes, Entry]] = {}
        self._section_memo: dict[tuple[str, str, bytes, bytes, bytes], dict[str, dict[bytes, Entry]]] = {}
        self._writes_since_sweep = 0

    def __len__(self) -> int:
        return sum(len(d) for d in self._scopes.values())

    def clear(self) -> None:
        self._scopes.clear()
        self._section_memo.clear()

    def process(
        self,
        request: Request,
        *,
        workspace: str = "default",
        at: float | None = None,
        ttft: float = 0.0,
        output_tokens: int = 0,
        service_tier: Literal["standard", "batch", "priority"] = "standard",
        inference_geo: str | None = None,
    ) -> CacheResult:
        """Price one request's prompt and update the store.

        ``at`` is the request's start; ``ttft`` the seconds until its first token, after which
        its entries become readable by other requests. Raises ``CacheControlError`` for
        breakpoints the API refuses (more than 4, TTL order, automatic-caching conflicts).
        """
        return self._run(request, workspace, at, ttft, output_tokens, service_tier, inference_geo, True)

    def peek(self, request: Request, *, workspace: str = "default", at: float | None = None) -> CacheResult:
        """What ``process`` would bill now, without reading or writing the store."""
        return self._run(request, workspace, at, 0.0, 0, "standard", None, False)

    # -- internals -------------------------------------------------------------------------

    def _stores(self, request: Request, workspace: str) -> dict[str, dict[bytes, Entry]]:
        """The entry dict of each section's scope for this request (created empty on demand,
        memoised per workspace, model and parameter key material)."""
        p = request.params
        memo_key = (
            workspace,
            request.model,
            p.get("tools", b""),
            p.get("system", b""),
            p.get("messages", b""),
        )
        found = self._section_memo.get(memo_key)
        if found is None:
            model = scope_model(request.model)
            keys = _section_keys(request)
            scopes = self._scopes
            found = {s: scopes.setdefault((workspace, model, k), {}) for s, k in keys.items()}
            if len(self._section_memo) > 4096:
                self._section_memo.clear()
            self._section_memo[memo_key] = found
        return found

    def _run(
        self,
        request: Request,
        workspace: str,
        at: float | None,
        ttft: float,
        output_tokens: int,
        service_tier: Literal["standard", "batch", "priority"],
        inference_geo: str | None,
        mutate: bool,
    ) -> CacheResult:
        now = self.clock() if at is None else at
        opts = self.options
        bps = effective_breakpoints(request, max_breakpoints=opts.max_breakpoints)
        blocks = request.blocks
        cum = request.cum
        total = request.total_tokens
        minimum = min_cacheable_tokens(request.model)
        stores = self._stores(request, workspace)

        # Reads: each qualifying breakpoint walks back for an entry earlier requests wrote.
        found: list[tuple[int, TTL, bool, bool, int | None, Entry | None, _Met, _Met]] = []
        billed: list[tuple[int, TTL]] = []
        read = 0
        for bp_index, ttl, automatic in bps:
            tokens = cum[bp_index]
            if tokens < minimum:
                found.append((bp_index, ttl, automatic, False, None, None, None, None))
                continue
            billed.append((tokens, ttl))
            hit_block, hit, expired, pending = self._lookback(blocks, bp_index, stores, now)
            if hit_block is not None and cum[hit_block] > read:
                read = cum[hit_block]
            found.append((bp_index, ttl, automatic, True, hit_block, hit, expired, pending))

        input_tokens, w5, w1, _ = billing_split(total, read, billed)
        usage = Usage(
            input_tokens=input_tokens,
            cache_write_5m=w5,
            cache_write_1h=w1,
            cache_read=read,
            output_tokens=output_tokens,
            service_tier=service_tier,
            inference_geo=inference_geo,
        )

        available = now + (ttft if opts.readable_after == "first_token" else 0.0)
        refresh_entry = opts.refresh_to == "entry"
        covered = opts.write_covered_breakpoints
        outcomes: list[BreakpointOutcome] = []
        written: list[int] = []
        for bp_index, ttl, automatic, qualifies, hit_block, hit, expired, pending in found:
            tokens = cum[bp_index]
            wrote = qualifies and (tokens > read or (covered and hit_block != bp_index))
            if mutate:
                if hit is not None:
                    hit.hits += 1
                    expires = now + TTL_SECONDS[hit.ttl if refresh_entry else ttl]
                    if expires > hit.expires_at:
                        hit.expires_at = expires
                if wrote:
                    blk = blocks[bp_index]
                    store = stores[blk.section]
                    prior = store.get(blk.prefix_hash)
                    if prior is not None and prior.expires_at > now:
                        # a concurrent re-write of a pending entry: the earlier writer's first
                        # token still makes it readable; keep the longest life and TTL
                        if available < prior.available_at:
                            prior.available_at = available
                        expires = now + TTL_SECONDS[ttl]
                        if expires > prior.expires_at:
                            prior.expires_at = expires
                        if ttl == "1h":
                            prior.ttl = "1h"
                    else:
                        store[blk.prefix_hash] = Entry(
                            ttl, tokens, now, available, now + TTL_SECONDS[ttl], bp_index
                        )
                    written.append(bp_index)
            outcomes.append(
                BreakpointOutcome(
                    bp_index,
                    ttl,
                    tokens,
                    automatic,
                    qualifies,
                    hit_block,
                    cum[hit_block] if hit_block is not None else 0,
                    wrote and mutate,
                    expired[0] if expired else None,
                    expired[1] if expired else None,
                    pending[0] if pending else None,
                    pending[1] if pending else None,
                )
            )
        if mutate and written:
            self._writes_since_sweep += len(written)
            if self._writes_since_sweep > 4096:
                self.sweep(now)
        return CacheResult(
            usage=usage,
            total_tokens=total,
            read_tokens=read,
            breakpoints=tuple(outcomes),
            min_tokens=minimum,
            at=now,
            written=tuple(written),
        )

    def _lookback(
        self,
        blocks: tuple[Block, ...],
        bp_index: int,
        stores: dict[str, dict[bytes, Entry]],
        now: float,
    ) -> tuple[int | None, Entry | None, _Met, _Met]:
        """Walk back from a breakpoint; return the hit block and entry, and the nearest expired
        and not-yet-readable entries met on the way (for diagnosis)."""
        collapse = self.options.collapse_tool_runs
        start_pos = blocks[bp_index].position if collapse else bp_index
        stop_pos = start_pos - self.options.lookback  # exclusive
        expired: _Met = None
        pending: _Met = None
        i = bp_index
        section = ""
        store: dict[bytes, Entry] = {}
        while i >= 0:
            blk = blocks[i]
            if (blk.position if collapse else i) <= stop_pos:
                break
            if blk.section != section:
                section = blk.section
                store = stores[section]
            entry = store.get(blk.prefix_hash)
            if entry is not None:
                if entry.expires_at <= now:
                    if expired is None:
                        expired = (i, entry.expires_at)
                elif entry.available_at > now:
                    if pending is None:
                        pending = (i, entry.available_at)
                else:
                    return i, entry, expired, pending
            i -= 1
        return None, None, expired, pending

    def sweep(self, now: float | None = None) -> int:
        """Drop expired entries; returns how many. Keeps a long-running emulator's memory flat."""
        t = self.clock() if now is None else now
        dropped = 0
        for store in self._scopes.values():
            dead = [k for k, e in store.items() if e.expires_at <= t]
            for k in dead:
                del store[k]
            dropped += len(dead)
        if any(not store for store in self._scopes.values()):
            self._scopes = {k: store for k, store in self._scopes.items() if store}
            self._section_memo.clear()  # it may point at a dropped scope
        self._writes_since_sweep = 0
        return dropped

    def entry_for(self, request: Request, block_index: int, *, workspace: str = "default") -> Entry | None:
        """The entry stored for the prefix ending at ``block_index``, if any (expired or not)."""
        blk = request.blocks[block_index]
        key = (workspace, scope_model(request.model), _section_keys(request)[blk.section])
        store = self._scopes.get(key)
        return store.get(blk.prefix_hash) if store is not None else None


def billing_split(total: int, read: int, breakpoints: Iterable[tuple[int, TTL]]) -> tuple[int, int, int, int]:
    """Split a prompt into (input, 5m writes, 1h writes, reads): the API's billing rule (spec §2.6).

    ``read`` is A, the tokens at the highest hit; ``breakpoints`` are the (tokens, ttl) of the
    breakpoints that reach the minimum. B is the highest 1h breakpoint after A, C the last one:
    reads A, 1h writes B-A, 5m writes C-B, input total-C. The one place this rule lives.
    """
    c = b = read
    any_bp = False
    for tokens, ttl in breakpoints:
        any_bp = True
        if tokens > c:
            c = tokens
        if ttl == "1h" and tokens > b:
            b = tokens
    if not any_bp:
        return total, 0, 0, 0
    return total - c, c - b, b - read, read


def _section_keys(request: Request) -> dict[str, bytes]:
    """Per-section key material: a change of system-level parameters invalidates system and
    messages; of messages-level parameters, messages only (spec §2.7)."""
    p = request.params
    tools = p.get("tools", b"")
    system = tools + b"|" + p.get("system", b"")
    return {"tools": tools, "system": system, "messages": system + b"|" + p.get("messages", b"")}
