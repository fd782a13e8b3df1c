"""Compaction through the same client: the emulator's scripted answer stands in for the summary."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import anthropic
from _ctx_agent import body

from tokenomy.blocks import parse_request
from tokenomy.context.compact import (
    SUMMARY_HEADER,
    CompactOptions,
    CompactState,
    CompactTransform,
    compact_body,
    make_summarizer,
    render_transcript,
)
from tokenomy.testing import emulator_server

SUMMARY = (
    "Decisions: patch the parser. Findings: test-3 fails on a missing ';' in src/parser.c:412. "
    "Open questions: none. File states: src/parser.c edited at line 412."
)
FORCE = CompactOptions(keep_last=4, trigger_tokens=1)  # past the hard trigger: compact now


def test_compaction_calls_the_small_model_through_the_client(tmp_path: Path) -> None:
    script = tmp_path / "turns.json"
    script.write_text(json.dumps([SUMMARY] + ["Continuing."] * 40))
    src = body(12)
    before = copy.deepcopy(src)
    with emulator_server(responses=f"script:{script}") as (url, _app):
        client = anthropic.Anthropic(base_url=url, api_key="test-key")
        try:
            _check_compaction(client, src, before)
        finally:
            client.close()


def _check_compaction(client: anthropic.Anthropic, src: dict, before: dict) -> None:  # type: ignore[type-arg]
    state = CompactState()
    out, edits = compact_body(src, state, summarize=make_summarizer(client), options=FORCE, at=0.0)
    assert src == before
    assert len(edits) == 1 and state.compactions == 1
    edit = edits[0]
    assert edit.tokens_after < edit.tokens_before / 2
    msgs = out["messages"]
    assert msgs[0] == src["messages"][0]  # the task stays verbatim (and cached)
    assert msgs[1]["content"][0]["text"] == SUMMARY_HEADER + SUMMARY
    assert msgs[2]["role"] == "assistant" and msgs[2:] == src["messages"][edit.cut :]
    assert sum(1 for m in msgs if m["role"] == "user" and isinstance(m["content"], list)) == 1 + 4
    # The compacted body is a valid request: the same client sends it.
    reply = client.messages.create(**out)
    assert reply.content[0].type == "text"
    # A later request of the client's full history gets the same summary, no new call.
    later, again = compact_body(body(13), state, summarize=make_summarizer(client), options=CompactOptions(keep_last=4, trigger_tokens=10**9, aware=False), at=10.0)  # fmt: skip
    assert again == [] and later["messages"][:3] == msgs[:3]
    assert later["messages"][-1] == body(13)["messages"][-1]


def test_a_failed_summary_leaves_the_request_alone() -> None:
    def broken(messages):  # type: ignore[no-untyped-def]
        raise RuntimeError("upstream down")

    state = CompactState()
    out, edits = compact_body(body(12), state, summarize=broken, options=FORCE, at=0.0)
    assert edits == [] and out["messages"] == body(12)["messages"]
    assert state.last_error == "RuntimeError: upstream down"


def test_a_changed_history_drops_the_summary() -> None:
    state = CompactState()
    compact_body(body(12), state, summarize=lambda m: "s", options=FORCE, at=0.0)
    other = body(12, result_words=50)
    out, _ = compact_body(
        other, state, summarize=lambda m: "t", options=CompactOptions(trigger_tokens=10**9), at=1.0
    )
    assert state.summary is None and out["messages"] == other["messages"]


def test_short_runs_and_odd_bodies_are_not_compacted() -> None:
    for b in (
        body(3),
        {"model": "claude-sonnet-4-6", "messages": []},
        {**body(12), "messages": [{"role": "assistant", "content": "hi"}]},
    ):
        out, edits = compact_body(b, CompactState(), summarize=lambda m: "s", options=FORCE, at=0.0)
        assert edits == []


def test_transcript_renders_tool_calls_and_results_as_text() -> None:
    text = render_transcript(body(2)["messages"])
    assert "[called bash(" in text and "[tool result]" in text and text.startswith("USER: Fix the failing")


def test_simulated_compaction_bills_the_summary_call_on_the_small_model() -> None:
    tr = CompactTransform(FORCE)
    req = parse_request(body(12))
    out, side = tr.transform(req, run_id="r", at=0.0)
    assert len(side) == 1
    call, summary_tokens = side[0]
    assert call.model == "claude-haiku-4-5"
    assert call.total_tokens > 0.6 * (req.total_tokens - parse_request(body(4)).total_tokens)
    assert summary_tokens == FORCE.summary_tokens(call.total_tokens)
    summary_block = next(b for b in out.blocks if b.path[:2] == ("messages", 1))
    assert summary_block.tokens == summary_tokens
    assert out.total_tokens < req.total_tokens
    # The next turn re-uses the summary: same prefix bytes, no new call.
    tr.options = CompactOptions(keep_last=4, aware=False)
    out2, side2 = tr.transform(parse_request(body(13)), run_id="r", at=5.0)
    assert list(side2) == []
    assert out2.blocks[summary_block.index].prefix_hash == summary_block.prefix_hash
