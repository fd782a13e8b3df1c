"""The one-line fix the doctor prints for each cause: concrete enough to act on without the docs."""

from __future__ import annotations

from collections.abc import Sequence

from tokenomy.cache import min_cacheable_tokens

_PREFIX_FIXES = {
    "timestamp": "move the timestamp out of {place} into the latest user message",
    "uuid_or_random_id": "keep the id in {place} the same on every request, or move it into the latest user message",
    "counter": "move the changing number out of {place} into the latest user message",
    "tools_reordered": "sort tools by name (build the tool list once) so their order never changes",
    "json_key_order": "serialize {what} with sorted keys (json.dumps(..., sort_keys=True)) so the bytes never change",
    "whitespace": "normalize whitespace in {place} (strip trailing spaces and newlines) before sending",
    "content_edit": "append to the history instead of editing {place}; if you must prune, prune rarely and in large chunks",
}


def _place(location: str) -> str:
    return location.split(" at character", 1)[0]


def fix_for(
    cause: str,
    *,
    kind: str | None,
    location: str,
    model: str,
    gaps: Sequence[float],
    evidence: str,
) -> str:
    """The fix for one miss."""
    place = _place(location)
    if cause == "prefix_changed":
        template = _PREFIX_FIXES.get(kind or "content_edit", _PREFIX_FIXES["content_edit"])
        what = "tool schemas" if place.startswith("tools") else "tool inputs"
        return template.format(place=place, what=what)
    if cause == "model_changed":
        return (
            "stay on one model for the whole run (route whole runs, not single turns): "
            "every switch re-writes the full context into the other model's cache"
        )
    if cause == "params_changed":
        return f"keep {place} the same on every request of a run; changing it re-writes the cached messages"
    if cause == "ttl_expired":
        return ttl_fix(gaps, model=model)
    if cause == "below_minimum":
        return (
            f"{model} caches nothing shorter than {min_cacheable_tokens(model):,} tokens: put the breakpoint "
            "on a later block so the cached prefix is long enough, or drop it for prompts this short"
        )
    if cause == "lookback_exceeded":
        return (
            "add a breakpoint within 20 blocks of the end (e.g. also mark the last block of the previous turn), "
            "so each request can reach the previous one's entry"
        )
    if cause == "no_breakpoint":
        return 'add cache_control: top-level {"type": "ephemeral"} caches up to the last block automatically'
    if cause == "concurrent":
        return (
            "wait for the first response to start streaming before sending requests that share its prefix "
            "(or pre-warm the prefix once with max_tokens: 0)"
        )
    if cause == "compaction":
        return (
            "each compaction re-writes the context once: compact rarely, and only when the context is large "
            "enough that the tokens saved repay one re-write"
        )
    if evidence == "usage_only":
        return (
            "log full requests (tokenomy serve) to see which bytes changed; the transcript holds only usage"
        )
    return "check for cache evictions or requests sent to another workspace; re-run with the full request log"


def ttl_fix(gaps: Sequence[float], *, model: str) -> str:
    """The TTL fix, sized to the run's observed long gaps (over 5 minutes)."""
    long = sorted(g for g in gaps if g > 300)
    if not long:
        return (
            'use the 1h TTL ({"type": "ephemeral", "ttl": "1h"}) when requests are more than 5 minutes apart'
        )
    lo, hi = long[0] / 60, long[-1] / 60
    span = f"{lo:.0f}–{hi:.0f} minutes" if round(lo) != round(hi) else f"about {hi:.0f} minutes"
    if hi <= 60:
        return f"use the 1h TTL: requests in this run are {span} apart"
    if lo <= 60:
        return (
            f"use the 1h TTL for the gaps under an hour (this run has gaps of {span}); "
            "longer pauses re-write the cache whatever the TTL"
        )
    return f"the pauses in this run ({span}) outlast even the 1h TTL: expect one re-write per pause, or end the run"
