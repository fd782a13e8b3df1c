"""Where two requests' prompts first differ, and what kind of change it was.

The doctor asks this module only after the prefix hashes say *that* the prompt changed before
the previous request's breakpoint; this module says *where* (``tools[3].input_schema``,
``system[0] at character 1532``, ``messages[4].content[0]``) and *what*: a timestamp, a random
id, a counter, re-ordered tools, JSON key order, whitespace, or a real content edit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tokenomy.model import Block, Request, format_path

ChangeKind = Literal[
    "timestamp",
    "uuid_or_random_id",
    "counter",
    "tools_reordered",
    "json_key_order",
    "whitespace",
    "content_edit",
]

EXCERPT_CONTEXT = 28
_MISSING = object()

# A changed region is widened to the surrounding "word" so "01"→"08" reads as "14:12:01"→"14:13:08".
_TOKEN_CHARS = re.compile(r"[\w:.+\-/]")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}"  # ISO date
    r"|\d{1,2}:\d{2}(?::\d{2})?"  # clock time
    r"|\d{1,2}/\d{1,2}/\d{2,4}"  # US date
    r"|^1\d{9}(?:\.\d+)?$|^1\d{12}$"  # epoch seconds / milliseconds
    r"|^(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*$"
    r"|^(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*$",
    re.IGNORECASE,
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_HEX = re.compile(r"(?:^|[_\-])[0-9a-f]{12,}$", re.IGNORECASE)
_RANDOMISH = re.compile(r"[A-Za-z0-9_\-]{12,}")
_INTEGER = re.compile(r"[#]?\d{1,9}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One change in the prompt: the place, its kind, and a short before/after excerpt."""

    kind: ChangeKind
    location: str
    block_index: int
    before: str = ""
    after: str = ""
    summary: str = ""


def first_divergence(prev: Request, cur: Request) -> int:
    """Index of the first block whose prefix differs; ``len(prev.blocks)`` when ``cur`` extends ``prev``."""
    n = min(len(prev.blocks), len(cur.blocks))
    for i in range(n):
        if prev.blocks[i].prefix_hash != cur.blocks[i].prefix_hash:
            return i
    return n


def describe_change(prev: Request, cur: Request, d: int) -> Change:
    """Explain the change at block ``d`` (the first divergence) between ``prev`` and ``cur``."""
    pb = prev.blocks[d] if d < len(prev.blocks) else None
    cb = cur.blocks[d] if d < len(cur.blocks) else None
    if (pb is not None and pb.section == "tools") or (cb is not None and cb.section == "tools"):
        reordered = _tools_reordered(prev, cur)
        if reordered is not None:
            return reordered
    if pb is None or cb is None:
        gone = pb or cb
        assert gone is not None
        verb = "was removed" if cb is None else "was added"
        return Change(
            kind="content_edit",
            location=gone.doc_path,
            block_index=d,
            summary=f"{gone.doc_path} ({gone.kind}) {verb}",
        )
    moved = _removed_or_inserted(prev, cur, d)
    if moved is not None:
        return moved
    if pb.kind != cb.kind or pb.section != cb.section:
        return Change(
            kind="content_edit",
            location=cb.doc_path,
            block_index=d,
            summary=f"{cb.doc_path} was a {pb.kind} block, now a {cb.kind} block",
        )
    return _compare_block(pb, cb, d)


def _tool_names(req: Request) -> list[str]:
    out: list[str] = []
    for b in req.blocks:
        if b.section != "tools":
            break
        try:
            tool = json.loads(b.data)
        except ValueError:
            tool = {}
        out.append(str(tool.get("name", "")) if isinstance(tool, Mapping) else "")
    return out


def _tools_reordered(prev: Request, cur: Request) -> Change | None:
    a, b = _tool_names(prev), _tool_names(cur)
    if a == b or sorted(a) != sorted(b):
        return None
    prev_by_name = {n: blk.data for n, blk in zip(a, prev.blocks, strict=False)}
    cur_by_name = {n: blk.data for n, blk in zip(b, cur.blocks, strict=False)}
    if any(prev_by_name.get(n) != cur_by_name.get(n) for n in a):
        return None  # re-ordered and edited: report the edit instead
    i = next(k for k, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    return Change(
        kind="tools_reordered",
        location=format_path(("tools", i)),
        block_index=i,
        before=_names(a),
        after=_names(b),
        summary=f"the same {len(a)} tools were sent in a different order (tools[{i}] was {a[i]!r}, now {b[i]!r})",
    )


def _names(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}{', …' if len(names) > limit else ''}]"


def _removed_or_inserted(prev: Request, cur: Request, d: int) -> Change | None:
    """A block dropped from (or slipped into) the middle: the rest lines up shifted by one."""
    pb, cb = prev.blocks, cur.blocks
    if d + 1 < len(pb) and pb[d + 1].data == cb[d].data and pb[d].data != cb[d].data:
        return Change(
            kind="content_edit",
            location=pb[d].doc_path,
            block_index=d,
            before=_excerpt_of(pb[d]),
            summary=f"{pb[d].doc_path} ({pb[d].kind}) was removed from the history",
        )
    if d + 1 < len(cb) and cb[d + 1].data == pb[d].data and pb[d].data != cb[d].data:
        return Change(
            kind="content_edit",
            location=cb[d].doc_path,
            block_index=d,
            after=_excerpt_of(cb[d]),
            summary=f"a new block was inserted at {cb[d].doc_path}, before content already cached",
        )
    return None


