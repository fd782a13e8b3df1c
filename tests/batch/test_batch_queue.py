"""``BatchQueue``: futures resolved from batches, flushed by size or by age."""

from __future__ import annotations

import asyncio

import anthropic
import pytest
from batch_support import Emu, FlakyResponder, params

from tokenomy.batch import BatchQueue, BatchRequestError
from tokenomy.errors import InputError

WALL = {"batch_time": "wall", "batch_duration": 0.05, "responses": FlakyResponder()}


@pytest.mark.parametrize("emu", [WALL], indirect=True)
def test_queue_like_an_eval_loop(emu: Emu) -> None:
    client = emu.client()
    with BatchQueue(client, max_batch_size=4, max_age_s=0.05, poll_initial_s=0.02, poll_max_s=0.1) as q:
        futures = [q.create(**params(f"item {i}" + (" FLAKY" if i == 3 else ""))) for i in range(10)]
        with pytest.raises(InputError, match="params.max_tokens"):
            q.create(**{**params("x"), "max_tokens": 0})
    answers = []
    for i, fut in enumerate(futures):
        if i == 3:
            with pytest.raises(BatchRequestError, match="errored: api_error"):
                fut.result()
        else:
            msg = fut.result()
            assert isinstance(msg, anthropic.types.Message)
            assert f"item {i}" in msg.content[0].text  # type: ignore[union-attr]
            assert msg.usage.service_tier == "batch"
            answers.append(msg)
    assert len(q.batch_ids) == 3  # 4 + 4 by size, the last 2 by age or on close
    assert {b.id for b in client.messages.batches.list()} == set(q.batch_ids)


@pytest.mark.parametrize("emu", [WALL], indirect=True)
def test_queue_from_asyncio(emu: Emu) -> None:
    q = BatchQueue(emu.client(), max_batch_size=100, max_age_s=0.02, poll_initial_s=0.02, poll_max_s=0.05)

    async def main() -> list[str]:
        msgs = await asyncio.gather(*(q.acreate(**params(f"a{i}")) for i in range(5)))
        return [m.content[0].text for m in msgs]

    texts = asyncio.run(main())
    q.close()
    assert all(f"a{i}" in t for i, t in enumerate(texts))
    assert len(q.batch_ids) == 1
    with pytest.raises(InputError, match="closed"):
        q.create(**params("late"))
