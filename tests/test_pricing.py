"""The price table against spec §3.2, cost() against the worked examples of §3.10, id resolution."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenomy import pricing
from tokenomy.cli.prices import markdown_table, prices, sync_docs
from tokenomy.model import Usage
from tokenomy.pricing import Cost, all_models, cost, model_info, pricing_notes, resolve

# Spec §3.2, copied row by row: id, aliases, in, 5m write, 1h write, read, out, batch in, batch out.
Row = tuple[str, tuple[str, ...], float, float, float, float, float, float, float]
CURRENT: list[Row] = [
    ("claude-fable-5-1", (), 10, 12.50, 20, 0.25, 50, 5, 25),
    ("claude-mythos-5-1", (), 10, 12.50, 20, 0.25, 50, 5, 25),
    ("claude-fable-5", (), 10, 12.50, 20, 1, 50, 5, 25),
    ("claude-mythos-5", (), 10, 12.50, 20, 1, 50, 5, 25),
    ("claude-opus-5-5", (), 4, 5, 8, 0.20, 20, 2, 10),
    ("claude-opus-5", (), 5, 6.25, 10, 0.50, 25, 2.50, 12.50),
    ("claude-opus-4-8", (), 5, 6.25, 10, 0.50, 25, 2.50, 12.50),
    ("claude-opus-4-7", (), 5, 6.25, 10, 0.50, 25, 2.50, 12.50),
    ("claude-opus-4-6", (), 5, 6.25, 10, 0.50, 25, 2.50, 12.50),
    ("claude-opus-4-5-20251101", ("claude-opus-4-5",), 5, 6.25, 10, 0.50, 25, 2.50, 12.50),
    ("claude-opus-4-1-20250805", ("claude-opus-4-1",), 15, 18.75, 30, 1.50, 75, 7.50, 37.50),
    ("claude-opus-4-20250514", ("claude-opus-4-0",), 15, 18.75, 30, 1.50, 75, 7.50, 37.50),
    ("claude-sonnet-5-5", (), 2, 2.50, 4, 0.20, 10, 1, 5),
    ("claude-sonnet-5", (), 2, 2.50, 4, 0.20, 10, 1, 5),
    ("claude-sonnet-4-6", (), 3, 3.75, 6, 0.30, 15, 1.50, 7.50),
    ("claude-sonnet-4-5-20250929", ("claude-sonnet-4-5",), 3, 3.75, 6, 0.30, 15, 1.50, 7.50),
    ("claude-sonnet-4-20250514", ("claude-sonnet-4-0",), 3, 3.75, 6, 0.30, 15, 1.50, 7.50),
    ("claude-haiku-4-5-20251001", ("claude-haiku-4-5",), 1, 1.25, 2, 0.10, 5, 0.50, 2.50),
    ("claude-3-5-haiku-20241022", ("claude-3-5-haiku-latest",), 0.80, 1, 1.60, 0.08, 4, 0.40, 2),
]
RETIRED: list[Row] = [
    ("claude-3-7-sonnet-20250219", ("claude-3-7-sonnet-latest",), 3, 3.75, 6, 0.30, 15, 1.50, 7.50),
    ("claude-3-haiku-20240307", (), 0.25, 0.30, 0.50, 0.03, 1.25, 0.125, 0.625),
    ("claude-3-opus-20240229", ("claude-3-opus-latest",), 15, 18.75, 30, 1.50, 75, 7.50, 37.50),
    ("claude-3-5-sonnet-20241022", ("claude-3-5-sonnet-20240620",), 3, 3.75, 6, 0.30, 15, 1.50, 7.50),
]
UNPRICED = ["claude-mythos-preview", "claude-haiku-5-5", "claude-fable-5-2", "claude-mythos-5-2"]

MTOK = 1_000_000


@pytest.fixture(autouse=True)
def _fresh_notes() -> None:
    pricing.clear_pricing_notes()


@pytest.mark.parametrize("row", CURRENT + RETIRED, ids=lambda r: r[0])
def test_spec_price_rows(row: Row) -> None:
    model_id, aliases, p_in, w5, w1, read, out, b_in, b_out = row
    res = resolve(model_id)
    assert res.exact and res.info is not None and res.info.id == model_id
    info = res.info
    assert info.price_known
    assert (info.input, info.cache_write_5m, info.cache_write_1h, info.cache_read, info.output) == (
        p_in,
        w5,
        w1,
        read,
        out,
    )
    for alias in aliases:
        assert alias in info.aliases
        assert resolve(alias).info is info and resolve(alias).exact
    # The batch column of the table is what cost() charges with tier="batch" (100k tokens each,
    # below the Sonnet 4/4.5 long-context threshold).
    batch = cost(Usage(input_tokens=100_000, output_tokens=100_000), model_id, tier="batch")
    assert batch is not None
    assert batch.input * 10 == pytest.approx(b_in)
    assert batch.output * 10 == pytest.approx(b_out)
    assert info.source and info.checked == "2026-11-25"


def test_table_holds_exactly_the_spec_models() -> None:
    expected = {r[0] for r in CURRENT + RETIRED} | set(UNPRICED)
    assert {m.id for m in all_models()} == expected
    names = [n for m in all_models() for n in (m.id, *m.aliases)]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("model_id", UNPRICED)
def test_unpriced_models_cost_none_not_zero(model_id: str, caplog: pytest.LogCaptureFixture) -> None:
    info = model_info(model_id)
    assert info is not None and not info.price_known
    assert info.input is None and info.output is None and info.cache_read is None
    with caplog.at_level(logging.WARNING, logger="tokenomy.pricing"):
        assert cost(Usage(input_tokens=1000, output_tokens=10), model_id) is None
        assert cost(Usage(input_tokens=1000), model_id) is None
    assert len(caplog.records) == 1
    assert any(model_id in n and "unknown" in n for n in pricing_notes())


@pytest.mark.parametrize(
    ("model_id", "minimum", "tokenizer"),
    [
        ("claude-fable-5-1", 512, "v2"),
        ("claude-opus-5-5", 512, "v2"),
        ("claude-sonnet-5-5", 512, "v2"),
        ("claude-opus-4-8", 1024, "v2"),
        ("claude-sonnet-5", 1024, "v2"),
        ("claude-sonnet-4-6", 1024, "legacy"),
        ("claude-mythos-preview", 2048, "v2"),
        ("claude-opus-4-7", 2048, "v2"),
        ("claude-3-5-haiku-20241022", 2048, "legacy"),
        ("claude-3-haiku-20240307", 2048, "legacy"),
        ("claude-opus-4-6", 4096, "legacy"),
        ("claude-opus-4-5", 4096, "legacy"),
        ("claude-haiku-4-5", 4096, "legacy"),
        ("claude-3-7-sonnet-20250219", 1024, "legacy"),
        ("claude-3-opus-20240229", 1024, "legacy"),
    ],
)
def test_min_cacheable_and_tokenizer(model_id: str, minimum: int, tokenizer: str) -> None:
    info = model_info(model_id)
    assert info is not None
    assert (info.min_cacheable_tokens, info.tokenizer) == (minimum, tokenizer)


def test_model_facts() -> None:
    opus55 = model_info("claude-opus-5-5")
    assert opus55 is not None
    assert (opus55.tool_overhead_auto, opus55.tool_overhead_forced) == (286, None)
    assert opus55.released == "2026-09-22" and opus55.context_window == 1_000_000
    opus47 = model_info("claude-opus-4-7")
    assert opus47 is not None and (opus47.tool_overhead_auto, opus47.tool_overhead_forced) == (675, 804)
    haiku45 = model_info("claude-haiku-4-5")
    assert haiku45 is not None and not haiku45.geo_us_multiplier_applies
    assert (haiku45.context_window, haiku45.max_output) == (200_000, 64_000)
    sonnet46 = model_info("claude-sonnet-4-6")
    assert sonnet46 is not None and sonnet46.geo_us_multiplier_applies
    opus41 = model_info("claude-opus-4-1")
    assert opus41 is not None
    assert (opus41.status, opus41.deprecated, opus41.retired) == ("retired", "2026-06-05", "2026-08-05")
    preview = model_info("claude-mythos-preview")
    assert preview is not None and (preview.status, preview.deprecated) == ("deprecated", "2026-06-09")
    long_context = {m.id for m in all_models() if m.long_context_threshold is not None}
    assert long_context == {"claude-sonnet-4-5-20250929", "claude-sonnet-4-20250514"}
    assert pricing.multipliers()["batch"] == 0.5 and pricing.fees()["web_search_per_1000"] == 10.0


# --- cost(): the worked examples of spec §3.10 and a few more, by hand ----------------------------

OPUS47_EXAMPLE = Usage(cache_read=100_000, cache_write_5m=2_000, input_tokens=500, output_tokens=1_000)


def test_opus_47_cached_example() -> None:
    c = cost(OPUS47_EXAMPLE, "claude-opus-4-7")
    assert c is not None
    assert (c.cache_read, c.cache_write_5m, c.input, c.output) == pytest.approx(
        (0.050, 0.0125, 0.0025, 0.025)
    )
    assert c.total == pytest.approx(0.090)
    batch = cost(OPUS47_EXAMPLE, "claude-opus-4-7", tier="batch")
    assert batch is not None and batch.total == pytest.approx(0.045)
    us = cost(OPUS47_EXAMPLE, "claude-opus-4-7", geo="us")
    assert us is not None and us.total == pytest.approx(0.099)
    us_from_usage = cost(dataclasses.replace(OPUS47_EXAMPLE, inference_geo="us"), "claude-opus-4-7")
    assert us_from_usage is not None and us_from_usage.total == pytest.approx(0.099)
    both = cost(OPUS47_EXAMPLE, "claude-opus-4-7", tier="batch", geo="us")
    assert both is not None and both.total == pytest.approx(0.0495)


def test_opus_47_uncached_example() -> None:
    c = cost(Usage(input_tokens=102_500, output_tokens=1_000), "claude-opus-4-7")
    assert c is not None and c.total == pytest.approx(0.5375)


def test_mixed_ttl_sonnet_46_example() -> None:
    u = Usage(
        cache_read=10_000, cache_write_1h=30_000, cache_write_5m=5_000, input_tokens=200, output_tokens=300
    )
    c = cost(u, "claude-sonnet-4-6")
    assert c is not None
    assert (c.cache_read, c.cache_write_1h, c.cache_write_5m, c.input, c.output) == pytest.approx(
        (0.003, 0.18, 0.01875, 0.0006, 0.0045)
    )
    assert c.total == pytest.approx(0.20685)


@pytest.mark.parametrize(
    ("usage", "model", "tier", "expected"),
    [
        (Usage(cache_read=MTOK), "claude-opus-5-5", None, 0.20),
        (Usage(cache_read=MTOK), "claude-fable-5-1", None, 0.25),
        (Usage(cache_read=MTOK), "claude-mythos-5-1", None, 0.25),
        (Usage(cache_read=MTOK), "claude-fable-5", None, 1.00),
        (Usage(cache_write_1h=MTOK), "claude-sonnet-4-6", None, 6.00),
        (Usage(cache_write_5m=MTOK), "claude-sonnet-4-6", None, 3.75),
        # Haiku 4.5 batch: (1 + 5 + 1.25 + 2 + 0.10) / 2
        (
            Usage(
                input_tokens=MTOK,
                output_tokens=MTOK,
                cache_write_5m=MTOK,
                cache_write_1h=MTOK,
                cache_read=MTOK,
            ),
            "claude-haiku-4-5",
            "batch",
            4.675,
        ),
        (Usage(input_tokens=MTOK, service_tier="batch"), "claude-haiku-4-5", None, 0.50),
        (Usage(input_tokens=MTOK, service_tier="batch"), "claude-haiku-4-5", "standard", 1.00),
        # Haiku 3's irregular published cache prices are used as given.
        (Usage(cache_write_5m=MTOK, cache_read=MTOK), "claude-3-haiku-20240307", None, 0.33),
    ],
)
def test_cost_by_hand(usage: Usage, model: str, tier: str | None, expected: float) -> None:
    c = cost(usage, model, tier=tier)
    assert c is not None and c.total == pytest.approx(expected)


def test_sonnet_45_long_context() -> None:
    # 150k + 50k + 10k = 210k prompt tokens > 200k: every token at $6 / $22.50, cache multipliers on top.
    u = Usage(
        input_tokens=150_000,
        cache_write_5m=40_000,
        cache_write_1h=10_000,
        cache_read=10_000,
        output_tokens=2_000,
    )
    c = cost(u, "claude-sonnet-4-5")
    assert c is not None
    assert c.input == pytest.approx(0.9)  # 150k x 6
    assert c.cache_write_5m == pytest.approx(0.3)  # 40k x 7.50
    assert c.cache_write_1h == pytest.approx(0.12)  # 10k x 12
    assert c.cache_read == pytest.approx(0.006)  # 10k x 0.60
    assert c.output == pytest.approx(0.045)  # 2k x 22.50
    at_threshold = Usage(input_tokens=200_000, output_tokens=1_000)
    c200 = cost(at_threshold, "claude-sonnet-4-5-20250929")
    assert c200 is not None and c200.total == pytest.approx(0.6 + 0.015)
    # Claude 4.6+ have no surcharge; Sonnet 4 had the same beta.
    c46 = cost(u, "claude-sonnet-4-6")
    assert c46 is not None and c46.input == pytest.approx(0.45)
    c4 = cost(Usage(input_tokens=300_000), "claude-sonnet-4-0", tier="batch")
    assert c4 is not None and c4.total == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("model", "geo", "expected"),
    [("claude-haiku-4-5", None, 1.0), ("claude-opus-4-6", None, 5.5), ("claude-opus-4-6", "global", 5.0)],
)
def test_geo_only_on_46_plus(model: str, geo: str | None, expected: float) -> None:
    c = cost(Usage(input_tokens=MTOK, inference_geo="us"), model, geo=geo)
    assert c is not None and c.total == pytest.approx(expected)


def test_web_search_fee_and_cost_add() -> None:
    c = cost(Usage(input_tokens=1_000, web_search_requests=3), "claude-sonnet-4-6", tier="batch")
    assert c is not None
    assert c.web_search == pytest.approx(0.03)  # $10 / 1,000, no batch discount
    assert c.input == pytest.approx(0.0015)
    total = c + Cost(input=1.0, output=2.0)
    assert total.total == pytest.approx(c.total + 3.0)
    assert Cost().total == 0


# --- resolution ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("claude-opus-4-5-20251101", "claude-opus-4-5-20251101"),
        ("claude-opus-4-5", "claude-opus-4-5-20251101"),
        ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20241022"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022"),
        ("claude-sonnet-4-0", "claude-sonnet-4-20250514"),
        ("Claude-Sonnet-4-6", "claude-sonnet-4-6"),
    ],
)
def test_exact_resolution(given: str, expected: str) -> None:
    res = resolve(given)
    assert res.exact and res.note is None
    assert res.info is not None and res.info.id == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("claude-sonnet-4-6-20260217", "claude-sonnet-4-6"),  # a date on an undated id
        ("claude-opus-4-1-20990101", "claude-opus-4-1-20250805"),  # another date on a dated alias
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-20241022"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4-20250514"),
        ("global.anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4-20250514"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-20241022"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5-20251001"),
        ("anthropic/claude-opus-4-6", "claude-opus-4-6"),
    ],
)
def test_dated_and_platform_resolution(given: str, expected: str) -> None:
    res = resolve(given)
    assert not res.exact
    assert res.info is not None and res.info.id == expected
    assert res.note is not None and given in res.note


def test_claude_code_context_suffix() -> None:
    res = resolve("claude-opus-4-6[1m]")
    assert res.info is not None and res.info.id == "claude-opus-4-6" and res.note is None


def test_unknown_opus_priced_by_family_with_note(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tokenomy.pricing"):
        res = resolve("claude-opus-4-9")
        assert not res.exact and res.info is not None and res.info.id == "claude-opus-4-8"
        assert res.note is not None and "claude-opus-4-9" in res.note and "claude-opus-4-8" in res.note
        for _ in range(3):
            assert model_info("claude-opus-4-9-20270101") is not None
    assert len(caplog.records) == 1  # one warning per unknown id
    assert "priced as claude-opus-4-8" in caplog.records[0].getMessage()
    c = cost(Usage(input_tokens=MTOK), "claude-opus-4-9")
    assert c is not None and c.total == pytest.approx(5.0)
    assert res.note in pricing_notes()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("claude-opus-5-7", "claude-opus-5-5"),  # not claude-opus-5: 5.7 is a version, not a variant
        ("claude-sonnet-4-5-thinking", "claude-sonnet-4-5-20250929"),  # longest known prefix
        ("claude-sonnet-5-5-20261201-preview", "claude-sonnet-5-5"),
        ("claude-3-5-haiku-20250101", "claude-3-5-haiku-20241022"),
    ],
)
def test_family_fallback(given: str, expected: str) -> None:
    res = resolve(given)
    assert not res.exact and res.info is not None and res.info.id == expected and res.note


def test_unknown_family_member_without_price_stays_unpriced() -> None:
    res = resolve("claude-haiku-5-6")
    assert res.info is not None and res.info.id == "claude-haiku-5-5"
    assert cost(Usage(input_tokens=10), "claude-haiku-5-6") is None


@pytest.mark.parametrize("given", ["gpt-4o", "claude-2.1", "", "gemini-2.5-pro"])
def test_not_claude(given: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tokenomy.pricing"):
        res = resolve(given)
        assert res.info is None and not res.exact and res.note
        assert model_info(given) is None
        assert cost(Usage(input_tokens=1000, output_tokens=1000), given) is None
        assert model_info(given) is None
    assert len(caplog.records) == 1
    assert res.note in pricing_notes()


def test_notes_are_distinct() -> None:
    for _ in range(3):
        cost(Usage(input_tokens=1), "gpt-4o")
        cost(Usage(input_tokens=1), "claude-haiku-5-5")
    notes = pricing_notes()
    assert len(notes) == len(set(notes)) == 2


# --- data file ------------------------------------------------------------------------------------


def test_bad_data_raises_pricing_error() -> None:
    from tokenomy.errors import PricingError

    good = {
        "multipliers": {
            "cache_write_5m": 1.25,
            "cache_write_1h": 2.0,
            "cache_read": 0.1,
            "batch": 0.5,
            "geo_us": 1.1,
        },
        "fees": {"web_search_per_1000": 10.0},
    }
    model = {
        "id": "m",
        "name": "M",
        "family": "opus",
        "min_cacheable_tokens": 1,
        "tokenizer": "v2",
        "geo_us_multiplier_applies": True,
        "status": "active",
        "source": "x",
        "input": 1.0,
        "output": 1.0,
        "cache_write_5m": 1.0,
        "cache_write_1h": 1.0,
        "cache_read": 1.0,
    }
    assert pricing._build({**good, "models": [model]}).models[0].price_known
    bad_models = [
        {k: v for k, v in model.items() if k != "cache_read"},  # a price missing
        {**model, "input": "5"},  # a price as a string
        {**model, "family": "gpt"},
        {**model, "price_known": False},  # unknown price yet prices given
        {**model, "min_cacheable_tokens": True},
    ]
    for bad in bad_models:
        with pytest.raises(PricingError, match="prices.toml"):
            pricing._build({**good, "models": [bad]})
    with pytest.raises(PricingError, match="listed twice"):
        pricing._build({**good, "models": [model, {**model, "id": "n", "aliases": ["m"]}]})


# --- CLI and docs ---------------------------------------------------------------------------------


def test_cli_table() -> None:
    result = CliRunner().invoke(prices, [])
    assert result.exit_code == 0, result.output
    assert "claude-opus-4-7" in result.output and "unknown" in result.output
    assert "claude-3-opus-20240229" in result.output  # retired models are listed (dimmed)
    result = CliRunner().invoke(prices, ["--active"])
    assert result.exit_code == 0 and "claude-3-opus-20240229" not in result.output


def test_cli_json() -> None:
    result = CliRunner().invoke(prices, ["--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["id"] for r in rows} == {m.id for m in all_models()}
    haiku55 = next(r for r in rows if r["id"] == "claude-haiku-5-5")
    assert haiku55["input"] is None and haiku55["price_known"] is False
    result = CliRunner().invoke(prices, ["--json", "--active"])
    assert result.exit_code == 0 and all(r["status"] != "retired" for r in json.loads(result.output))


def test_cli_one_model() -> None:
    result = CliRunner().invoke(prices, ["claude-opus-4-9-20270101"])
    assert result.exit_code == 0, result.output
    assert "claude-opus-4-8" in result.output and "note" in result.output
    result = CliRunner().invoke(prices, ["claude-opus-4-9", "--json"])
    out = json.loads(result.output)
    assert out["model"]["id"] == "claude-opus-4-8" and out["exact"] is False and out["note"]
    result = CliRunner().invoke(prices, ["gpt-4o"])
    assert result.exit_code != 0


def test_cli_never_prints_zero_for_unknown_prices() -> None:
    result = CliRunner().invoke(prices, ["claude-haiku-5-5"])
    assert result.exit_code == 0
    assert "unknown" in result.output and "0.00" not in result.output


def test_docs_table_is_current() -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "pricing.md"
    assert markdown_table() in doc.read_text(encoding="utf-8")
    assert sync_docs(doc, write=False), (
        "docs/pricing.md is stale: run tokenomy.cli.prices.sync_docs(Path('docs/pricing.md'))"
    )