def _excerpt_of(block: Block) -> str:
    text = block.data.decode("utf-8", "replace")
    return _clip(text, 0, min(len(text), 2 * EXCERPT_CONTEXT))


def _compare_block(pb: Block, cb: Block, d: int) -> Change:
    try:
        va: Any = json.loads(pb.data)
        vb: Any = json.loads(cb.data)
    except ValueError:
        return _text_change(
            pb.data.decode("utf-8", "replace"), cb.data.decode("utf-8", "replace"), cb.path, d
        )
    if va == vb:  # equal as values: only the key order differs (JSON whitespace is not in the bytes)
        sub = _key_order_path(va, vb, ())
        where = format_path(cb.path + sub)
        return Change(
            kind="json_key_order",
            location=where,
            block_index=d,
            before=_keys(_at(va, sub)),
            after=_keys(_at(vb, sub)),
            summary=f"the same JSON was serialized with its keys in a different order at {where}",
        )
    sub, la, lb = _first_leaf_difference(va, vb, ())
    if pb.kind == "text" and sub == ("text",):
        sub = ()
    if isinstance(la, str) and isinstance(lb, str):
        return _text_change(la, lb, cb.path + sub, d)
    where = format_path(cb.path + sub)
    return Change(
        kind="content_edit",
        location=where,
        block_index=d,
        before=_short(la),
        after=_short(lb),
        summary=f"{where} changed",
    )


def _key_order_path(a: Any, b: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return path
        for k in a:
            if _dumps(a[k]) != _dumps(b[k]):
                return _key_order_path(a[k], b[k], (*path, k))
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if _dumps(x) != _dumps(y):
                return _key_order_path(x, y, (*path, i))
    return path


def _first_leaf_difference(
    a: Any, b: Any, path: tuple[str | int, ...]
) -> tuple[tuple[str | int, ...], Any, Any]:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            x, y = a.get(k, _MISSING), b.get(k, _MISSING)
            if x is _MISSING or y is _MISSING or x != y:
                if x is _MISSING or y is _MISSING:
                    return (*path, k), None if x is _MISSING else x, None if y is _MISSING else y
                return _first_leaf_difference(x, y, (*path, k))
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else None
            y = b[i] if i < len(b) else None
            if x != y:
                if x is None or y is None:
                    return (*path, i), x, y
                return _first_leaf_difference(x, y, (*path, i))
    return path, a, b


def _text_change(a: str, b: str, path: tuple[str | int, ...], d: int) -> Change:
    p = 0
    n = min(len(a), len(b))
    while p < n and a[p] == b[p]:
        p += 1
    s = 0
    while s < n - p and a[len(a) - 1 - s] == b[len(b) - 1 - s]:
        s += 1
    where = f"{format_path(path)} at character {p}"
    lo = p
    while lo > 0 and _TOKEN_CHARS.match(a[lo - 1]):
        lo -= 1
    hi_a, hi_b = len(a) - s, len(b) - s
    while hi_a < len(a) and _TOKEN_CHARS.match(a[hi_a]):
        hi_a += 1
    while hi_b < len(b) and _TOKEN_CHARS.match(b[hi_b]):
        hi_b += 1
    tok_a, tok_b = a[lo:hi_a], b[lo:hi_b]
    kind = classify_text_change(a, b, tok_a, tok_b)
    what = {
        "whitespace": "whitespace changed",
        "timestamp": "a timestamp changed",
        "uuid_or_random_id": "an id changed",
        "counter": "a number changed",
        "content_edit": "the text was edited",
    }[kind]
    return Change(
        kind=kind,
        location=where,
        block_index=d,
        before=_clip(a, lo, hi_a),
        after=_clip(b, lo, hi_b),
        summary=f"{what} in {where}",
    )


def classify_text_change(a: str, b: str, tok_a: str, tok_b: str) -> ChangeKind:
    """The kind of an edit from ``a`` to ``b``, judged on the changed words ``tok_a`` → ``tok_b``."""
    if re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b):
        return "whitespace"
    ta, tb = tok_a.strip(), tok_b.strip()
    if ta and tb:
        if _TIMESTAMP.search(ta) and _TIMESTAMP.search(tb):
            return "timestamp"
        if _is_id(ta) and _is_id(tb):
            return "uuid_or_random_id"
        if _INTEGER.fullmatch(ta) and _INTEGER.fullmatch(tb):
            return "counter"
    return "content_edit"


def _is_id(tok: str) -> bool:
    if _UUID.search(tok) or _HEX.search(tok):
        return True
    if not _RANDOMISH.fullmatch(tok):
        return False
    digits = sum(c.isdigit() for c in tok)
    letters = sum(c.isalpha() for c in tok)
    upper = sum(c.isupper() for c in tok)
    return digits >= 2 and letters >= 4 and (upper >= 2 or digits >= 4)


def _clip(text: str, lo: int, hi: int) -> str:
    start = max(0, lo - EXCERPT_CONTEXT)
    end = min(len(text), hi + EXCERPT_CONTEXT)
    body = text[start:end].replace("\n", "\\n")
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")


def _short(value: Any, limit: int = 2 * EXCERPT_CONTEXT) -> str:
    text = "(absent)" if value is None else value if isinstance(value, str) else _dumps(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _at(value: Any, path: tuple[str | int, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


def _keys(value: Any) -> str:
    return _names(list(value)) if isinstance(value, dict) else _short(value)
