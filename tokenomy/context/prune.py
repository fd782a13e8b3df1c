"""Shrink one tool output to a token budget, keeping what an agent needs.

A tool output is re-read on every later turn, so its size is paid again and again. Plain
head+tail truncation drops the one error line in the middle of a build log. This pruner spends
the budget by value per token instead:

1. Noise goes first: ANSI codes, carriage-return overwrites, progress bars. Runs of repeated and
   near-repeated lines collapse to their first and last line and a count.
2. Each line is searched for the pieces an agent acts on: the clause of an error or warning line
   (its first ``CLAUSE_CHARS`` characters), stack-trace frames, test-run summaries, file paths
   (with their line numbers and test ids), test names, and the first and last line. Each piece
   has a value; a piece already kept elsewhere (the same path on ten lines) is worth nothing more,
   and each further member of a family of near-identical pieces is worth less.
3. Pieces are taken by value per token, cheapest-per-value first, until the budget is spent. A
   piece is kept alone when its line does not fit: ``[…]`` marks what was cut around it.
4. Budget left over goes to whole lines: the lines pieces came from, the lines around error lines,
   then the head and the tail.

Everything it emits is text from the input, plus its own markers (``[… 312 similar lines
removed …]``, ``[… 40 lines removed …]`` or ``[… 40 …]`` under a tight budget, ``[… 9000 chars
removed …]``, ``[…]``), so a pruned output never says something the tool did not. With a budget,
the emitted text never counts more tokens than the budget.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tokenomy.tokens import DEFAULT_COUNTER, TokenCounter

__all__ = ["PruneResult", "head_tail", "prune"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Visibly a progress bar: a bar, a tqdm-style ``45%|``, a transfer rate or an ETA. A lone
# percentage is not enough ("Coverage: 85%", "100% of checks passed" are results).
_PROGRESS = re.compile(
    r"^\s*(?:\S+\s+)?(?:\[[=#>\-. ]{5,}\]|[#=█▏▎▍▌▋▊▉━─]{8,})"
    r"|(?:\d{1,3}(?:\.\d+)?%\s*\|)|\b\d+(?:\.\d+)?\s*[kMG]?i?B/s\b|\beta\s+\d"
)
_PROGRESS_HINT = re.compile(r"[%\[#=█▏▎▍▌▋▊▉━─]|B/s|eta\s")
# A severity word used as a word, not as part of code: ``check.errors`` and ``error(`` are not
# error lines, ``error: x`` and ``[warning]`` are.
_SEVERE = re.compile(
    r"(?i)(?<![.>$])\b(?:error|errors|exception|traceback|fatal|panic|panicked|failed|failure|fail|"
    r"segmentation fault|core dumped|abort(?:ed)?|denied|undefined reference|cannot|can't|unable to|"
    r"not found|no such file|assertion(?:error)?|assert\w*error|warning|warn|deprecated|E\d{3,4})\b(?![(.]\w)"
)
_TRACE = re.compile(
    r'^\s+File "[^"]+", line \d+|^\s+at [\w$.<>]+\s*\(|^\s+at .+:\d+|^\s*#\d+\s+0x[0-9a-f]+|'
    r"^\s*(?:thread '.*' panicked|goroutine \d+|Caused by:|During handling of the above)|^E {3,}\S"
)
_SUMMARY = re.compile(
    r"(?i)\b\d+\s+(?:passed|failed|errors?|skipped|warnings?|tests?|failures?)\b|exit (?:code|status)\s*\d+"
)
# Repeats are bounded so that a long line without spaces is scanned in linear time.
_PATH = re.compile(
    r"(?:[\w.~+-]{0,80}/){1,24}[\w.+-]{1,120}(?::\d{1,7}){0,2}(?:::\w{1,120}){0,4}"
    r"|[\w.+-]{1,120}\.[A-Za-z]\w{0,5}:\d{1,7}(?::\d{1,7})?"
)
_TESTISH = re.compile(r"(?<!\w)\w{0,80}[Tt]est\w{0,80}")
_COLON_NUM = re.compile(r":\d{1,7}\b")
_CHARS_MARKER = re.compile(r"\[… \d+ chars removed …\]")
_DIGITS = re.compile(r"0x[0-9a-fA-F]+|\d+")

MAX_LINE_CHARS = 8000  # longer lines are cut to their needle spans, head and tail before analysis
CLAUSE_CHARS = 240  # the part of an error line kept when the whole line does not fit
CONTEXT_LINES = 1  # lines kept around each error line when the budget allows
HEAD_SHARE = 0.2  # of the budget left after the pieces, for the head
TAIL_SHARE = 0.3  # and for the tail
# What each piece is worth (the unit is arbitrary: only value per token orders the pieces).
VALUE_ERROR = 2.0  # the clause of an error or warning line
VALUE_TRACE = 1.5  # a stack-trace frame, a test-run summary line
VALUE_PATH_LINE = 1.5  # a path with a line number, or a test id
VALUE_PATH = 1.0  # a path with a file extension
VALUE_TEST = 1.0  # a test name
VALUE_DIR = 0.4  # a path without an extension: /usr/lib, ./src/app
VALUE_SLASHED = 0.1  # a/b: sometimes a directory, often "and/or"
VALUE_EDGE = 0.5  # the first and the last line
FAMILY_DECAY = 0.7  # each further near-identical piece kept is worth this much of the one before
VALUE_FLOOR = 0.2  # pieces worth less are not kept for their own sake: context lines come first
CUT = "[…]"  # marks text cut from a line that is kept in part
GAP_COST = 5  # tokens of a "[… N lines removed …]" marker
COMPACT_GAP_COST = 4  # tokens of a "[… N …]" marker, used for gaps when the pieces overflow the budget
CUT_COST = 2  # tokens of a " […]" marker


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


# (0, line, piece index, tokens) keeps a piece; (1, line, 0, tokens) keeps a whole line
_Action = tuple[int, int, int, int]


@dataclass(slots=True)
class _Piece:
    start: int
    end: int
    value: float
    key: str  # the piece's text: the same text kept elsewhere makes it worthless
    family: str  # digits masked: near-identical pieces lose value as more of them are kept
    tokens: int = 0


@dataclass(slots=True)
class _Line:
    text: str
    weight: int  # how many input lines it stands for
    marker: bool = False  # "[… N similar lines removed …]"
    severe: bool = False
    pieces: list[_Piece] = field(default_factory=list)


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
    if n == 1 and what.endswith("lines"):
        what = what[:-1]  # "1 line removed"
    return f"[… {n} {what} removed …]"


def _is_progress(line: str) -> bool:
    """Progress-bar noise: dropped before anything else, unless it also reports a problem or a result."""
    if not _PROGRESS_HINT.search(line):  # a character every progress pattern needs: cheap to rule out
        return False
    return bool(_PROGRESS.search(line)) and not (_SEVERE.search(line) or _SUMMARY.search(line))


def _is_needle(line: str) -> bool:
    return bool(
        _SEVERE.search(line)
        or _TRACE.search(line)
        or _SUMMARY.search(line)
        or (("/" in line or ":" in line) and _PATH.search(line))  # a path needs one of them
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
    out: list[str] = []
    pos = 0
    for s, e in _merge(chosen):
        if s > pos:
            out.append(_marker(s - pos, "chars"))
        out.append(line[s:e])
        pos = e
    if pos < len(line):
        out.append(_marker(len(line) - pos, "chars"))
    return " ".join(out)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _collapse(lines: list[str]) -> list[_Line]:
    """Collapse runs of near-identical lines (digits masked) to the first, a count and the last.

    Lines naming an error, a path or a test collapse only when identical, since their numbers
    are what matters.
    """
    exact = [bool(_is_needle(ln) or _TESTISH.search(ln)) for ln in lines]
    keys = [ln if ex else _DIGITS.sub("0", ln).strip() for ln, ex in zip(lines, exact, strict=True)]
    out: list[_Line] = []
    i = 0
    n = len(lines)
    while i < n:
        j = i + 1
        while j < n and keys[j] == keys[i]:
            j += 1
        run = j - i
        if run >= 3 and keys[i]:
            out.append(_Line(lines[i], 1))
            out.append(_Line(_marker(run - 2, "similar lines"), run - 2, marker=True))
            out.append(_Line(lines[j - 1], 1))
        else:
            out += [_Line(ln, 1) for ln in lines[i:j]]
        i = j
    return out


def _is_test_name(word: str) -> bool:
    """``test_x``, ``x_test``, ``a_test_b``, ``TestX``, ``XTest``: how test runners name tests."""
    if len(word) < 5 or word.isdigit():
        return False
    if "test" in word.split("_") and word.strip("_") != "test":
        return True
    return (word.startswith("Test") and word[4:5].isupper()) or (
        word.endswith("Test") and word[-5:-4].islower() and word[:1].isupper()
    )


def _analyse(line: _Line, is_edge: bool) -> None:
    """Find the pieces of one line worth keeping, and whether it is an error line."""
    text = line.text
    if line.marker or not text.strip():
        return
    lead = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    # a piece of a cut long line starts after a "chars removed" marker and ends before the next
    cuts = [m.span() for m in _CHARS_MARKER.finditer(text)] if " chars removed …]" in text else []

    def add(start: int, stop: int, value: float) -> None:
        for cut_start, cut_end in cuts:
            if cut_start <= start < cut_end:
                start = cut_end
            elif start < cut_start < stop:
                stop = cut_start
        if start < stop:
            key = text[start:stop]
            line.pieces.append(_Piece(start, stop, value, key, _DIGITS.sub("0", key)))

    severe = _SEVERE.search(text)
    trace = bool(_TRACE.search(text) or _SUMMARY.search(text))
    line.severe = bool(severe) or trace
    if line.severe or is_edge:
        value = VALUE_ERROR if severe else VALUE_TRACE if trace else VALUE_EDGE
        start = lead
        if severe and severe.start() - lead > CLAUSE_CHARS - 80:
            # the clause starts a little before the keyword, at a word boundary
            start = severe.start() - 40
            space = text.find(" ", start, severe.start())
            start = space + 1 if space >= 0 else start
        add(start, min(end, start + CLAUSE_CHARS), value)
    for m in _PATH.finditer(text):
        s, e = m.span()
        token = m.group()
        if ":" in token:
            value = VALUE_PATH_LINE
        elif re.search(r"\.[A-Za-z]\w{0,5}$", token):
            value = VALUE_PATH
        elif token.startswith(("/", "./", "../", "~/")):
            value = VALUE_DIR
        elif re.search(r"[A-Za-z]", token):
            value = VALUE_SLASHED
        else:
            continue
        add(s, e, value)
    for m in _TESTISH.finditer(text):
        s, e = m.span()
        if (e == len(text) or not (text[e].isalnum() or text[e] == "_")) and _is_test_name(m.group()):
            if not any(p.start <= s and e <= p.end and p.value >= VALUE_PATH for p in line.pieces):
                add(s, e, VALUE_TEST)


class _Plan:
    """What is kept of each line: the whole line, or some ranges of it."""

    def __init__(self, lines: Sequence[_Line], gap_cost: int) -> None:
        self.lines = lines
        self.gap_cost = gap_cost
        self.full: set[int] = set()
        self.ranges: dict[int, list[tuple[int, int]]] = {}

    def kept(self, i: int) -> bool:
        return i in self.full or i in self.ranges

    def gap_delta(self, i: int) -> int:
        """Marker tokens added (or saved) by starting to keep line ``i``."""
        if self.kept(i):
            return 0
        before = i > 0 and self.kept(i - 1)
        after = i + 1 < len(self.lines) and self.kept(i + 1)
        if before and after:
            return -self.gap_cost
        if before or after:
            return 0
        return self.gap_cost

    def render_line(self, i: int) -> tuple[bool, str, bool]:
        """The kept text of line ``i``, and whether text was cut before and after it."""
        text = self.lines[i].text
        if i in self.full:
            return False, text, False
        return _join_ranges(text, self.ranges[i])


def _join_ranges(text: str, ranges: Sequence[tuple[int, int]]) -> tuple[bool, str, bool]:
    """The kept ranges of a line joined by ``[…]``; and whether the line was cut before the first
    and after the last (text between two ranges no longer than the marker is kept instead)."""
    lead = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    joined: list[tuple[int, int]] = []
    for s, e in _merge(ranges):
        if joined and s - joined[-1][1] <= len(CUT) + 1:
            joined[-1] = (joined[-1][0], e)
        else:
            joined.append((s, e))
    parts = [text[s:e].strip() for s, e in joined]
    body = (" " + CUT + " ").join(p for p in parts if p)
    return joined[0][0] > lead, body, joined[-1][1] < end


def _take_pieces(
    lines: Sequence[_Line],
    plan: _Plan,
    budget: int,
    used: int,
    tok: _Tok,
    actions: list[_Action],
    floor: float,
) -> tuple[int, bool]:
    """Take pieces worth at least ``floor`` by value per token until nothing more fits.

    Returns the tokens used and whether a piece was left out for want of budget. Near-identical
    pieces (a family) share one decaying worth, so each family queues its members by their own
    worth and only its best member waits in the common queue: taking one piece re-ranks one
    family, not every member of it.
    """
    families: dict[str, list[tuple[float, int, int, int]]] = {}
    covered: set[str] = set()
    taken: Counter[str] = Counter()
    seq = 0
    for i, line in enumerate(lines):
        for j, p in enumerate(line.pieces):
            p.tokens = tok(p.key)
            if i in plan.full or any(s <= p.start and p.end <= e for s, e in plan.ranges.get(i, ())):
                covered.add(p.key)  # kept by an earlier pass
                taken[p.family] += 1
                continue
            entry = (-p.value / max(p.tokens + CUT_COST + plan.gap_cost, 1), seq, i, j)
            families.setdefault(p.family, []).append(entry)
            seq += 1
    if not families:
        return used, False
    cheapest = min(lines[i].pieces[j].tokens for members in families.values() for _, _, i, j in members)
    queue: list[tuple[float, int, str]] = []
    for fam, members in families.items():
        heapq.heapify(members)
        queue.append((members[0][0], members[0][1], fam))
    heapq.heapify(queue)
    overflow = False
    while queue and budget - used >= cheapest:
        neg, _, fam = heapq.heappop(queue)
        members = families[fam]
        while members:  # drop members already kept, by their text or inside a kept range
            _, _, i, j = members[0]
            p = lines[i].pieces[j]
            if (
                p.key in covered
                or i in plan.full
                or any(s <= p.start and p.end <= e for s, e in plan.ranges.get(i, ()))
            ):
                heapq.heappop(members)
                continue
            break
        if not members:
            continue
        _, order, i, j = members[0]
        line = lines[i]
        p = line.pieces[j]
        whole = p.start <= len(line.text) - len(line.text.lstrip()) and p.end >= len(line.text.rstrip())
        gap = plan.gap_delta(i)
        # a cut next to a gap merges into the gap's marker; a second piece of a line needs its own
        cut = 0 if whole or (gap > 0 and i not in plan.ranges) else CUT_COST
        # pieces of this line already kept inside this one are paid for: they merge into it
        inside = [(s, e) for s, e in plan.ranges.get(i, ()) if p.start <= s and e <= p.end]
        paid = sum(tok(line.text[s:e]) + CUT_COST for s, e in inside)
        cost = max(p.tokens + cut + gap - paid, 1)
        value = p.value * FAMILY_DECAY ** taken[fam]
        if value < floor:  # the rest of this family is worth less than whole lines of context
            continue
        density = value / max(cost, 1)
        if density < -neg - 1e-9:  # worth less than when queued: queue it again at its new worth
            heapq.heappush(queue, (-density, order, fam))
            continue
        heapq.heappop(members)
        if used + cost > budget:
            overflow = True
        else:
            used += cost
            kept = [r for r in plan.ranges.get(i, ()) if r not in inside]
            plan.ranges[i] = [*kept, (p.start, p.end)]
            covered.add(p.key)
            taken[fam] += 1
            actions.append((0, i, j, cost))
        if members:
            heapq.heappush(queue, (members[0][0] * FAMILY_DECAY ** taken[fam], members[0][1], fam))
    if queue:
        overflow = True
    return used, overflow


def _fill(
    lines: Sequence[_Line], plan: _Plan, budget: int, used: int, tok: _Tok, actions: list[_Action]
) -> None:
    """Spend what the pieces left on whole lines (theirs, error context, the head), then on the
    pieces worth less than ``VALUE_FLOOR``, then on the tail."""
    n = len(lines)

    def take(i: int) -> bool:
        nonlocal used
        if i in plan.full:
            return True
        have = 0
        if i in plan.ranges:
            before, body, after = plan.render_line(i)
            have = tok(body) + CUT_COST * (before + after)
        extra = tok(lines[i].text) - have + plan.gap_delta(i)
        if used + extra > budget:
            return False
        used += extra
        plan.full.add(i)
        plan.ranges.pop(i, None)
        actions.append((1, i, 0, extra))
        return True

    for i in sorted(plan.ranges, key=lambda k: tok(lines[k].text)):
        take(i)
    for i in range(n):
        if lines[i].severe:
            for k in range(max(0, i - CONTEXT_LINES), min(n, i + CONTEXT_LINES + 1)):
                take(k)
    rest = budget - used
    head_budget = used + int(rest * HEAD_SHARE / (HEAD_SHARE + TAIL_SHARE)) if rest > 0 else used
    for i in range(n):
        if used > head_budget or (i not in plan.full and tok(lines[i].text) + used > head_budget):
            break
        take(i)
    used, _ = _take_pieces(lines, plan, budget, used, tok, actions, 0.0)
    for i in range(n - 1, -1, -1):
        if not take(i):
            break


class _Tok:
    """Token counts of strings, memoised per call."""

    def __init__(self, counter: TokenCounter, tokenizer: str) -> None:
        self.counter = counter
        self.tokenizer = tokenizer
        self.memo: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        n = self.memo.get(text)
        if n is None:
            n = self.memo[text] = self.counter.count_text(text, self.tokenizer)
        return n


def _render(lines: Sequence[_Line], actions: Sequence[_Action], tok: _Tok, compact: bool) -> tuple[str, int]:
    """The text of ``actions``, with a marker per gap; and how many lines it removed.

    A gap whose lines cost no more than its marker is shown instead of the marker. Markers that
    meet merge: a line cut at its end followed by a gap marker shows only the gap marker.
    ``compact`` gaps are marked ``[… N …]``: the count of lines removed, without the words.
    """
    plan = _Plan(lines, COMPACT_GAP_COST if compact else GAP_COST)
    for kind, i, j, _ in actions:
        if kind == 1:
            plan.full.add(i)
            plan.ranges.pop(i, None)
        elif i not in plan.full:
            p = lines[i].pieces[j]
            plan.ranges.setdefault(i, []).append((p.start, p.end))
    # items: (cut before, text, cut after); a marker is (True, marker, True)
    items: list[tuple[bool, str, bool]] = []
    markers: set[int] = set()
    gap: list[int] = []
    removed = 0

    def close_gap() -> None:
        nonlocal removed
        if not gap:
            return
        texts = [lines[k].text for k in gap]
        cheap = len(texts) <= plan.gap_cost and not any(lines[k].marker for k in gap)
        if cheap and sum(tok(t) for t in texts) <= plan.gap_cost:
            items.extend((False, t, False) for t in texts)
        else:
            count = sum(lines[k].weight for k in gap)
            removed += count
            markers.add(len(items))
            items.append((True, f"[… {count} …]" if compact else _marker(count), True))
        gap.clear()

    n = len(lines)
    for i in range(n):
        if not plan.kept(i):
            gap.append(i)
        elif lines[i].marker:  # a collapse marker is shown between its two lines, else joins the gap
            if gap or not (i + 1 < n and plan.kept(i + 1)):
                gap.append(i)
            else:
                markers.add(len(items))
                items.append((True, lines[i].text, True))
        else:
            close_gap()
            items.append(plan.render_line(i))
    close_gap()
    out: list[str] = []
    for k, (before, body, after) in enumerate(items):
        if k not in markers:
            if before and k - 1 not in markers:
                body = CUT + " " + body
            if after and not (k + 1 < len(items) and items[k + 1][0]):
                body = body + " " + CUT
        out.append(body)
    return "\n".join(out), removed


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
    tok = _Tok(counter, tokenizer)
    text = _decode(data)
    original_tokens = counter.count_text(text, tokenizer)
    if budget is None and ratio is not None:
        budget = max(int(original_tokens * ratio), 1)
    cleaned = [_cut_long_line(line, MAX_LINE_CHARS) for line in _clean(text)]
    kept = [ln for ln in cleaned if not _is_progress(ln)]
    progress = len(cleaned) - len(kept)
    lines = _collapse(kept)
    whole = "\n".join(ln.text for ln in lines)
    whole_tokens = original_tokens if whole == text else counter.count_text(whole, tokenizer)
    if budget is None or whole_tokens <= budget:
        removed = sum(ln.weight for ln in lines) - len(lines) + progress
        return PruneResult(whole, original_tokens, whole_tokens, removed)

    nonblank = [i for i, ln in enumerate(lines) if ln.text.strip() and not ln.marker]
    edges = {nonblank[0], nonblank[-1]} if nonblank else set()
    for i, line in enumerate(lines):
        _analyse(line, i in edges)
    compact = False
    plan = _Plan(lines, GAP_COST)
    actions: list[_Action] = []
    used, overflow = _take_pieces(lines, plan, budget, 0, tok, actions, VALUE_FLOOR)
    if overflow:  # the pieces do not all fit: spend no tokens on counting what was removed
        compact = True
        plan = _Plan(lines, COMPACT_GAP_COST)
        actions = []
        used, _ = _take_pieces(lines, plan, budget, 0, tok, actions, VALUE_FLOOR)
    _fill(lines, plan, budget, used, tok, actions)
    res = _fit(lines, actions, budget, original_tokens, tok, compact)
    return PruneResult(res.text, res.original_tokens, res.tokens, res.removed_lines + progress)


def _fit(
    lines: Sequence[_Line],
    actions: Sequence[_Action],
    budget: int,
    original_tokens: int,
    tok: _Tok,
    compact: bool,
) -> PruneResult:
    """Render ``actions`` (in order of worth); while that exceeds ``budget``, drop the last ones."""
    total = sum(ln.weight for ln in lines)

    def attempt(k: int) -> tuple[str, int, int]:
        out, removed = _render(lines, actions[:k], tok, compact) if k else ("", total)
        return out, removed, tok(out) if out else 0

    k = len(actions)
    best = attempt(k)
    while best[2] > budget and k:  # the estimate was short: drop the least worth until it fits
        over = best[2] - budget
        while k and over > 0:
            k -= 1
            over -= max(actions[k][3], 1)
        best = attempt(k)
    for more in range(k + 1, min(k + 4, len(actions))):  # the estimate of what to drop may be generous
        cand = attempt(more)
        if cand[2] > budget:
            break
        best = cand
    out, removed, tokens = best
    if not out:  # nothing fits: say so if even that fits
        for note in (_marker(total), CUT):
            if tok(note) <= budget:
                return PruneResult(note, original_tokens, tok(note), total)
        return PruneResult("", original_tokens, 0, total)
    return PruneResult(out, original_tokens, tokens, removed)


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
