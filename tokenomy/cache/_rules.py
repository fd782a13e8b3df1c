"""Breakpoint placement and validation rules (spec §2.1-§2.3, §2.6), and per-model facts."""

from __future__ import annotations

from functools import lru_cache

from tokenomy.errors import CacheControlError
from tokenomy.model import TTL, Request
from tokenomy.pricing import resolve

DEFAULT_MIN_CACHEABLE = 1024

TTL_ORDER_MESSAGE = (
    "{path}.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' "
    "cache_control block. Note that blocks are processed in the following order: `tools`, `system`, `messages`."
)


@lru_cache(maxsize=1024)
def min_cacheable_tokens(model: str) -> int:
    """The model's minimum cacheable prompt length (spec §2.5), from the price data."""
    info = resolve(model).info
    return info.min_cacheable_tokens if info else DEFAULT_MIN_CACHEABLE


@lru_cache(maxsize=1024)
def scope_model(model: str) -> str:
    """Caches are per model; aliases and dated ids of one model share one cache."""
    res = resolve(model)
    return res.info.id if res.info is not None and res.exact else model


def effective_breakpoints(request: Request, *, max_breakpoints: int = 4) -> list[tuple[int, TTL, bool]]:
    """Breakpoints in prompt order as ``(block_index, ttl, automatic)``, validated like the API.

    Top-level automatic ``cache_control`` adds one on the last cacheable block, walking back
    over ineligible ones; it takes one of the 4 slots (spec §2.1).
    """
    auto = request.auto_cache_ttl
    explicit = request.explicit_breakpoints
    blocks = request.blocks
    # The common case, checked in one pass: every marked block cacheable, at most
    # ``max_breakpoints`` of them, no 1h after a 5m, no automatic caching.
    fast: list[tuple[int, TTL, bool]] = []
    seen_5m = False
    ok = auto is None and len(explicit) <= max_breakpoints
    for i, ttl in explicit:
        if not blocks[i].cacheable:
            ok = False
            break
        if ttl == "5m":
            seen_5m = True
        elif seen_5m:
            ok = False
        fast.append((i, ttl, False))
    if ok:
        return fast
    if any(not blocks[i].cacheable for i, _ in explicit):
        # thinking and empty text blocks cannot carry cache_control (the API refuses them; the
        # validator says so in its words): in logs, such a marker caches nothing
        explicit = tuple((i, ttl) for i, ttl in explicit if blocks[i].cacheable)
    if auto is None and len(explicit) <= max_breakpoints and _ordered(explicit):
        return [(i, ttl, False) for i, ttl in explicit]
    bps: list[tuple[int, TTL, bool]] = [(i, ttl, False) for i, ttl in explicit]
    if len(bps) > max_breakpoints:
        raise CacheControlError(
            f"A maximum of {max_breakpoints} blocks with cache_control may be provided. Found {len(bps)}."
        )
    if auto is not None:
        target = next((b for b in reversed(request.blocks) if b.cacheable), None)
        if target is not None:
            if target.cache_ttl is not None:
                if target.cache_ttl != auto:
                    raise CacheControlError(
                        f"cache_control.ttl: the top-level cache_control ttl='{auto}' conflicts with "
                        f"ttl='{target.cache_ttl}' on the last block ({target.api_path}); use the same "
                        "ttl or remove one of them."
                    )
            else:
                if len(bps) >= max_breakpoints:
                    raise CacheControlError(
                        f"A maximum of {max_breakpoints} blocks with cache_control may be provided. "
                        f"Found {len(bps) + 1}."
                    )
                bps.append((target.index, auto, True))
                bps.sort()
    seen_5m = False
    for idx, ttl, automatic in bps:
        if ttl == "5m":
            seen_5m = True
        elif seen_5m:
            path = "" if automatic else request.blocks[idx].api_path
            msg = TTL_ORDER_MESSAGE.format(path=path).lstrip(".")
            raise CacheControlError(msg)
    return bps


def _ordered(bps: tuple[tuple[int, TTL], ...]) -> bool:
    """True when no 1h breakpoint follows a 5m one."""
    seen_5m = False
    for _, ttl in bps:
        if ttl == "5m":
            seen_5m = True
        elif seen_5m:
            return False
    return True
