"""The pure builders: sums, groupings, windows, cost (never $0 when unknown), exactness."""

from __future__ import annotations

import datetime as dt

import pytest

from tokenomy.blocks import parse_request
from tokenomy.model import Run, Turn, Usage
from tokenomy.pricing import cost
from tokenomy.report import data as rd

from ._sample import HAIKU, SONNET, T0, Sample, turn

JSON_KEYS = {
    "requests",
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
    "cost_usd",
    "cache_hit_rate",
}


def _expected_cost(runs: list[Run]) -> float:
    total = 0.0
    for r in runs:
        for t in r.turns:
            assert t.usage is not None
            c = cost(t.usage, t.model)
            assert c is not None
            total += c.total
    return total


def test_totals_sum_every_turn(sample: Sample) -> None:
    data = rd.build_report(sample.runs, tz=dt.UTC)
    t = data.totals
    assert t.requests == 7
    assert t.input_tokens == 10 + 5 + 5 + 3 + 2 + 2 + 50
    assert t.cache_creation_input_tokens == 20_000 + 1_000 + 21_000 + 500 + 3_000 + 100 + 4_000
    assert t.cache_read == 20_000 + 21_000 + 3_000 + 10_000
    assert t.output_tokens == 100 + 300 + 50 + 700 + 80 + 90 + 400
    assert t.cost_usd == pytest.approx(_expected_cost(sample.runs))
    assert t.cache_hit_rate == pytest.approx(t.cache_read / t.prompt_tokens)
    shares = t.cost_shares()
    assert shares is not None and sum(shares.values()) == pytest.approx(1.0)
    assert data.runs == 3


def test_sessions_list_sub_agents_under_their_parent(sample: Sample) -> None:
    data = rd.build_report([sample.other, sample.agent, sample.main], tz=dt.UTC)
    assert [(r.key, r.depth) for r in data.rows] == [
        ("aaaa1111-session", 0),
        ("agent-bbbb2222", 1),
        ("cccc3333-session", 0),
    ]
    assert data.rows[0].tally.requests == 4


@pytest.mark.parametrize(
    ("by", "keys"),
    [
        ("day", ["2025-06-08", "2025-06-10"]),
        ("week", ["2025-W23", "2025-W24"]),
        ("month", ["2025-06"]),
        ("model", [SONNET, HAIKU]),
        ("project", ["/home/u/proj-a", "/home/u/proj-b"]),
    ],
)
def test_groupings(sample: Sample, by: rd.GroupBy, keys: list[str]) -> None:
    data = rd.build_report(sample.runs, by=by, tz=dt.UTC)
    assert [r.key for r in data.rows] == keys
    assert sum(r.tally.requests for r in data.rows) == data.totals.requests


def test_window_is_inclusive_days(sample: Sample) -> None:
    day1 = dt.date(2025, 6, 8)
    only1 = rd.build_report(sample.runs, since=day1, until=day1, tz=dt.UTC)
    assert only1.totals.requests == 6 and only1.runs == 2
    later = rd.build_report(sample.runs, since=dt.date(2025, 6, 9), tz=dt.UTC)
    assert later.totals.requests == 1 and [r.key for r in later.rows] == ["cccc3333-session"]
    none = rd.build_report(sample.runs, until=dt.date(2025, 6, 7), tz=dt.UTC)
    assert none.totals.requests == 0 and none.rows == ()


def test_unknown_price_is_none_never_zero(sample: Sample) -> None:
    odd = Run(run_id="odd", turns=(turn(T0, model="gpt-4o", i=1000, o=10),))
    data = rd.build_report([*sample.runs, odd], tz=dt.UTC)
    assert data.totals.cost_usd is None
    assert data.totals.unpriced_models == {"gpt-4o"}
    assert data.totals.cost.total == pytest.approx(_expected_cost(sample.runs))
    out = rd.report_json(data)
    assert out["totals"]["cost_usd"] is None
    assert out["unpriced_models"] == ["gpt-4o"]
    rows = {r["session"]: r for r in out["rows"]}
    assert rows["odd"]["cost_usd"] is None
    assert rows["cccc3333-session"]["cost_usd"] > 0


def test_zero_usage_turn_costs_nothing_even_unpriced() -> None:
    run = Run(run_id="r", turns=(turn(T0, model="<synthetic>"), turn(T0 + 1, i=10, o=5)))
    data = rd.build_report([run])
    assert data.totals.cost_usd is not None and data.totals.cost_usd > 0
    assert data.totals.requests == 2


