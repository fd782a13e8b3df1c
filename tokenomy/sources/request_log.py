"""Request logs: JSONL of Messages API ``{request, response}`` pairs → ``Run``s.

This is the shape the gateway writes and the pydantic-ai cassette export uses. A line may carry
``recorded_at`` (ISO 8601) and ``run_id``. Without ``run_id``, file order is time order and a
request joins the run of an earlier request whose whole prompt (same model, tools and system, and
its message list) it extends: compared on canonical blocks from ``parse_request``, not raw JSON,
so whitespace or a string-vs-text-block difference does not split a run. When a line names its
``source_file`` (a recording it came from), linking stays within that recording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from tokenomy.blocks import parse_request
from tokenomy.model import Exactness, Request, Run, Turn, Usage
from tokenomy.sources._lines import MAX_LINE_BYTES, LineStats, iter_lines
from tokenomy.tokens import DEFAULT_COUNTER, tokenizer_for

SOURCE = "request_log"

_EXACT: Mapping[str, Exactness] = {
    "input": "exact",
    "cache_write": "exact",
    "cache_read": "exact",
    "output": "exact",
}
_ESTIMATED: Mapping[str, Exactness] = {
    "input": "estimated",
    "cache_write": "estimated",
    "cache_read": "estimated",
    "output": "estimated",
}


@dataclass(slots=True)
class Loaded:
    """Runs read from request logs, with what was skipped and what the report must say."""

    runs: list[Run] = field(default_factory=list)
    skipped: int = 0
    lines_read: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Group:
    run_id: str
    title: str | None
    path: str
    turns: list[Turn] = field(default_factory=list)


def parse_time(value: Any) -> float | None:
    """Epoch seconds from an ISO 8601 string (naive means UTC) or a number; None otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _output_estimate(response: Mapping[str, Any], model: str) -> int:
    tok = tokenizer_for(model)
    n = 0
    content = response.get("content")
    if isinstance(content, list):
        for blk in content:
            if not isinstance(blk, Mapping):
                continue
            for k in ("text", "thinking"):
                v = blk.get(k)
                if isinstance(v, str):
                    n += DEFAULT_COUNTER.count_text(v, tok)
            if "input" in blk:
                n += DEFAULT_COUNTER.count_text(msgspec.json.encode(blk["input"]).decode(), tok)
    return n


def _turn(line: Mapping[str, Any], body: Mapping[str, Any], req: Request, counts: dict[str, int]) -> Turn:
    response = line.get("response")
    resp: Mapping[str, Any] = response if isinstance(response, Mapping) else {}
    status_v = line.get("status")
    status = int(status_v) if isinstance(status_v, int) and not isinstance(status_v, bool) else 200
    model = str(resp.get("model") or body.get("model") or "")
    common: dict[str, Any] = {
        "model": model,
        "request": req,
        "started_at": parse_time(line.get("recorded_at")),
        "latency_s": _num(line.get("latency_s")),
        "ttft_s": _num(line.get("ttft_s")),
        "request_id": line.get("request_id") if isinstance(line.get("request_id"), str) else None,
        "message_id": resp.get("id") if isinstance(resp.get("id"), str) else None,
        "status": status,
    }
    err = resp.get("error")
    if status >= 400 or resp.get("type") == "error":
        message = err.get("message") if isinstance(err, Mapping) else None
        counts["errors"] += 1
        return Turn(usage=Usage(), error=str(message or f"HTTP {status}"), quality=_EXACT, **common)
    usage = resp.get("usage")
    if isinstance(usage, Mapping):
        u = Usage.from_api(usage)
        return Turn(usage=u, quality=_EXACT, meta={"prompt_tokens_exact": u.prompt_tokens}, **common)
    counts["estimated"] += 1
    u = Usage(input_tokens=req.total_tokens, output_tokens=_output_estimate(resp, model))
    return Turn(usage=u, quality=_ESTIMATED, **common)


def _is_count_tokens(line: Mapping[str, Any]) -> bool:
    endpoint = line.get("endpoint")
    if isinstance(endpoint, str):
        return endpoint == "count_tokens"
    uri = line.get("uri")
    return isinstance(uri, str) and "/count_tokens" in uri


def _link(req: Request, ends: dict[tuple[str, bytes], int]) -> int | None:
    """The group of the latest, longest earlier request whose whole prompt this one extends."""
    blocks = req.blocks
    for i in range(len(blocks) - 1, -1, -1):
        b = blocks[i]
        if b.section != "messages":
            return None  # an earlier request must have sent at least one message
        hit = ends.get((req.model, b.prefix_hash))
        if hit is None:
            continue
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if nxt is None or nxt.path[1] != b.path[1]:
            return hit  # the earlier request ended on a whole message of this one
    return None


def load_request_logs(files: Sequence[Path], *, max_line_bytes: int = MAX_LINE_BYTES) -> Loaded:
    out = Loaded()
    counts = {"estimated": 0, "count_tokens": 0, "errors": 0}
    for f in files:
        _load_file(f, out, counts, max_line_bytes)
    if counts["estimated"]:
        out.notes.append(
            f"{counts['estimated']} request-log responses had no usage: their token counts are estimated "
            "(prompt from the request body, output from the response text)"
        )
    if counts["count_tokens"]:
        out.notes.append(f"{counts['count_tokens']} count_tokens calls (not billed) left out")
    if counts["errors"]:
        out.notes.append(f"{counts['errors']} request-log requests failed (error responses, nothing billed)")
    return out


def _load_file(f: Path, out: Loaded, counts: dict[str, int], max_line_bytes: int) -> None:
    groups: list[_Group] = []
    by_run_id: dict[str, int] = {}
    ends_by_scope: dict[str, dict[tuple[str, bytes], int]] = {}
    stats = LineStats()
    with open(f, "rb") as fh:
        for _, raw in iter_lines(fh, max_line_bytes=max_line_bytes, stats=stats, include_tail=True):
            try:
                line = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                out.skipped += 1
                continue
            body = line.get("request") if isinstance(line, dict) else None
            if not isinstance(body, dict):
                out.skipped += 1
                continue
            out.lines_read += 1
            if _is_count_tokens(line):
                counts["count_tokens"] += 1
                continue
            req = parse_request(body)
            turn = _turn(line, body, req, counts)
            run_id = line.get("run_id")
            scope = line.get("source_file")
            if isinstance(run_id, str) and run_id:
                gi = by_run_id.get(run_id)
                if gi is None:
                    gi = by_run_id[run_id] = len(groups)
                    groups.append(_Group(run_id=run_id, title=None, path=str(f)))
            else:
                key = scope if isinstance(scope, str) else ""
                ends = ends_by_scope.setdefault(key, {})
                hit = _link(req, ends)
                if hit is None:
                    gi = len(groups)
                    groups.append(_Group(run_id=f"{f.stem}#{gi + 1}", title=key or None, path=str(f)))
                else:
                    gi = hit
                if req.blocks:
                    ends[(req.model, req.blocks[-1].prefix_hash)] = gi
            groups[gi].turns.append(turn)
    out.skipped += stats.oversized
    for g in groups:
        out.runs.append(
            Run(
                run_id=g.run_id,
                turns=tuple(g.turns),
                source=SOURCE,
                kind="request_log",
                title=g.title,
                path=g.path,
            )
        )
