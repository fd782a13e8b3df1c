"""Seeded mutations on real requests: the doctor must name each injected cause and its place.

Prints precision and recall per cause (docs/doctor.md records the table and the command).
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest

from tokenomy.analysis import diagnose_run
from tokenomy.analysis.doctor import Miss

from ._mutations import Case, build_cases, replay


@cache
def _cases() -> tuple[list[str], list[Case]]:
    bases, cases = build_cases()
    return [b.name for b in bases], cases


def _label(m: Miss) -> str:
    return f"{m.cause}:{m.kind}" if m.cause == "prefix_changed" and m.kind else m.cause


def _score(case: Case) -> tuple[Counter[str], Counter[str], Counter[str], list[str]]:
    run = replay(case.bodies, case.times, run_id=f"{case.base}/{case.mutation}")
    diag = diagnose_run(run)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    problems: list[str] = []
    truth = {idx: (label, loc) for idx, label, loc in case.expected}
    found: set[int] = set()
    for m in diag.misses:
        want = truth.get(m.request_index)
        got = _label(m)
        if want is not None and want[0] == got and m.location.startswith(want[1]):
            tp[got] += 1
            found.add(m.request_index)
        else:
            fp[got] += 1
            problems.append(
                f"{case.base} / {case.mutation}: request {m.request_index} got {got} at {m.location}"
            )
    for idx, (label, loc) in truth.items():
        if idx not in found:
            fn[label] += 1
            problems.append(f"{case.base} / {case.mutation}: request {idx} missed {label} at {loc}")
    return tp, fp, fn, problems


def test_unmutated_bases_have_no_misses() -> None:
    _, cases = _cases()
    from ._mutations import build_cases as _b

    bases, _ = _b()
    for base in bases:
        if base.short:
            continue
        times = [1_770_000_000.0 + 20.0 * i for i in range(len(base.bodies))]
        diag = diagnose_run(replay(base.bodies, times, run_id=base.name))
        assert diag.misses == (), [(m.request_index, m.cause, m.location) for m in diag.misses]


def test_seeded_mutations_precision_and_recall(capsys: pytest.CaptureFixture[str]) -> None:
    names, cases = _cases()
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    problems: list[str] = []
    for case in cases:
        a, b, c, p = _score(case)
        tp.update(a)
        fp.update(b)
        fn.update(c)
        problems.extend(p)
    labels = sorted(set(tp) | set(fp) | set(fn))
    lines = [
        f"seeded-mutation suite: {len(cases)} mutated runs over {len(names)} real bases ({', '.join(names)})",
        f"{'cause':<34}{'injected':>9}{'found':>7}{'false+':>8}{'precision':>11}{'recall':>8}",
    ]
    for label in labels:
        injected = tp[label] + fn[label]
        precision = tp[label] / (tp[label] + fp[label]) if tp[label] + fp[label] else 0.0
        recall = tp[label] / injected if injected else 0.0
        lines.append(f"{label:<34}{injected:>9}{tp[label]:>7}{fp[label]:>8}{precision:>11.2f}{recall:>8.2f}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not problems, "\n".join(problems)
    expected_labels = {
        "prefix_changed:timestamp",
        "prefix_changed:tools_reordered",
        "prefix_changed:json_key_order",
        "prefix_changed:whitespace",
        "prefix_changed:content_edit",
        "model_changed",
        "params_changed",
        "ttl_expired",
        "concurrent",
        "below_minimum",
        "lookback_exceeded",
    }
    assert expected_labels <= set(tp), expected_labels - set(tp)
