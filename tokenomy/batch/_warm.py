"""``--warm``: find a long prefix many requests share, write it to the cache once, mark it everywhere.

Spec §2.12's recipe for caching inside batches: send one live request carrying the shared prefix
with a 1-hour breakpoint, wait for it, then submit the batch with the same breakpoint in every
request. Which prefix counts as shared comes from the block parser's running prefix hash
(``Block.prefix_hash``), per model (caches are per model); whether a request may carry the mark
comes from the cache engine's own breakpoint validation. DESIGN warns that batch requests were
not reliably seen reading a live-written cache, so the reads a batch achieved are measured from
its results rather than promised.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokenomy.blocks import parse_request
from tokenomy.cache import effective_breakpoints, min_cacheable_tokens
from tokenomy.errors import CacheControlError

__all__ = ["SharedPrefix", "WARM_CC", "find_shared_prefixes", "mark_prefix", "warm_body"]

WARM_CC: dict[str, str] = {"type": "ephemeral", "ttl": "1h"}
_PLACEHOLDER = {"role": "user", "content": "."}
# Parameters that only key the messages level of the cache (spec §2.7) and that max_tokens 0
# refuses (spec §2.9): dropped from a warm-up whose prefix ends before the messages.
_MESSAGES_LEVEL = ("tool_choice", "thinking", "output_config", "output_format", "context_management")


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedPrefix:
    """A prefix shared by ``members`` (item indices) of one model, ending at block ``path``."""

    model: str
    path: tuple[str | int, ...]
    block_index: int
    tokens: int
    prefix_hash: str
    members: tuple[int, ...]
    source: int  # the item whose body the warm-up request is cut from

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "path": list(self.path),
            "block_index": self.block_index,
            "tokens": self.tokens,
            "prefix_hash": self.prefix_hash,
            "members": len(self.members),
            "source": self.source,
        }


def find_shared_prefixes(
    items: Sequence[tuple[int, Mapping[str, Any]]], *, min_members: int = 2
) -> list[SharedPrefix]:
    """Per model, the cacheable prefix that saves the most: (sharers - 1) x its tokens.

    Only prefixes at least the model's minimum cacheable length count (spec §2.5).
    """
    by_model: dict[str, dict[bytes, list[Any]]] = {}
    for idx, params in items:
        req = parse_request(params, keep_body=False)
        stats = by_model.setdefault(req.model, {})
        cum = req.cumulative_tokens()
        for blk in req.blocks:
            if not blk.cacheable:
                continue
            entry = stats.get(blk.prefix_hash)
            if entry is None:
                stats[blk.prefix_hash] = [1, cum[blk.index], blk.index, blk.path, idx, [idx]]
            else:
                entry[0] += 1
                entry[5].append(idx)
    out: list[SharedPrefix] = []
    for model, stats in by_model.items():
        minimum = min_cacheable_tokens(model)
        best: tuple[int, bytes, list[Any]] | None = None
        for h, entry in stats.items():
            count, tokens = entry[0], entry[1]
            if count < min_members or tokens < minimum:
                continue
            score = (count - 1) * tokens
            if best is None or score > best[0]:
                best = (score, h, entry)
        if best is not None:
            _, h, (count, tokens, bidx, path, source, members) = best
            out.append(
                SharedPrefix(
                    model=model,
                    path=tuple(path),
                    block_index=bidx,
                    tokens=tokens,
                    prefix_hash=h.hex(),
                    members=tuple(members),
                    source=source,
                )
            )
    return out


def _set_cc(params: dict[str, Any], path: tuple[str | int, ...], cc: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``params`` with ``cache_control`` set on the block at ``path``, copying only what
    lies on the path; a string ``system``/``content`` becomes one text block (the same prompt)."""
    out = dict(params)
    section = path[0]
    if section == "tools":
        tools = list(out["tools"])
        tools[int(path[1])] = {**tools[int(path[1])], "cache_control": dict(cc)}
        out["tools"] = tools
    elif section == "system":
        system = out["system"]
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
        blocks[int(path[1])] = {**blocks[int(path[1])], "cache_control": dict(cc)}
        out["system"] = blocks
    else:
        mi, ci = int(path[1]), int(path[3])
        messages = list(out["messages"])
        msg = dict(messages[mi])
        content = msg["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        blocks[ci] = {**blocks[ci], "cache_control": dict(cc)}
        msg["content"] = blocks
        messages[mi] = msg
        out["messages"] = messages
    return out


def mark_prefix(params: dict[str, Any], prefix: SharedPrefix) -> dict[str, Any] | None:
    """``params`` with the shared prefix marked 1h, or ``None`` when the API would refuse the mark
    (a fifth breakpoint, a 1h breakpoint after a 5m one)."""
    marked = _set_cc(params, prefix.path, WARM_CC)
    try:
        effective_breakpoints(parse_request(marked, keep_body=False))
    except CacheControlError:
        return None
    return marked


def _strip_cc(body: dict[str, Any]) -> dict[str, Any]:
    """The body without any breakpoint: top level, tools, system blocks and message blocks."""

    def bare(block: Any) -> Any:
        return {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block

    out: dict[str, Any] = bare(body)
    if isinstance(out.get("tools"), list):
        out["tools"] = [bare(t) for t in out["tools"]]
    if isinstance(out.get("system"), list):
        out["system"] = [bare(b) for b in out["system"]]
    if isinstance(out.get("messages"), list):
        msgs = []
        for m in out["messages"]:
            if isinstance(m, dict) and isinstance(m.get("content"), list):
                m = {**m, "content": [bare(b) for b in m["content"]]}
            msgs.append(m)
        out["messages"] = msgs
    return out


def warm_body(params: Mapping[str, Any], prefix: SharedPrefix) -> dict[str, Any] | None:
    """The live warm-up request: the shared prefix alone, its last block marked 1h, ``max_tokens 0``
    (spec §2.9). ``None`` when ``max_tokens 0`` cannot carry the prefix's parameters (thinking, a
    forced tool or an output format on a prefix that reaches into the messages)."""
    body = _strip_cc(copy.deepcopy(dict(params)))
    for key in ("stream", "speed", "metadata", "stop_sequences"):
        body.pop(key, None)
    section = prefix.path[0]
    if section in ("tools", "system"):
        for key in _MESSAGES_LEVEL:
            body.pop(key, None)
        if section == "tools":
            body["tools"] = body["tools"][: int(prefix.path[1]) + 1]
            body.pop("system", None)
        else:
            system = body["system"]
            blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
            body["system"] = blocks[: int(prefix.path[1]) + 1]
        body["messages"] = [dict(_PLACEHOLDER)]
    else:
        thinking = body.get("thinking")
        tc = body.get("tool_choice")
        oc = body.get("output_config")
        if (
            (isinstance(thinking, Mapping) and thinking.get("type") == "enabled")
            or (isinstance(tc, Mapping) and tc.get("type") in ("any", "tool"))
            or (isinstance(oc, Mapping) and oc.get("format") is not None)
            or body.get("output_format") is not None
        ):
            return None
        mi, ci = int(prefix.path[1]), int(prefix.path[3])
        messages = body["messages"][: mi + 1]
        last = dict(messages[mi])
        content = last["content"]
        last["content"] = (
            [{"type": "text", "text": content}] if isinstance(content, str) else content[: ci + 1]
        )
        messages[mi] = last
        if last.get("role") == "assistant":
            messages.append(dict(_PLACEHOLDER))
        body["messages"] = messages
    body["max_tokens"] = 0
    return _set_cc(body, prefix.path, WARM_CC)
