"""Tool-output pruning on the real tool outputs of the workloads, against head+tail truncation
and against the best any pruner could do.

    .venv/bin/python bench/bench_prune.py [--min-tokens 400]

For each budget (a share of each output's own tokens) it reports the tokens removed and the share
of labelled needles (bench/label_needles.py) kept by the pruner and by plain head+tail truncation
at the same budget. Outputs shorter than --min-tokens are left out: nobody prunes a short output.

The upper bound is an oracle that knows the labeller's needles and emits nothing but the bare
needle strings, cheapest first, until the next one would pass the budget: no markers, no line
breaks, no context. No pruner that keeps whole needles can keep more. It is computed here from
the labeller's needles, never by the pruner; "share of bound" is the pruner's needles kept over
the oracle's.

The run fails (exit 1) if the pruner emits more tokens than the budget on any output.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_needles import needles, tool_outputs

from tokenomy.context.prune import head_tail, prune
from tokenomy.tokens import DEFAULT_COUNTER

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = (0.05, 0.10, 0.20, 0.35, 0.50)


@dataclass(frozen=True, slots=True)
class Row:
    budget: float
    outputs: int
    needles: int
    tokens_removed: float
    pruner_kept: float
    head_tail_kept: float
    bound_kept: float
    over_budget: int  # outputs on which the pruner emitted more tokens than the budget

    @property
    def share_of_bound(self) -> float:
        return self.pruner_kept / self.bound_kept if self.bound_kept else 1.0


def bound_kept(needle_set: set[str], budget: int) -> int:
    """How many needles an oracle keeps that emits only the bare needle strings, cheapest first."""
    kept = used = 0
    for cost in sorted(DEFAULT_COUNTER.count_text(n) for n in needle_set):
        if used + cost > budget:
            break
        used += cost
        kept += 1
    return kept


def run(workloads: Path, min_tokens: int) -> list[Row]:
    corpus = []
    seen: set[str] = set()
    for _origin, text in tool_outputs(workloads):
        if text in seen:
            continue
        seen.add(text)
        tokens = DEFAULT_COUNTER.count_text(text)
        found = needles(text) if tokens >= min_tokens else set()
        if found:
            corpus.append((text, tokens, found))
    rows = []
    for ratio in BUDGETS:
        total = kept_p = kept_h = kept_b = tokens_in = tokens_out = over = 0
        for text, tokens, found in corpus:
            budget = max(int(tokens * ratio), 1)
            pruned = prune(text, budget=budget)
            base = head_tail(text, budget=budget)
            emitted = DEFAULT_COUNTER.count_text(pruned.text)
            over += emitted > budget
            total += len(found)
            kept_p += sum(1 for n in found if n in pruned.text)
            kept_h += sum(1 for n in found if n in base)
            kept_b += bound_kept(found, budget)
            tokens_in += tokens
            tokens_out += emitted
        rows.append(
            Row(
                budget=ratio,
                outputs=len(corpus),
                needles=total,
                tokens_removed=1 - tokens_out / tokens_in if tokens_in else 0.0,
                pruner_kept=kept_p / total if total else 1.0,
                head_tail_kept=kept_h / total if total else 1.0,
                bound_kept=kept_b / total if total else 1.0,
                over_budget=over,
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", type=Path, default=ROOT.parent / "shared" / "workloads")
    ap.add_argument("--min-tokens", type=int, default=400)
    args = ap.parse_args()
    rows = run(args.workloads, args.min_tokens)
    if not rows[0].outputs:
        sys.exit(f"no tool outputs of >= {args.min_tokens} tokens with needles under {args.workloads}")
    print(f"{rows[0].outputs} tool outputs of >= {args.min_tokens} tokens, {rows[0].needles} needles")
    print(
        "| budget | tokens removed | needles kept (pruner) | needles kept (head+tail) "
        "| upper bound: bare needle strings, cheapest first | pruner / bound |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.budget:.0%} | {r.tokens_removed:.1%} | {r.pruner_kept:.1%} | {r.head_tail_kept:.1%} "
            f"| {r.bound_kept:.1%} | {r.share_of_bound:.1%} |"
        )
    over = {f"{r.budget:.0%}": r.over_budget for r in rows if r.over_budget}
    if over:
        sys.exit(f"the pruner emitted more tokens than the budget on some outputs: {over}")


if __name__ == "__main__":
    main()
