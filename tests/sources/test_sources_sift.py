"""The line sift (``tokenomy.sources._sift``): the C code against a model of its rule, and the
scan's results with the sift against the scan without it, on real transcripts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenomy.sources import _sift, claude_code, load_runs, load_summaries
from tokenomy.sources._sift import MAX_PREFIX, NATIVE, sift_py

SAMPLES = ("claude-code-sniffly", "claude-code-spotter")


def _compact(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ---- a model of the C rule, written for clarity: one byte at a time ----


def _skim_end(line: bytes, at: int) -> int | None:
    """Index of the ``]`` closing the array at ``line[at]``; None if unbalanced or cut short."""
    stack: list[int] = []
    i = at
    while i < len(line):
        c = line[i]
        if c == 0x22:  # a string: to the next quote not escaped
            i += 1
            while i < len(line) and line[i] != 0x22:
                i += 2 if line[i] == 0x5C else 1
            if i >= len(line):
                return None
        elif c in b"[{":
            if len(stack) == 64:
                return None
            stack.append(c)
        elif c in b"]}":
            if not stack or stack.pop() != (0x7B if c == 0x7D else 0x5B):
                return None
            if not stack:
                return i
        i += 1
    return None


def _first_opener(line: bytes, start: int, cap: int) -> int:
    for i in range(start, cap):
        if line[i] in b"{[":
            return i
    return cap


def _model_line(line: bytes, keep_content: bool) -> tuple[bytes | None, bool]:
    """What the C sift makes of one line (no newline): its replacement (None: dropped), and
    whether the replacement ends the line (a cut user line gets its own newline)."""
    body = line.rstrip(b" \t\r")
    if len(line) < 2 or line[:1] != b"{" or len(body) < 2 or body[-1:] != b"}":
        return line, False
    cap = min(1 + MAX_PREFIX, len(line))
    opener = _first_opener(line, 1, cap)
    m = line.find(b'"type":"', 1, opener)
    if m >= 0:
        v = m + 8
        glued = re.search(rb"\}[ \t\r]*\{", line) is not None
        if line.startswith(b'progress"', v):
            return (line, False) if glued else (None, False)
        if not keep_content and line.startswith(b'user"', v):
            return (line, False) if glued else (line[: v + 5] + b"}", True)
    if keep_content or opener >= cap or line[opener] != 0x7B or not line[:opener].endswith(b'"message":'):
        return line, False
    if opener < 10:
        return line, False
    mcap = min(opener + 1 + MAX_PREFIX, len(line))
    c = _first_opener(line, opener + 1, mcap)
    if c >= mcap or line[c] != 0x5B or not line[opener + 1 : c].endswith(b'"content":') or c - opener <= 10:
        return line, False
    end = _skim_end(line, c)
    if end is None or end == c + 1:
        return line, False
    return line[: c + 1] + line[end:], False


def _model(block: bytes, keep_content: bool) -> tuple[bytes, int]:
    out: list[bytes] = []
    dropped = 0
    parts = block.split(b"\n")
    for k, line in enumerate(parts):
        last = k == len(parts) - 1
        if last and not line:
            break
        new, own_newline = _model_line(line, keep_content)
        if new is None:
            dropped += 1
            continue
        out.append(new + (b"\n" if own_newline or not last else b""))
    return b"".join(out), dropped


# ---- lines that look like a transcript's, and ways to damage them ----

_text = st.text(alphabet=st.sampled_from('ab "\\{}[]:,\u00e9\U0001f600\tx'), max_size=12)
_plain = st.text(alphabet="ab/._-", max_size=8)
_meta = st.fixed_dictionaries(  # mostly plain, as real ones are; sometimes with brackets in a string
    {
        "parentUuid": st.none() | _plain,
        "isSidechain": st.booleans(),
        "cwd": _plain | _text,
        "sessionId": _plain,
    }
)
_blocks = st.lists(
    st.one_of(
        st.fixed_dictionaries({"type": st.just("text"), "text": _text}),
        st.fixed_dictionaries(
            {
                "type": st.just("tool_use"),
                "name": _text,
                "input": st.dictionaries(_text, _text | st.lists(_text)),
            }
        ),
    ),
    min_size=1,
    max_size=3,
) | st.just([])


@st.composite
def _line(draw: st.DrawFn) -> bytes:
    meta = draw(_meta)
    kind = draw(st.sampled_from(["progress", "user", "assistant", "system", "summary", "other"]))
    if kind == "assistant":
        msg = {
            "id": draw(_plain | _text),
            "model": "claude-x",
            "content": draw(_blocks),
            "usage": {"output_tokens": 3},
        }
        obj = {**meta, "message": msg, "requestId": draw(_text), "type": "assistant"}
    elif kind == "user":
        obj = {**meta, "type": "user", "message": {"role": "user", "content": draw(_blocks | _text)}}
    elif kind == "progress":
        obj = {**meta, "type": "progress", "data": {"out": draw(_text)}}
    else:
        obj = {**meta, "type": kind, "summary": draw(_text)}
    text = _compact(obj).encode()
    damage = draw(st.sampled_from(["none"] * 6 + ["cut", "glue", "glue ", "space", "crlf", "lead", "nested"]))
    if damage == "cut":
        text = text[: draw(st.integers(1, max(1, len(text) - 1)))]
    elif damage.startswith("glue"):
        sep = draw(st.sampled_from([b" ", b"\t", b"\r", b" \t"])) if damage == "glue " else b""
        text += sep + _compact({"type": "assistant", "message": {"content": [], "usage": {}}}).encode()
    elif damage == "space":
        text += b"  "
    elif damage == "crlf":
        text += b"\r"
    elif damage == "lead":
        text = b" " + text
    elif damage == "nested":
        text = b'{"x":{"type":"progress"},' + text[1:]
    return text


_blocks_of_lines = st.lists(_line(), max_size=8).map(lambda ls: b"\n".join(ls)) | st.binary(max_size=64)


@pytest.mark.skipif(NATIVE is None, reason="the C sift is not built")
@settings(max_examples=400, deadline=None)
@given(block=_blocks_of_lines, keep=st.booleans(), newline=st.booleans())
def test_native_sift_follows_its_rule(block: bytes, keep: bool, newline: bool) -> None:
    block += b"\n" if newline else b""
    assert NATIVE is not None
    assert NATIVE(block, keep) == _model(block, keep)


@settings(max_examples=300, deadline=None)
@given(block=_blocks_of_lines, keep=st.booleans())
def test_both_sifts_decode_to_the_same_lines(block: bytes, keep: bool) -> None:
    """Whatever either sift leaves decodes as the whole block does, dropped lines aside."""
    block += b"\n"
    dec = claude_code._DECODER
    try:
        whole = [x for x in dec.decode_lines(block) if x.type != "progress"]
    except (msgspec.DecodeError, UnicodeDecodeError):
        return  # the scan reads such a block line by line, whole
    for sift in (sift_py, NATIVE):
        if sift is None:
            continue
        out, _ = sift(block, keep)
        got = [x for x in dec.decode_lines(out) if x.type != "progress"]
        strip = {"message"} if not keep else set()
        assert [_fields(x, strip if x.type == "user" else set()) for x in got] == [
            _fields(x, strip if x.type == "user" else set()) for x in whole
        ]


def _fields(line: Any, leave: set[str]) -> dict[str, Any]:
    return {
        k: v
        for k, v in msgspec.structs.asdict(line).items()
        if k not in leave and k != "isVisibleInTranscriptOnly"
    }


def test_the_native_sift_is_built() -> None:
    """``make install`` compiles it; without it a scan falls back to the (slower) reference."""
    assert NATIVE is not None, "tokenomy.sources._csift is missing: run `make install` (needs a C compiler)"


def _runs(paths: list[Path]) -> list[Any]:
    """What a scan yields, both ways: every request's view (user content kept: only progress lines
    sifted) and the report's (user lines cut, assistant content skimmed), runs and sums."""
    out: list[Any] = []
    for with_requests in (True, False):
        res = load_runs(paths, use_index=False, with_requests=with_requests)
        out += [(r.run_id, r.kind, r.parent_id, r.project, r.title, dict(r.meta), r.turns) for r in res.runs]
        out += [res.skipped_lines, res.notes]
    summed = load_summaries(paths, use_index=False)
    out += [
        (x.run.run_id, x.run.project, x.run.title, dict(x.run.meta), x.coarse, x.aggs) for x in summed.sums
    ]
    return out + [summed.skipped_lines, summed.notes]


