"""Reading and checking input files; splitting into batches; the lane rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_support import MODEL, params, write_jsonl

from tokenomy.batch import BatchInputError, Limits, choose_lane, chunk_items, read_input


def test_both_line_shapes_and_stable_generated_ids(tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"custom_id": "a-1", "params": params("one")},
            params("two"),
            "",
            {"params": params("three"), "tokenomy": {"lane": "batch"}},
        ],
    )
    inp = read_input(f)
    assert [it.custom_id for it in inp.items][0] == "a-1"
    gen = [it for it in inp.items if it.generated_id]
    assert [it.line for it in gen] == [2, 4]
    assert all(it.custom_id.startswith(f"line{it.line:07d}-") for it in gen)
    assert read_input(f).items == inp.items  # same file, same ids
    assert inp.blank_lines == 2  # the empty line and the trailing newline
    assert all("tokenomy" not in it.params for it in inp.items)
    assert [it.index for it in inp.items] == [0, 1, 2]


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"custom_id": "ok", "params": params("fine")},
            "{not json",
            {"custom_id": "has space", "params": params("x")},
            {"custom_id": "ok", "params": params("dup")},
            {"custom_id": "m", "params": params("x", model="claude-nope-9")},
            {"custom_id": "s", "params": params("x", stream=True)},
            {"custom_id": "z", "params": {**params("x"), "max_tokens": 0}},
            {"custom_id": "big", "params": params("y" * 3000)},
            "[1, 2]",
            {"custom_id": "t", "params": params("x"), "tokenomy": {"lane": "soon"}},
            {"custom_id": "x" * 65, "params": params("x")},
        ],
    )
    with pytest.raises(BatchInputError) as info:
        read_input(f, limits=Limits(max_bytes=2048))
    problems = info.value.problems
    text = "\n".join(problems)
    for line, needle in [
        (2, "invalid JSON"),
        (3, "custom_id 'has space' is invalid"),
        (4, "already used on line 1"),
        (5, "unknown model 'claude-nope-9'"),
        (6, "params.stream"),
        (7, "params.max_tokens: 0"),
        (8, "over the batch size limit of 2,048 bytes"),
        (9, "not an object"),
        (10, '"tokenomy.lane"'),
        (11, "is invalid"),
    ]:
        assert any(p.startswith(f"line {line}: ") and needle in p for p in problems), (line, needle, text)
    assert not any(p.startswith("line 1:") for p in problems)
    assert "nothing was submitted" in str(info.value)


def test_cache_control_problems_use_the_apis_words(tmp_path: Path) -> None:
    body = params("x")
    body["system"] = [
        {"type": "text", "text": f"s{i}", "cache_control": {"type": "ephemeral"}} for i in range(5)
    ]
    f = write_jsonl(tmp_path / "cc.jsonl", [body])
    with pytest.raises(BatchInputError, match=r"line 1: params: A maximum of 4 blocks with cache_control"):
        read_input(f)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no such file"):
        read_input(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(BatchInputError, match="no requests found"):
        read_input(tmp_path / "empty.jsonl")


def test_chunks_respect_count_and_bytes(tmp_path: Path) -> None:
    rows = [{"custom_id": f"r{i}", "params": params(f"q{i}" + "x" * (i % 7) * 50)} for i in range(103)]
    inp = read_input(write_jsonl(tmp_path / "in.jsonl", rows))
    by_count = list(chunk_items(list(inp.items), Limits(max_requests=10)))
    assert [len(c) for c in by_count] == [10] * 10 + [3]
    limit = 3000
    by_bytes = list(chunk_items(list(inp.items), Limits(max_bytes=limit)))
    assert [it for c in by_bytes for it in c] == list(inp.items)  # order kept, nothing lost
    for c in by_bytes:
        body = json.dumps(
            {"requests": [{"custom_id": it.custom_id, "params": it.params} for it in c]},
            separators=(",", ":"),
        )
        assert len(body.encode()) <= limit
        assert len(c) > 1  # packed, not one per batch


def test_lane_rule() -> None:
    assert choose_lane({"lane": "live"}, "batch", 3600) == "batch"  # only --lane auto reads lines
    assert choose_lane({}, "live", 3600) == "live"
    assert choose_lane({}, "auto", 3600) == "batch"  # nobody declared a wait: a machine reads it later
    assert choose_lane({"lane": "live"}, "auto", 3600) == "live"
    assert choose_lane({"waiting": "person"}, "auto", 3600) == "live"
    assert choose_lane({"waiting": "machine", "deadline_s": 5}, "auto", 3600) == "batch"
    assert choose_lane({"deadline_s": 30}, "auto", 3600) == "live"
    assert choose_lane({"deadline_s": 86400}, "auto", 3600) == "batch"


def test_live_lane_allows_what_batches_refuse(tmp_path: Path) -> None:
    body = {**params("x"), "max_tokens": 0, "tokenomy": {"lane": "live"}}
    f = write_jsonl(tmp_path / "in.jsonl", [body])
    with pytest.raises(BatchInputError):
        read_input(f)
    inp = read_input(f, lane="auto")
    assert inp.items[0].lane == "live" and inp.items[0].model == MODEL
