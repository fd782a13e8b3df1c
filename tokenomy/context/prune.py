"""Shrink one tool output to a token budget, keeping what an agent needs.

A tool output is re-read on every later turn, so its size is paid again and again. Plain
head+tail truncation drops the one error line in the middle of a build log; this pruner ranks
lines instead: error and warning lines with their context, stack traces, failing test names,
``path:line`` references first; then the head and the tail; then the rest. Repeated and
near-repeated lines collapse to one with a count. ANSI codes and progress-bar noise go first.

Everything it emits is text from the input, plus its own markers (``[… 312 similar lines
removed …]``), so a pruned output never says something the tool did not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tokenomy.tokens import DEFAULT_COUNTER, TokenCounter

__all__ = ["PruneResult", "head_tail", "prune"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PROGRESS = re.compile(
    r"^\s*(?:\S+\s+)?(?:\d{1,3}(?:\.\d+)?%|\[[=#>\-. ]{5,}\]|[#=█▏▎▍▌▋▊▉━─]{8,})"
    r"|(?:\d{1,3}(?:\.\d+)?%\s*\|)|\b\d+(?:\.\d+)?\s*[kMG]?i?B/s\b|\beta\s+\d"
)
_SEVERE = re.compile(
    r"(?i)\b(?:error|errors|exception|traceback|fatal|panic|panicked|failed|failure|fail|"
    r"segmentation fault|core dumped|abort(?:ed)?|denied|undefined reference|cannot|can't|unable to|"
    r"not found|no such file|assert(?:ion)?(?:error)?|warning|warn|deprecated|E\d{3,4})\b"
)
_TRACE = re.compile(
    r'^\s+File "[^"]+", line \d+|^\s+at [\w$.<>]+\s*\(|^\s+at .+:\d+|^\s*#\d+\s+0x[0-9a-f]+|'
    r"^\s*(?:thread '.*' panicked|goroutine \d+|Caused by:|During handling of the above)"
)
# Repeats are bounded so a 10 MB line without spaces is scanned in linear time.
_PATH_LINE = re.compile(r"(?:[\w.~-]{0,80}/){0,24}[\w.-]{1,120}\.[A-Za-z]\w{0,5}:\d{1,7}")
_PATH = re.compile(r"(?:[\w.~-]{1,80}/){1,24}[\w.-]{1,120}")
_TEST = re.compile(
    r"(?i)(?:::test\w{0,80}|\btest_\w{1,80}|\bTest\w{1,80}|\b\w{1,80}Test\b|\b(?:PASS|FAIL|FAILED|ERROR|XFAIL)\b)"
)
_SUMMARY = re.compile(
    r"(?i)\b\d+\s+(?:passed|failed|errors?|skipped|warnings?|tests?)\b|exit (?:code|status)\s*\d+"
)
_COLON_NUM = re.compile(r":\d{1,7}\b")
_DIGITS = re.compile(r"0x[0-9a-fA-F]+|\d+")

MAX_LINE_CHARS = 2000  # longer lines are cut to their head, tail and needle spans
TIGHT_LINE_CHARS = 240  # when needles alone overflow the budget
CONTEXT_LINES = 1  # lines kept around each error line
HEAD_SHARE = 0.2  # of the budget left after needles, for the head
TAIL_SHARE = 0.3  # and for the tail


@dataclass(frozen=True, slots=True)
class PruneResult:
    """The pruned text and what it cost and saved."""

    text: str
    original_tokens: int
    tokens: int
    removed_lines: int

    @property
    def saved_tokens(self) -> int:
        return max(self.original_tokens - self.tokens, 0)


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def _clean(text: str) -> list[str]:
    """Strip ANSI codes, resolve carriage-return overwrites, drop control characters."""
    text = _ANSI.sub("", text)
    lines: list[str] = []
    for raw in text.split("\n"):
        if "\r" in raw:
            parts = [p for p in raw.split("\r") if p.strip()]
            raw = parts[-1] if parts else ""
        lines.append(_CONTROL.sub("", raw))
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _marker(n: int, what: str = "lines") -> str:
    return f"[… {n} {what} removed …]"


def _is_needle(line: str) -> bool:
    return bool(
        _SEVERE.search(line) or _TRACE.search(line) or _PATH_LINE.search(line) or _SUMMARY.search(line)
    )


def _cut_long_line(line: str, limit: int) -> str:
    """Keep a long line's needle spans, then its head and tail, within ``limit`` chars.

    Only linear-time scans run over the whole line (keywords, ``:digits``), so a 10 MB line
    without a space costs a few hundred milliseconds, not minutes.
    """
    if len(line) <= limit:
        return line
    spans: list[tuple[int, int]] = []
    for m in _SEVERE.finditer(line):
        spans.append((max(m.start() - 40, 0), min(m.end() + 160, len(line))))
        if len(spans) >= 16:
            break
    for m in _COLON_NUM.finditer(line):
        spans.append((max(m.start() - 120, 0), min(m.end() + 40, len(line))))
        if len(spans) >= 32:
            break
    quarter = limit // 4
    spans += [(0, quarter), (len(line) - quarter, len(line))]
    chosen: list[tuple[int, int]] = []
    budget = limit
    for s, e in spans:
        if e - s <= budget:
            chosen.append((s, e))
            budget -= e - s
    chosen.sort()
    merged: list[list[int]] = []
    for s, e in chosen:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out: list[str] = []
    pos = 0
    for s, e in merged:
        if s > pos:
            out.append(_marker(s - pos, "chars"))
        out.append(line[s:e])
        pos = e
    if pos < len(line):
        out.append(_marker(len(line) - pos, "chars"))
    return " ".join(out)


def _head_of(line: str, limit: int) -> str:
    if len(line) <= limit:
        return line
    return line[:limit] + " " + _marker(len(line) - limit, "chars")


def _collapse(
    lines: list[str], needle: list[bool], exact_only: list[bool]
) -> tuple[list[str], list[bool], list[int]]:
    """Collapse runs of near-identical lines (digits masked); lines naming an error, a path or a
    test collapse only when identical, since their numbers are what matters.

    Returns the new lines, their needle flags, and how many lines each output line stands for.
    """
    out: list[str] = []
    flags: list[bool] = []
    weight: list[int] = []
    i = 0
    n = len(lines)
    while i < n:
        key = lines[i] if exact_only[i] else _DIGITS.sub("0", lines[i]).strip()
        j = i + 1
        while j < n and (lines[j] if exact_only[j] else _DIGITS.sub("0", lines[j]).strip()) == key:
            j += 1
        run = j - i
        if run >= 3 and key:
            out += [lines[i], _marker(run - 2, "similar lines"), lines[j - 1]]
            flags += [needle[i], False, needle[i]]
            weight += [1, run - 2, 1]
        else:
            out += lines[i:j]
            flags += needle[i:j]
            weight += [1] * run
        i = j
    return out, flags, weight


def prune(
    data: str | bytes,
    *,
    budget: int | None = None,
    ratio: float | None = None,
    counter: TokenCounter | None = None,
    tokenizer: str = "legacy",
) -> PruneResult:
    """Prune ``data`` to at most ``budget`` tokens (or ``ratio`` of its own tokens).

    With neither, only noise is removed (ANSI codes, progress bars, repeated lines).
    """
    counter = counter or DEFAULT_COUNTER
    text = _decode(data)
    original_tokens = counter.count_text(text, tokenizer)
    if budget is None and ratio is not None:
        budget = max(int(original_tokens * ratio), 1)
    lines = [_cut_long_line(line, MAX_LINE_CHARS) for line in _clean(text)]
    lines = [ln for ln in lines if not (_PROGRESS.search(ln) and not _SEVERE.search(ln))]
    needle = [_is_needle(ln) for ln in lines]
    exact_only = [
        f or bool(_TEST.search(ln) or _PATH.search(ln)) for ln, f in zip(lines, needle, strict=True)
    ]
    lines, needle, weight = _collapse(lines, needle, exact_only)
    cost = [counter.count_text(ln, tokenizer) + 1 for ln in lines]

    if budget is None or sum(cost) <= budget:
        out = "\n".join(lines)
        return PruneResult(out, original_tokens, counter.count_text(out, tokenizer), sum(weight) - len(lines))

    if sum(c for c, f in zip(cost, needle, strict=True) if f) > budget:
        # needles alone overflow: keep each long line's head only, where the message is
        lines = [
            _cut_long_line(ln, TIGHT_LINE_CHARS) if f else _head_of(ln, TIGHT_LINE_CHARS)
            for ln, f in zip(lines, needle, strict=True)
        ]
        cost = [counter.count_text(ln, tokenizer) + 1 for ln in lines]
    keep = _select(lines, needle, cost, budget)
    return _render(lines, weight, keep, original_tokens, counter, tokenizer, budget)


def _priority(lines: Sequence[str], needle: Sequence[bool]) -> list[int]:
    """0 = severe needles and traces, 1 = their context, tests and paths, 3 = everything else."""
    n = len(lines)
    prio = [3] * n
    for i, line in enumerate(lines):
        if needle[i]:
            prio[i] = 0
            for k in range(max(0, i - CONTEXT_LINES), min(n, i + CONTEXT_LINES + 1)):
                prio[k] = min(prio[k], 1)
        elif _TEST.search(line) or _PATH.search(line):
            prio[i] = min(prio[i], 2)
    return prio


def _select(lines: Sequence[str], needle: Sequence[bool], cost: Sequence[int], budget: int) -> set[int]:
    n = len(lines)
    prio = _priority(lines, needle)
    keep: set[int] = set()
    used = 0
    marker_cost = 8  # a gap marker costs about this many tokens; paid only where a gap opens

    def take(idx: int) -> bool:
        nonlocal used
        joins = (idx - 1 in keep) or (idx + 1 in keep)
        extra = cost[idx] + (0 if joins else marker_cost)
        if used + extra > budget:
            return False
        keep.add(idx)
        used += extra
        return True

    # needles first, the cheapest (most needles per token) first, each once
    for level in (0, 1):
        for i in sorted((i for i in range(n) if prio[i] == level), key=lambda i: cost[i]):
            take(i)
    rest = budget - used
    head_budget = int(rest * HEAD_SHARE / (HEAD_SHARE + TAIL_SHARE)) if rest > 0 else 0
    spent = 0
    for i in range(n):  # head
        if i in keep:
            continue
        if spent + cost[i] > head_budget or not take(i):
            break
        spent += cost[i]
    for i in range(n - 1, -1, -1):  # tail
        if i in keep:
            continue
        if not take(i):
            break
    for i in sorted((i for i in range(n) if prio[i] == 2 and i not in keep), key=lambda i: cost[i]):
        take(i)  # tests and paths that still fit
    return keep


def _render(
    lines: Sequence[str],
    weight: Sequence[int],
    keep: set[int],
    original_tokens: int,
    counter: TokenCounter,
    tokenizer: str,
    budget: int,
) -> PruneResult:
    out: list[str] = []
    gap = 0
    removed = 0
    for i, line in enumerate(lines):
        if i in keep:
            if gap:
                out.append(_marker(gap))
                gap = 0
            out.append(line)
        else:
            gap += weight[i]
            removed += weight[i]
    if gap:
        out.append(_marker(gap))
    text = "\n".join(out)
    return PruneResult(text, original_tokens, counter.count_text(text, tokenizer), removed)


def head_tail(data: str | bytes, *, budget: int, counter: TokenCounter | None = None) -> str:
    """Plain head+tail truncation at the same budget: the baseline the pruner is measured against."""
    counter = counter or DEFAULT_COUNTER
    lines = _decode(data).split("\n")
    cost = [counter.count_text(ln) + 1 for ln in lines]
    if sum(cost) <= budget:
        return "\n".join(lines)
    half = budget // 2
    head: list[str] = []
    used = 0
    for ln, c in zip(lines, cost, strict=True):
        if used + c > half:
            break
        head.append(ln)
        used += c
    tail: list[str] = []
    used_t = 0
    for ln, c in zip(reversed(lines[len(head) :]), reversed(cost[len(head) :]), strict=True):
        if used + used_t + c > budget - 8:
            break
        tail.append(ln)
        used_t += c
    removed = len(lines) - len(head) - len(tail)
    return "\n".join([*head, _marker(removed), *reversed(tail)])