@pytest.mark.parametrize("sample", SAMPLES)
def test_scans_give_the_same_runs_with_and_without_the_sift(
    workloads: Path, sample: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [workloads / sample]
    sifted = _runs(paths)
    monkeypatch.setattr(claude_code, "sift", sift_py)
    assert _runs(paths) == sifted
    monkeypatch.setattr(claude_code, "sift", lambda block, keep: (block, 0))
    assert _runs(paths) == sifted


def test_a_glued_line_keeps_both_objects(tmp_path: Path) -> None:
    """Two objects written back to back on one line: the progress one must not take the
    assistant one with it."""
    assistant = _compact(
        {
            "sessionId": "s",
            "message": {
                "id": "m1",
                "model": "claude-sonnet-4-5",
                "content": [{"type": "text", "text": "}{"}],
                "usage": {"input_tokens": 1, "output_tokens": 2},
            },
            "requestId": "r1",
            "type": "assistant",
            "timestamp": "2025-06-01T10:00:00Z",
        }
    )
    progress = _compact({"sessionId": "s", "type": "progress", "data": {}})
    user = _compact({"sessionId": "s", "type": "user", "message": {"role": "user", "content": "hi"}})
    f = tmp_path / "s.jsonl"
    f.write_text(
        progress + assistant + "\n" + user + assistant.replace("m1", "m2").replace("r1", "r2") + "\n"
    )
    (run,) = load_runs([f], use_index=False).runs
    assert [t.message_id for t in run.turns] == ["m1", "m2"]


def test_a_user_line_cut_short_is_still_counted_as_corrupt(tmp_path: Path) -> None:
    user = _compact({"sessionId": "s", "type": "user", "message": {"role": "user", "content": "hello"}})
    progress = _compact({"sessionId": "s", "type": "progress", "data": {"x": 1}})
    f = tmp_path / "s.jsonl"
    f.write_text(user[:-9] + "\n" + progress[:-3] + "\n" + user + "\n")
    res = load_runs([f], use_index=False)
    assert res.skipped_lines == 2


def test_meta_comes_from_cut_user_lines(tmp_path: Path) -> None:
    """The session, cwd, version and branch of a user line survive the cut."""
    first = {"sessionId": "s", "cwd": "/first", "version": "1.0.0", "gitBranch": "a"}
    last = {"sessionId": "s", "cwd": "/later", "version": "2.0.0", "gitBranch": "b"}
    assistant = {
        "message": {"id": "m", "model": "claude-sonnet-4-5", "content": [], "usage": {"output_tokens": 1}},
        "requestId": "r",
        "type": "assistant",
    }
    f = tmp_path / "s.jsonl"
    f.write_text(
        "\n".join(
            [
                _compact({**first, "type": "user", "message": {"role": "user", "content": "x"}}),
                _compact(assistant),
                _compact({**last, "type": "user", "message": {"role": "user", "content": "y"}}),
            ]
        )
        + "\n"
    )
    (run,) = load_runs([f], use_index=False).runs
    assert run.project == "/first"
    assert run.meta["version"] == "2.0.0" and run.meta["git_branch"] == "b"


def test_without_the_native_sift_the_reference_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import importlib

    real_import = builtins.__import__

    def no_native(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "tokenomy.sources._csift":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_native)
    try:
        fresh = importlib.reload(_sift)
        assert fresh.NATIVE is None and fresh.sift is fresh.sift_py
    finally:
        monkeypatch.undo()
        importlib.reload(_sift)
