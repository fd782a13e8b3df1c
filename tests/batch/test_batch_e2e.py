"""End to end against the emulator, the official SDK underneath, batch time virtual."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from batch_support import LONG_SYSTEM, SONNET, Emu, FlakyResponder, params, write_jsonl

from tokenomy.batch import (
    BatchRunner,
    Limits,
    Store,
    SubmitOptions,
    Upstream,
    job_cost_report,
    read_input,
    result_lines,
)
from tokenomy.ledger import connect
from tokenomy.model import Usage
from tokenomy.pricing import cost

DAY = 86400.0


def _runner(emu: Emu, **kw: Any) -> tuple[BatchRunner, Store]:
    store = Store(connect())
    assert emu.clock is not None
    return BatchRunner(Upstream(emu.client(max_retries=2)), store, sleep=emu.clock.advance, **kw), store


@pytest.mark.parametrize(
    "emu", [{"responses": FlakyResponder(), "batch_duration": DAY / 0.99}], indirect=True
)
def test_ten_thousand_requests_split_collected_retried_and_costed(emu: Emu, tmp_path: Path) -> None:
    n = 10_000
    rows = [
        {"custom_id": f"q{i:05d}", "params": params(f"question {i}" + (" FLAKY" if i % 250 == 7 else ""))}
        for i in range(n)
    ]
    f = write_jsonl(tmp_path / "evals.jsonl", rows)
    limits = Limits(max_requests=1500)
    inp = read_input(f, limits=limits)
    assert emu.clock is not None
    start = emu.clock()

    def sleep(seconds: float) -> None:
        emu.clock.advance(seconds)  # type: ignore[union-attr]
        if emu.clock() - start > DAY:  # type: ignore[misc, operator]
            emu.app.batches.duration = 300.0  # retries finish well within the day

    store = Store(connect())
    runner = BatchRunner(Upstream(emu.client(max_retries=2)), store, sleep=sleep)
    opts = SubmitOptions(limits=limits, wait=True, retry=("errored", "expired"), poll_max_s=3600)
    job = runner.run(inp, opts)

    chunks = [c for c in store.chunks(job.id)]
    first = [c for c in chunks if c.attempt == 0]
    retry = [c for c in chunks if c.attempt == 1]
    assert [c.n for c in first] == [1500] * 6 + [1000]
    assert all(c.state == "collected" for c in chunks)
    assert len({c.batch_id for c in chunks}) == len(chunks)
    remote = {b.id for b in emu.client().messages.batches.list(limit=100)}
    assert remote == {c.batch_id for c in chunks}  # nothing submitted twice, nothing extra

    lines = list(result_lines(store, job))
    assert [ln["custom_id"] for ln in lines] == [r["custom_id"] for r in rows]  # complete, in input order
    items = store.items(job.id)
    flaky = {f"q{i:05d}" for i in range(n) if i % 250 == 7}
    first_status = {it.custom_id: it.first_status for it in items if it.attempt == 1}
    assert {c for c, s in first_status.items() if s == "errored"} == flaky
    expired = {c for c, s in first_status.items() if s == "expired"}
    assert expired and len(expired) < n // 20
    assert sum(c.n for c in retry) == len(flaky) + len(expired)
    assert all(ln["status"] == "succeeded" for ln in lines)
    assert all(ln["attempts"] == (2 if ln["custom_id"] in first_status else 1) for ln in lines)
    assert all(ln["usage"]["service_tier"] == "batch" for ln in lines)

    # the cost report is the ledger's usage priced at the batch tier, and says what live would cost
    report = job_cost_report(store, job, inp)
    from_ledger = sum(cost(Usage.from_api(it.usage), it.model, tier="batch").total for it in items)  # type: ignore[arg-type, union-attr]
    assert report.batch.total == pytest.approx(from_ledger)
    assert report.batch.total == pytest.approx(sum(ln["cost"]["total"] for ln in lines))
    assert report.billed_lines == n and report.retried == len(first_status)
    assert report.live_as_written.total == pytest.approx(2 * report.batch.total, rel=1e-9)  # no cache to gain
    assert not report.has_prefix_marks


@pytest.mark.parametrize("emu", [{}], indirect=True)
def test_warm_marks_the_shared_prefix_and_reports_reads(emu: Emu, tmp_path: Path) -> None:
    rows = [params(f"grade answer {i}", model=SONNET, system=LONG_SYSTEM) for i in range(30)]
    rows.append(params("unrelated", model=SONNET))
    inp = read_input(write_jsonl(tmp_path / "grade.jsonl", rows))
    runner, store = _runner(emu)
    job = runner.run(
        inp, SubmitOptions(limits=Limits(max_requests=10), wait=True, warm=True, poll_max_s=3600)
    )
    job = store.job(job.id)
    assert job is not None and job.warm is not None and job.warm_result is not None
    assert job.warm["marked"] == 30
    warm = job.warm_result["requests"][0]
    assert (
        warm["status"] == "succeeded" and warm["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] > 1024
    )
    report = job_cost_report(store, job, inp)
    assert report.cache_read_lines == 30  # every marked request read the warmed prefix
    assert report.usage.cache_read == 30 * warm["usage"]["cache_creation_input_tokens"]
    assert report.has_prefix_marks
    assert report.live_with_prefix_cache.total < report.live_as_written.total
    assert report.actual.total < report.live_with_prefix_cache.total
    assert report.warm.total > 0


@pytest.mark.parametrize("emu", [{}], indirect=True)
def test_lane_auto_sends_waiting_people_live(emu: Emu, tmp_path: Path) -> None:
    rows = [
        {"custom_id": "chat", "params": params("hi"), "tokenomy": {"waiting": "person"}},
        {"custom_id": "nightly", "params": params("summarise"), "tokenomy": {"deadline_s": 86400}},
        {"custom_id": "ui", "params": params("now"), "tokenomy": {"deadline_s": 5}},
        {"custom_id": "plain", "params": params("later")},
    ]
    inp = read_input(write_jsonl(tmp_path / "mixed.jsonl", rows), lane="auto")
    runner, store = _runner(emu)
    job = runner.run(inp, SubmitOptions(lane="auto", wait=True, poll_max_s=3600))
    lines = {ln["custom_id"]: ln for ln in result_lines(store, job)}
    assert {k: v["lane"] for k, v in lines.items()} == {
        "chat": "live",
        "nightly": "batch",
        "ui": "live",
        "plain": "batch",
    }
    assert all(v["status"] == "succeeded" for v in lines.values())
    assert lines["chat"]["usage"]["service_tier"] == "standard"
    assert lines["plain"]["usage"]["service_tier"] == "batch"
    (chunk,) = store.chunks(job.id)
    assert chunk.n == 2
    report = job_cost_report(store, job, inp)
    assert report.live_lane.total > 0 and report.batch.total > 0


@pytest.mark.parametrize("emu", [{}], indirect=True)
def test_resubmitting_a_finished_file_resumes_instead(emu: Emu, tmp_path: Path) -> None:
    inp = read_input(write_jsonl(tmp_path / "in.jsonl", [params(f"q{i}") for i in range(5)]))
    runner, store = _runner(emu)
    job = runner.run(inp, SubmitOptions(wait=True, poll_max_s=3600))
    again = runner.run(read_input(tmp_path / "in.jsonl"), SubmitOptions(wait=True, poll_max_s=3600))
    assert again.id == job.id
    assert len(list(emu.client().messages.batches.list())) == 1
    fresh = runner.run(inp, SubmitOptions(wait=True, new_job=True, poll_max_s=3600))
    assert fresh.id != job.id and len(list(emu.client().messages.batches.list())) == 2
