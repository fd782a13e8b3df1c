"""Observation masking: pure, sticky, chunked when cache-aware, and the break-even it uses."""

from __future__ import annotations

import copy

from _ctx_agent import MODEL, body

from tokenomy.blocks import parse_request
from tokenomy.context.mask import (
    MaskOptions,
    MaskState,
    MaskTransform,
    TurnEstimator,
    edit_value,
    mask_body,
    placeholder_text,
)
from tokenomy.model import Usage


def _masked_ids(b: dict) -> set[str]:  # type: ignore[type-arg]
    out = set()
    for m in b["messages"]:
        if isinstance(m["content"], list):
            for blk in m["content"]:
                if blk.get("type") == "tool_result" and str(blk["content"]).startswith(
                    "[old tool output removed"
                ):
                    out.add(blk["tool_use_id"])
    return out


def test_naive_masks_everything_outside_the_window_and_never_touches_the_input() -> None:
    src = body(15)
    before = copy.deepcopy(src)
    state = MaskState()
    out, edits = mask_body(src, state, options=MaskOptions(aware=False, keep_last=10), at=0.0)
    assert src == before
    assert len(edits) == 5 and {e.tool_use_id for e in edits} == {f"toolu_{i:04d}" for i in range(5)}
    assert _masked_ids(out) == {e.tool_use_id for e in edits}
    assert all(e.tokens_after < e.tokens_before for e in edits)
    # The placeholder keeps the pairing: same tool_use_id, same block position.
    blk = out["messages"][2]["content"][0]
    assert blk["tool_use_id"] == "toolu_0000" and blk["content"] == placeholder_text(edits[0].tokens_before)
    # Everything else is unchanged, and the request still parses to the same block layout.
    assert out["messages"][-1] == src["messages"][-1]
    assert len(parse_request(out).blocks) == len(parse_request(src).blocks)


def test_a_masked_result_stays_masked_in_later_requests() -> None:
    state = MaskState()
    opts = MaskOptions(aware=False, keep_last=10)
    first, _ = mask_body(body(12), state, options=opts, at=0.0)
    later, edits = mask_body(body(13), state, options=opts, at=10.0)
    assert [e.tool_use_id for e in edits] == ["toolu_0002"]
    assert _masked_ids(later) == {"toolu_0000", "toolu_0001", "toolu_0002"}
    # The masked prefix is byte-identical to what the previous request sent: it reads from cache.
    a, b = parse_request(first), parse_request(later)
    assert a.blocks[8].prefix_hash == b.blocks[8].prefix_hash


def test_cache_aware_masking_waits_for_a_chunk_then_masks_it_all() -> None:
    state = MaskState(estimator=TurnEstimator())
    opts = MaskOptions(keep_last=10)
    decided = []
    for turns in range(1, 40):
        req = parse_request(body(turns))
        out, edits = mask_body(body(turns), state, options=opts, at=turns * 10.0)
        if edits:
            decided.append((turns, len(edits)))
        # the cache holds the whole prompt after each response (a hit and a top write)
        sent = parse_request(out)
        state.observe(Usage(cache_read=sent.total_tokens - 300, cache_write_5m=300), turns * 10.0)
        assert req.total_tokens >= sent.total_tokens
    assert decided, "a long run with large results must mask at some point"
    assert all(n > 1 for _, n in decided), f"masked one result at a time: {decided}"
    assert len(decided) < 39 - 10  # not every turn, unlike the naive variant


def test_a_lapsed_cache_makes_masking_free_and_immediate() -> None:
    state = MaskState()
    opts = MaskOptions(keep_last=10)
    _, edits = mask_body(body(10), state, options=opts, at=0.0)
    assert edits == []  # nothing outside the window yet
    state.observe(Usage(cache_read=20_000, cache_write_5m=500), 0.0)
    _, edits = mask_body(body(12), state, options=opts, at=30.0)
    assert edits == []  # two small results, cache warm: not worth a re-write yet
    _, edits = mask_body(body(13), state, options=opts, at=30.0 + 3600)  # the 5m entry is long gone
    assert [e.tool_use_id for e in edits] == ["toolu_0000", "toolu_0001", "toolu_0002"]


def test_excluded_tools_and_small_results_are_left_alone() -> None:
    out, edits = mask_body(
        body(15, tool="read"), MaskState(), options=MaskOptions(aware=False, exclude_tools=("read",))
    )
    assert edits == [] and _masked_ids(out) == set()
    _, edits = mask_body(body(15, result_words=3), MaskState(), options=MaskOptions(aware=False))
    assert edits == []


def test_bodies_without_tool_results_pass_through() -> None:
    for b in ({"model": MODEL, "max_tokens": 5, "messages": []}, {"model": MODEL, "messages": "x"}):
        out, edits = mask_body(b, MaskState(), at=0.0)
        assert edits == [] and out == b


def test_edit_value_break_even() -> None:
    # A warm cache of 50k tokens; an edit at 10k removing 20k: 20k tokens are re-written now.
    net0, now = edit_value(
        start=10_000, removed=20_000, added=0, cached=50_000, total=51_000, remaining=0, model=MODEL
    )
    assert now > 0 and net0 == -now
    # Each later turn saves 20k reads (0.1 each): 2,000 units a turn; it pays after now/2000 turns.
    turns = now / 2_000
    assert edit_value(start=10_000, removed=20_000, added=0, cached=50_000, total=51_000,
                      remaining=turns + 1, model=MODEL)[0] > 0  # fmt: skip
    # With nothing cached the edit only saves.
    assert (
        edit_value(start=10_000, removed=20_000, added=0, cached=0, total=51_000, remaining=0, model=MODEL)[1]
        < 0
    )


def test_turn_estimator_learns_from_finished_runs() -> None:
    est = TurnEstimator(ended_after_s=100, min_runs=3)
    t = 0.0
    for run in range(3):
        for _ in range(10):
            est.seen(f"r{run}", t)
            t += 1
        t += 1000
    est.seen("new", t)
    assert est.finished() == [10, 10, 10]
    assert est.remaining("new") == 9.0
    est2 = TurnEstimator()
    for i in range(5):
        est2.seen("only", float(i))
    assert est2.remaining("only") == 5.0  # no history yet: as long again as it has lasted


def test_transform_keeps_exact_token_counts_of_unchanged_blocks() -> None:
    from dataclasses import replace

    src = body(14)
    req = parse_request(src)
    exact = replace(req, blocks=tuple(replace(b, tokens=b.tokens + 7) for b in req.blocks), tokens_exact=True)
    tr = MaskTransform(MaskOptions(aware=False))
    out, side = tr.transform(exact, run_id="r", at=0.0)
    assert side == ()
    changed = [i for i, (a, b) in enumerate(zip(out.blocks, exact.blocks, strict=True)) if a.data != b.data]
    assert len(changed) == 4
    for a, b in zip(out.blocks, exact.blocks, strict=True):
        if a.data == b.data:
            assert a.tokens == b.tokens


def test_turn_estimator_stays_bounded_over_many_runs() -> None:
    """A gateway sees thousands of runs: finished ones are found from the oldest, and only the
    newest lengths are kept."""
    est = TurnEstimator(ended_after_s=60.0, history=50)
    for k in range(500):
        at = k * 10.0
        est.seen(f"r{k}", at)
        est.seen(f"r{k}", at + 1.0)
    assert len(est.finished()) == 50  # the newest 50 of the ~490 finished runs
    assert all(n == 2 for n in est.finished())
    assert len(est._runs) <= 8  # only the runs seen in the last minute are live
    assert est.remaining("r499") == 0.0  # every finished run stopped at two turns
