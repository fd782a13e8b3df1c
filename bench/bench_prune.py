"""Tool-output pruning on the real tool outputs of the workloads, against head+tail truncation.

    .venv/bin/python bench/bench_prune.py [--min-tokens 400]

For each budget (a share of each output's own tokens) it reports the tokens removed and the share
of labelled needles (bench/label_needles.py) kept by the pruner and by plain head+tail truncation
at the same budget. Outputs shorter than --min-tokens are left out: nobody prunes a short output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_needles import needles, tool_outputs

from tokenomy.context.prune import head_tail, prune
from tokenomy.tokens import DEFAULT_COUNTER

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = (0.05, 0.10, 0.20, 0.35, 0.50)


def run(workloads: Path, min_tokens: int) -> list[dict[str, float]]:
    corpus = []
    seen: set[str] = set()
    for origin, text in tool_outputs(workloads):
        if text in seen:
            continue
        seen.add(text)
        tokens = DEFAULT_COUNTER.count_text(text)
        if tokens >= min_tokens and needles(text):
            corpus.append((origin, text, tokens, needles(text)))
    rows = []
    for ratio in BUDGETS:
        total = kept_p = kept_h = tokens_in = tokens_out = 0
        for _origin, text, tokens, ns in corpus:
            budget = max(int(tokens * ratio), 1)
            pruned = prune(text, budget=budget).text
            base = head_tail(text, budget=budget)
            total += len(ns)
            kept_p += sum(1 for n in ns if n in pruned)
            kept_h += sum(1 for n in ns if n in base)
            tokens_in += tokens
            tokens_out += DEFAULT_COUNTER.count_text(pruned)
        rows.append(
            {
                "budget": ratio,
                "outputs": len(corpus),
                "needles": total,
                "pruner_kept": kept_p / total if total else 1.0,
                "head_tail_kept": kept_h / total if total else 1.0,
                "tokens_removed": 1 - tokens_out / tokens_in if tokens_in else 0.0,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workloads", type=Path, default=ROOT.parent / "shared" / "workloads")
    ap.add_argument("--min-tokens", type=int, default=400)
    args = ap.parse_args()
    rows = run(args.workloads, args.min_tokens)
    print(f"{rows[0]['outputs']} tool outputs of >= {args.min_tokens} tokens, {rows[0]['needles']} needles")
    print("| budget | tokens removed | needles kept (pruner) | needles kept (head+tail) |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['budget']:.0%} | {r['tokens_removed']:.1%} | {r['pruner_kept']:.1%} | {r['head_tail_kept']:.1%} |"
        )


if __name__ == "__main__":
    main()
