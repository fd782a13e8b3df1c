"""The one data model every part of tokenomy reads into and out of.

- ``Block``: one cacheable unit of a prompt, in cache-prefix order (tools, system, messages).
- ``Request``: a Messages API body seen as an ordered list of blocks.
- ``Usage``: the token classes the API bills, plus the service tier.
- ``Turn``: one request, its usage, model and timing.
- ``Run``: the ordered turns of one agent conversation.

This module is pure: stdlib only, no I/O, nothing from the rest of tokenomy. Parsing a body
into blocks lives in ``tokenomy.blocks`` because it needs the token counter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Section = Literal["tools", "system", "messages"]
TTL = Literal["5m", "1h"]
ServiceTier = Literal["standard", "batch", "priority"]

TTL_SECONDS: Mapping[str, float] = {"5m": 300.0, "1h": 3600.0}


def format_path(path: tuple[str | int, ...], style: Literal["doc", "api"] = "doc") -> str:
    """Render a block path: ``messages[4].content[0]`` (doc) or ``messages.4.content.0`` (api)."""
    if style == "api":
        return ".".join(str(p) for p in path)
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """One unit of the prompt in cache-prefix order.

    ``prefix_hash`` covers the canonical bytes of this block and every block before it, so two
    requests share a cacheable prefix up to block *i* exactly when their ``prefix_hash`` at *i*
    is equal. ``position`` is the lookback position: consecutive ``tool_use`` blocks share one,
    and so do consecutive ``tool_result`` blocks (spec §2.4).
    """

    index: int
    section: Section
    kind: str
    path: tuple[str | int, ...]
    data: bytes
    tokens: int
    position: int
    prefix_hash: bytes
    cache_ttl: TTL | None = None
    cacheable: bool = True

    @property
    def doc_path(self) -> str:
        return format_path(self.path, "doc")

    @property
    def api_path(self) -> str:
        return format_path(self.path, "api")


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A Messages API request as an ordered list of blocks, plus what else affects the cache.

    ``overhead_tokens`` are the tokens the API adds that belong to no block (the tool-use
    system prompt, message framing); they count at the start of the prefix.
    ``params`` holds the prompt-affecting parameters per cache level (spec §2.7): a change in
    ``params["system"]`` invalidates system and messages, in ``params["messages"]`` only messages.
    """

    model: str
    blocks: tuple[Block, ...]
    overhead_tokens: int = 0
    params: Mapping[Section, bytes] = field(default_factory=dict)
    auto_cache_ttl: TTL | None = None
    max_tokens: int | None = None
    stream: bool = False
    body: Mapping[str, Any] | None = None
    tokens_exact: bool = False
    # Derived once at construction: engines read these on every request.
    cum: tuple[int, ...] = field(init=False, repr=False, compare=False)
    explicit_breakpoints: tuple[tuple[int, TTL], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        run = self.overhead_tokens
        cum: list[int] = []
        bps: list[tuple[int, TTL]] = []
        for b in self.blocks:
            run += b.tokens
            cum.append(run)
            if b.cache_ttl is not None:
                bps.append((b.index, b.cache_ttl))
        object.__setattr__(self, "cum", tuple(cum))
        object.__setattr__(self, "explicit_breakpoints", tuple(bps))

    @property
    def total_tokens(self) -> int:
        return self.cum[-1] if self.cum else self.overhead_tokens

    def tokens_through(self, index: int) -> int:
        """Prompt tokens of the prefix ending at block ``index`` (inclusive); -1 gives overhead only."""
        return self.cum[index] if index >= 0 else self.overhead_tokens

    def cumulative_tokens(self) -> tuple[int, ...]:
        """Prefix token count through each block."""
        return self.cum

    @property
    def breakpoints(self) -> tuple[int, ...]:
        """Indices of blocks carrying an explicit ``cache_control``."""
        return tuple(i for i, _ in self.explicit_breakpoints)

    def with_blocks(self, blocks: tuple[Block, ...], **changes: Any) -> Request:
        return replace(self, blocks=blocks, **changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """What one response bills. ``input_tokens`` excludes cached tokens, as the API reports it."""

    input_tokens: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    output_tokens: int = 0
    service_tier: ServiceTier = "standard"
    inference_geo: str | None = None
    web_search_requests: int = 0

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def cache_read_input_tokens(self) -> int:
        return self.cache_read

    @property
    def prompt_tokens(self) -> int:
        """All prompt tokens: uncached input + cache writes + cache reads (spec §1)."""
        return self.input_tokens + self.cache_write_5m + self.cache_write_1h + self.cache_read

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @classmethod
    def from_api(cls, usage: Mapping[str, Any], *, service_tier: str | None = None) -> Usage:
        """Read an API ``usage`` object; a ``cache_creation`` split wins over the flat total.

        Without the split the flat ``cache_creation_input_tokens`` is taken as 5m writes, the
        API's default TTL.
        """

        def num(v: Any) -> int:
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0

        total_write = num(usage.get("cache_creation_input_tokens"))
        split = usage.get("cache_creation")
        if isinstance(split, Mapping) and (
            "ephemeral_5m_input_tokens" in split or "ephemeral_1h_input_tokens" in split
        ):
            w5 = num(split.get("ephemeral_5m_input_tokens"))
            w1 = num(split.get("ephemeral_1h_input_tokens"))
            if w5 + w1 != total_write and total_write:
                w5 = max(total_write - w1, 0)
        else:
            w5, w1 = total_write, 0
        raw_tier = service_tier or usage.get("service_tier")
        tier: ServiceTier = (
            "batch" if raw_tier == "batch" else "priority" if raw_tier == "priority" else "standard"
        )
        stu = usage.get("server_tool_use")
        geo = usage.get("inference_geo")
        return cls(
            input_tokens=num(usage.get("input_tokens")),
            cache_write_5m=w5,
            cache_write_1h=w1,
            cache_read=num(usage.get("cache_read_input_tokens")),
            output_tokens=num(usage.get("output_tokens")),
            service_tier=tier,
            inference_geo=geo if isinstance(geo, str) else None,
            web_search_requests=num(stu.get("web_search_requests")) if isinstance(stu, Mapping) else 0,
        )

    def to_api(self) -> dict[str, Any]:
        """The API's own ``usage`` shape, with every field present even when zero (spec §2.8)."""
        out: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            },
            "output_tokens": self.output_tokens,
            "service_tier": self.service_tier,
            "inference_geo": self.inference_geo or "global",
        }
        if self.web_search_requests:
            out["server_tool_use"] = {"web_search_requests": self.web_search_requests}
        return out

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cache_write_5m=self.cache_write_5m + other.cache_write_5m,
            cache_write_1h=self.cache_write_1h + other.cache_write_1h,
            cache_read=self.cache_read + other.cache_read,
            output_tokens=self.output_tokens + other.output_tokens,
            service_tier=self.service_tier if self.service_tier == other.service_tier else "standard",
            inference_geo=self.inference_geo if self.inference_geo == other.inference_geo else None,
            web_search_requests=self.web_search_requests + other.web_search_requests,
        )


Exactness = Literal["exact", "lower_bound", "estimated"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One API request and what came back.

    ``request`` is ``None`` for usage-only logs (Claude Code transcripts hold no system prompt or
    tools). ``started_at`` is seconds since the epoch (UTC). ``quality`` says, per token class,
    whether the figure is exact, a lower bound or an estimate.
    """

    model: str
    usage: Usage | None = None
    request: Request | None = None
    started_at: float | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    request_id: str | None = None
    message_id: str | None = None
    status: int | None = 200
    error: str | None = None
    compaction_before: bool = False
    is_compaction: bool = False
    quality: Mapping[str, Exactness] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)


RunKind = Literal["session", "subagent", "compaction", "trajectory", "request_log", "gateway", "synthetic"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """The ordered turns of one agent conversation. Sub-agents are runs of their own."""

    run_id: str
    turns: tuple[Turn, ...]
    source: str = ""
    kind: RunKind = "session"
    parent_id: str | None = None
    project: str | None = None
    title: str | None = None
    path: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for t in self.turns:
            if t.usage is not None:
                total = total + t.usage
        return total

    @property
    def started_at(self) -> float | None:
        times = [t.started_at for t in self.turns if t.started_at is not None]
        return min(times) if times else None
