"""Turning recorded runs into a replayable workload for ``simulate``, the planner and the oracle.

A ``Workload`` is every request of some runs as a ``Step`` (request, start time, time to first
token, output tokens), ordered by start time so that runs sharing a prefix meet in one cache.

Usage-only runs (Claude Code transcripts hold no system prompt or tools) get a request shape
rebuilt from their usage (workloads README, gotcha 3): each prompt is ``input + cache writes +
cache reads`` tokens. The hidden prefix is the first turn's ``prompt - visible``; when that first
turn read from cache, the part it read is a shared tools+system block (sessions of one agent
share it) and the rest is per-session context. Each turn then appends one message block with
the prompt's growth; a prompt that shrinks keeps only the blocks its recorded cache read proves
were shared. Each model keeps its own history (side requests on another model do not break the
main one). Such steps keep their recorded usage for the ``as_recorded`` policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace

from tokenomy.model import TTL, Block, Request, Run, ServiceTier, Usage
from tokenomy.pricing import model_info
from tokenomy.tokens import V2_FACTOR

__all__ = [
    "DEFAULT_GAP_S",
    "DEFAULT_TTFT_S",
    "PING_TOKENS",
    "Step",
    "Workload",
    "build_workload",
    "ping_request",
    "retarget",
    "shared_prefix",
]

DEFAULT_TTFT_S = 1.0  # time to first token when a log does not record it
DEFAULT_GAP_S = 30.0  # spacing of turns that carry no timestamp
PING_TOKENS = 8  # the placeholder user message of a keep-alive request (max_tokens: 0)
_HASH = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One request of a workload, ready for ``CacheEngine.process``."""

    run_id: str
    index: int
    request: Request
    at: float
    ttft: float
    output_tokens: int
    service_tier: ServiceTier = "standard"
    recorded: Usage | None = None
    reconstructed: bool = False
    kind: str = ""  # the run's kind ("session", "subagent", "compaction", ...): planners may use it


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """Steps in start-time order, and how many runs they came from."""

    steps: tuple[Step, ...]
    runs: int
    reconstructed_runs: int = 0
    notes: tuple[str, ...] = ()

    def by_run(self) -> dict[str, list[Step]]:
        out: dict[str, list[Step]] = {}
        for s in self.steps:
            out.setdefault(s.run_id, []).append(s)
        return out


def _chain(prev: bytes, *parts: bytes) -> bytes:
    h = hashlib.blake2b(prev, digest_size=_HASH)
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.digest()


def _text_block(
    index: int,
    section: str,
    data: bytes,
    tokens: int,
    position: int,
    prev_hash: bytes,
    path: tuple[str | int, ...],
) -> Block:
    return Block(
        index=index,
        section="system" if section == "system" else "messages",
        kind="text",
        path=path,
        data=data,
        tokens=max(tokens, 0),
        position=position,
        prefix_hash=_chain(prev_hash, section.encode(), data),
    )


def _reconstruct(run: Run) -> list[tuple[int, Request]]:
    """Request shapes for a usage-only run: ``(turn_index, Request)`` per turn with usage."""
    turns = [(i, t) for i, t in enumerate(run.turns) if t.usage is not None and t.usage.prompt_tokens > 0]
    if not turns:
        return []
    # The hidden prefix is measured on the first turn, where the visible estimate is smallest
    # and its error least (later turns drift with the estimator's error on long histories).
    first_turn = turns[0][1]
    assert first_turn.usage is not None
    visible = first_turn.meta.get("visible_tokens")
    vis = int(visible) if isinstance(visible, (int, float)) else 0
    hidden = max(first_turn.usage.prompt_tokens - vis, 0)
    first = turns[0][1].usage
    assert first is not None
    # A first turn that reads from cache shares that much prefix with an earlier session: the
    # tools + static system part. The rest of the hidden prefix is per-session context.
    shared = first.cache_read if 0 < first.cache_read < hidden else 0
    out: list[tuple[int, Request]] = []
    # One message history per model: side requests on another model (Claude Code's haiku
    # calls) do not interrupt the main conversation's prefix.
    histories: dict[str, tuple[list[Block], bytes, int]] = {}
    prefixes: dict[str, tuple[Block, ...]] = {}
    for i, t in turns:
        assert t.usage is not None
        prompt = t.usage.prompt_tokens
        h = min(hidden, prompt)
        key = f"{t.model}:{h}"
        hp = prefixes.get(key)
        if hp is None:
            if 0 < shared < h:
                data = f"shared system+tools prefix of {shared} tokens".encode()
                sb = _text_block(0, "system", data, shared, 0, b"", ("system", 0))
                rest = f"{run.run_id}: per-session context of {h - shared} tokens".encode()
                hp = (
                    sb,
                    _text_block(
                        1, "messages", rest, h - shared, 1, sb.prefix_hash, ("messages", 0, "content", 0)
                    ),
                )
            else:
                data = f"hidden system+tools prefix of {h} tokens".encode()
                hp = (_text_block(0, "system", data, h, 0, b"", ("system", 0)),)
            prefixes[key] = hp
        messages, built_on, segment = histories.get(t.model, ([], b"", 0))
        have = h + sum(b.tokens for b in messages)
        if messages and (prompt < have or built_on != hp[-1].prefix_hash):
            # The prompt changed: keep what the recorded cache read proves was shared.
            kept: list[Block] = []
            run_total = h
            if built_on == hp[-1].prefix_hash:
                for b in messages:
                    if run_total + b.tokens > t.usage.cache_read:
                        break
                    kept.append(b)
                    run_total += b.tokens
            segment += 1
            messages = kept
            have = run_total
        if prompt > have or not messages:
            prev = messages[-1].prefix_hash if messages else hp[-1].prefix_hash
            built_on = hp[-1].prefix_hash
            k = len(hp) + len(messages)
            data = f"{run.run_id}:{t.model}:{segment}:{k}".encode()
            messages = [
                *messages,
                _text_block(k, "messages", data, prompt - have, k, prev, ("messages", k, "content", 0)),
            ]
        histories[t.model] = (messages, built_on, segment)
        out.append((i, Request(model=t.model, blocks=(*hp, *messages), tokens_exact=True)))
    return out