def test_missing_usage_is_estimated_from_the_request() -> None:
    body = {
        "model": SONNET,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello there " * 50}],
    }
    req = parse_request(body)
    run = Run(
        run_id="log",
        kind="request_log",
        turns=(Turn(model=SONNET, request=req, started_at=T0), turn(T0 + 5, i=7, o=3)),
    )
    data = rd.build_report([run])
    assert data.totals.estimated_requests == 1
    assert data.totals.input_tokens == req.total_tokens + 7
    assert data.quality["input"] == "estimated"
    detail = rd.build_run_detail(run)
    assert detail.turns[0].estimated and not detail.turns[1].estimated
    assert rd.run_detail_json(detail)["rows"][0]["estimated"] is True


def test_quality_is_the_worst_seen_per_class(sample: Sample) -> None:
    data = rd.build_report(sample.runs)
    assert dict(data.quality) == {
        "input": "lower_bound",
        "cache_write": "exact",
        "cache_read": "exact",
        "output": "lower_bound",
    }
    exact = rd.build_report([sample.other])
    assert set(exact.quality.values()) == {"exact"}


def test_json_has_the_exact_keys(sample: Sample) -> None:
    for by in rd.GROUPINGS:
        out = rd.report_json(rd.build_report(sample.runs, by=by, tz=dt.UTC))
        assert set(out["totals"]) == JSON_KEYS
        assert out["rows"]
        for row in out["rows"]:
            assert set(row) == JSON_KEYS | {by}


def test_run_detail_gaps_and_costs(sample: Sample) -> None:
    detail = rd.build_run_detail(sample.main)
    assert [tf.index for tf in detail.turns] == [1, 2, 3, 4]
    assert [tf.gap_s for tf in detail.turns] == [None, 30, 600, 10]
    assert detail.turns[2].cache_hit_rate == 0
    assert detail.totals.cost_usd == pytest.approx(_expected_cost([sample.main]))
    out = rd.run_detail_json(detail)
    assert out["run"]["run_id"] == "aaaa1111-session"
    assert [r["prompt_tokens"] for r in out["rows"]] == [20_010, 21_005, 21_005, 21_503]
    assert out["rows"][2]["gap_s"] == 600


def test_find_run_by_id_or_unique_prefix(sample: Sample) -> None:
    assert rd.find_run(sample.runs, "aaaa") is sample.main
    assert rd.find_run(sample.runs, "agent-bbbb2222") is sample.agent
    assert rd.find_run(sample.runs, "zzz") is None
    twins = [Run(run_id="ab1", turns=()), Run(run_id="ab2", turns=())]
    assert rd.find_run(twins, "ab") is None


def test_costliest_run(sample: Sample) -> None:
    assert rd.costliest_run(sample.runs) is sample.main
    assert rd.costliest_run([Run(run_id="empty", turns=())]) is None


def test_page_picks_costliest_or_chosen_run(sample: Sample) -> None:
    page = rd.build_page(sample.runs, tz=dt.UTC)
    assert page.detail is not None and page.detail.run is sample.main
    assert [r.key for r in page.by_day.rows] == ["2025-06-08", "2025-06-10"]
    chosen = rd.build_page(sample.runs, run_id="cccc", tz=dt.UTC)
    assert chosen.detail is not None and chosen.detail.run is sample.other


def test_empty_usage_totals() -> None:
    t = rd.Tally()
    assert t.cache_hit_rate is None and t.cost_shares() is None and t.cost_usd == 0
    assert rd.Tally().to_json()["cache_hit_rate"] is None
    assert Usage().prompt_tokens == 0


def test_long_context_is_priced_per_request() -> None:
    """Sonnet 4.5 bills a request over 200k prompt tokens at long-context rates: summing first would be wrong."""
    model = "claude-sonnet-4-5"
    turns = (turn(T0, model=model, i=10, r=150_000, o=100), turn(T0 + 1, model=model, i=10, r=150_000, o=100))
    big = (turn(T0 + 2, model=model, i=10, r=250_000, o=100),)
    run = Run(run_id="lc", turns=turns + big)
    expected = _expected_cost([run])
    short_only = _expected_cost([Run(run_id="s", turns=turns)])
    assert short_only * 1.5 < expected  # the long request costs more per token
    for by in rd.GROUPINGS:
        assert rd.build_report([run], by=by).totals.cost_usd == pytest.approx(expected)


def test_unpriced_counts_only_billed_turns() -> None:
    run = Run(run_id="r", turns=(turn(T0, model="gpt-4o"), turn(T0 + 1, model="gpt-4o", i=5)))
    t = rd.build_report([run]).totals
    assert t.requests == 2 and t.unpriced_requests == 1 and t.cost_usd is None


def test_batch_and_priority_tiers_are_priced_apart() -> None:
    from tokenomy.model import Usage as U

    batch = Turn(model=SONNET, usage=U(input_tokens=100_000, service_tier="batch"), started_at=T0)
    std = Turn(model=SONNET, usage=U(input_tokens=100_000), started_at=T0 + 1)
    t = rd.build_report([Run(run_id="b", turns=(batch, std))]).totals
    assert t.cost_usd == pytest.approx(0.3 * 1.5)
