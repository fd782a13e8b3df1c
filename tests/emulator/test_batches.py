"""Message Batches through the SDK: create → poll → results, cancel, delete, limits."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from emu_support import MODEL, Emu, system_blocks

BATCH = {"batch_duration": 300.0}


def _params(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 50,
        "system": system_blocks(),
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


@pytest.mark.parametrize("emu", [BATCH], indirect=True)
def test_create_poll_results(emu: Emu) -> None:
    c = emu.client()
    live = c.messages.create(**_params("warm the cache"))
    batch = c.messages.batches.create(
        requests=[
            {"custom_id": "one", "params": _params("first")},  # type: ignore[typeddict-item]
            {"custom_id": "two", "params": _params("second")},  # type: ignore[typeddict-item]
            {"custom_id": "bad-model", "params": {**_params("x"), "model": "claude-nope"}},  # type: ignore[typeddict-item]
        ]
    )
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 3
    assert batch.results_url is None
    emu.clock.advance(100)
    assert c.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    emu.clock.advance(250)
    done = c.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.ended_at is not None
    assert (
        done.request_counts.succeeded == 2
        and done.request_counts.errored == 1
        and done.request_counts.processing == 0
    )
    results = {r.custom_id: r.result for r in c.messages.batches.results(batch.id)}
    assert results["bad-model"].type == "errored"
    ok = results["one"]
    assert ok.type == "succeeded"
    assert ok.message.usage.service_tier == "batch"
    # the live call's write is read by the batch (same workspace and model)
    assert ok.message.usage.cache_read_input_tokens == live.usage.cache_creation_input_tokens
    assert [b.id for b in c.messages.batches.list()] == [batch.id]
    c.messages.batches.delete(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        c.messages.batches.retrieve(batch.id)


@pytest.mark.parametrize("emu", [BATCH], indirect=True)
def test_requests_in_one_batch_do_not_read_each_other(emu: Emu) -> None:
    c = emu.client()
    batch = c.messages.batches.create(
        requests=[{"custom_id": f"r{i}", "params": _params(f"q{i}")} for i in range(3)]  # type: ignore[misc]
    )
    emu.clock.advance(301)
    results = list(c.messages.batches.results(batch.id))
    assert all(r.result.message.usage.cache_read_input_tokens == 0 for r in results)  # type: ignore[union-attr]
    assert all(r.result.message.usage.cache_creation_input_tokens > 0 for r in results)  # type: ignore[union-attr]


@pytest.mark.parametrize("emu", [BATCH], indirect=True)
def test_cancel_and_expire(emu: Emu) -> None:
    c = emu.client()
    batch = c.messages.batches.create(
        requests=[{"custom_id": f"r{i}", "params": _params(f"q{i}")} for i in range(4)]  # type: ignore[misc]
    )
    emu.clock.advance(160)  # two of four are done
    with pytest.raises(anthropic.BadRequestError):
        c.messages.batches.delete(batch.id)
    canceling = c.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = c.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.succeeded == 2 and ended.request_counts.canceled == 2
    kinds = sorted(r.result.type for r in c.messages.batches.results(batch.id))
    assert kinds == ["canceled", "canceled", "succeeded", "succeeded"]


@pytest.mark.parametrize("emu", [{"batch_duration": 2 * 86400.0}], indirect=True)
def test_batch_expires_after_24_hours(emu: Emu) -> None:
    c = emu.client()
    batch = c.messages.batches.create(
        requests=[{"custom_id": f"r{i}", "params": _params("q")} for i in range(4)]
    )  # type: ignore[misc]
    emu.clock.advance(25 * 3600)  # requests finish at 12 h, 24 h, 36 h, 48 h; the batch expires at 24 h
    ended = c.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.expired == 2
    assert ended.request_counts.succeeded == 2


def test_batch_validation(emu: Emu) -> None:
    c = emu.client()
    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        c.messages.batches.create(requests=[{"custom_id": "has space", "params": _params("x")}])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError, match="unique"):
        c.messages.batches.create(requests=[{"custom_id": "a", "params": _params("x")}] * 2)  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError, match="stream"):
        c.messages.batches.create(requests=[{"custom_id": "a", "params": _params("x", stream=True)}])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError, match="at least 1"):
        c.messages.batches.create(requests=[])
    with pytest.raises(anthropic.NotFoundError):
        c.messages.batches.retrieve("msgbatch_nope")
    # batches are per workspace (API key)
    batch = c.messages.batches.create(requests=[{"custom_id": "a", "params": _params("x")}])  # type: ignore[list-item]
    with pytest.raises(anthropic.NotFoundError):
        emu.client("sk-other").messages.batches.retrieve(batch.id)