def build_workload(runs: Iterable[Run], *, model: str | None = None) -> Workload:
    """Every request of ``runs`` as steps in start-time order; ``model`` re-targets them all."""
    steps: list[Step] = []
    n_runs = 0
    reconstructed_runs = 0
    notes: list[str] = []
    for run in runs:
        reqs: list[tuple[int, Request, bool]] = [
            (i, t.request, False) for i, t in enumerate(run.turns) if t.request is not None
        ]
        if not reqs:
            rebuilt = _reconstruct(run)
            if rebuilt:
                reconstructed_runs += 1
            reqs = [(i, r, True) for i, r in rebuilt]
        if not reqs:
            continue
        n_runs += 1
        clock: float | None = None
        for n, (i, req, rebuilt_flag) in enumerate(reqs):
            t = run.turns[i]
            at = t.started_at
            if at is None:
                at = (clock + DEFAULT_GAP_S) if clock is not None else 0.0
            clock = at
            out = t.usage.output_tokens if t.usage is not None else 0
            tier = t.usage.service_tier if t.usage is not None else "standard"
            if model is not None:
                req, out = retarget(req, out, model)
            steps.append(
                Step(
                    run_id=run.run_id,
                    index=n,
                    request=req,
                    at=float(at),
                    ttft=t.ttft_s if t.ttft_s is not None else DEFAULT_TTFT_S,
                    output_tokens=out,
                    service_tier=tier,
                    recorded=t.usage if model is None else None,
                    reconstructed=rebuilt_flag,
                    kind="compaction" if t.is_compaction else run.kind,
                )
            )
    steps.sort(key=lambda s: s.at)
    if reconstructed_runs:
        notes.append(
            f"{reconstructed_runs:,} usage-only run(s): request shapes rebuilt from recorded usage "
            "(hidden system+tools prefix of the observed size, one message block per turn)"
        )
    if model is not None:
        notes.append(f"re-priced for {model}: recorded usage (as_recorded) cannot be re-targeted")
    return Workload(
        steps=tuple(steps), runs=n_runs, reconstructed_runs=reconstructed_runs, notes=tuple(notes)
    )


def _tokenizer(model: str) -> str:
    info = model_info(model)
    return info.tokenizer if info is not None else "legacy"


def retarget(request: Request, output_tokens: int, model: str) -> tuple[Request, int]:
    """The request as sent to ``model``: same blocks, token counts scaled when the tokenizer
    family changes (legacy → v2 is about 1.3x, spec §3.3)."""
    src, dst = _tokenizer(request.model), _tokenizer(model)
    factor = 1.0
    if src != dst:
        factor = V2_FACTOR if dst == "v2" else 1.0 / V2_FACTOR
    if factor == 1.0:
        return replace(request, model=model), output_tokens
    blocks = tuple(replace(b, tokens=round(b.tokens * factor)) for b in request.blocks)
    return (
        replace(request, model=model, blocks=blocks, overhead_tokens=round(request.overhead_tokens * factor)),
        round(output_tokens * factor),
    )


def ping_request(request: Request, node: int, ttl: TTL) -> Request:
    """A keep-alive (``max_tokens: 0``) request: the prefix through ``node`` with one breakpoint
    there, then a short placeholder user message."""
    kept = request.blocks[: node + 1]
    last = kept[-1]
    blocks = tuple(replace(b, cache_ttl=ttl if b.index == node else None) for b in kept)
    data = b'{"text":"."}'
    placeholder = Block(
        index=node + 1,
        section="messages",
        kind="text",
        path=("messages", -1, "content", 0),
        data=data,
        tokens=PING_TOKENS,
        position=last.position + 1,
        prefix_hash=_chain(last.prefix_hash, b"ping", data),
        cacheable=True,
    )
    return replace(request, blocks=(*blocks, placeholder), auto_cache_ttl=None, max_tokens=0, body=None)


def shared_prefix(a: Request, b: Request) -> int:
    """Index of the deepest block two requests share (same model and parameters), -1 if none.

    Equal ``prefix_hash`` at a block means equal prefixes up to it (``Block``), so a binary
    search finds the divergence point.
    """
    if a.model != b.model or a.params != b.params:
        return -1
    lo, hi = 0, min(len(a.blocks), len(b.blocks)) - 1
    found = -1
    while lo <= hi:
        mid = (lo + hi) // 2
        if a.blocks[mid].prefix_hash == b.blocks[mid].prefix_hash:
            found = mid
            lo = mid + 1
        else:
            hi = mid - 1
    return found
