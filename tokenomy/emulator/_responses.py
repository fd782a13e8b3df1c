"""Where the emulator's assistant turns come from: ``echo``, ``script:FILE``, ``replay:FILE``.

- ``echo``: deterministic text derived from the request's last user turn.
- ``script:FILE``: canned assistant turns (text, tool_use, ...), the k-th for a conversation
  that already holds k assistant turns, so a scripted agent loop runs without any state here.
- ``replay:FILE``: the recorded assistant turns of real runs. An agent that re-sends them
  reproduces the recorded requests byte for byte. Accepted files (detected per line):

  * a request log (JSONL of ``{"request": body, "response": message}``, e.g. the gateway's
    full-body log or ``workloads/pydantic-ai-anthropic-cassettes``): matched on what the model
    sees in ``messages`` (``cache_control`` markers and JSON whitespace ignored), so a policy
    that moves breakpoints still replays;
  * an OpenHands ``output.jsonl`` (one trajectory per line, ``history`` events): read with
    ``tokenomy.sources`` (the very conversion ``report``/``simulate`` use), so each converted
    request is answered with the assistant content its successor holds, matched like a
    request log; re-sending the turns rebuilds the converted requests exactly;
  * a Claude Code session JSONL: assistant lines merged by ``message.id``, sidechains skipped;
  * a JSON list (or JSONL) of assistant turns in the script format.

  Runs are told apart by their first user text; with one run in the file, position alone
  decides (the k-th assistant turn for a request holding k of them).

A turn in the script format is a string (one text block), a list of content blocks, or an
object with ``content`` (string or list) and optional ``stop_reason``; a full Message works.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tokenomy.blocks import block_canonical, canonical_json
from tokenomy.errors import ApiRequestError, InputError, UserError

__all__ = ["EchoResponder", "ReplayResponder", "Reply", "Responder", "ScriptResponder", "load_responder"]

ECHO_WORDS = 48


@dataclass(frozen=True, slots=True)
class Reply:
    """One assistant turn before it is cut to ``max_tokens`` and counted."""

    content: tuple[Mapping[str, Any], ...]
    stop_reason: str | None = None


class Responder(Protocol):
    def reply(self, body: Mapping[str, Any]) -> Reply: ...


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for blk in content:
            if not isinstance(blk, Mapping):
                continue
            if blk.get("type") == "text":
                parts.append(str(blk.get("text", "")))
            elif blk.get("type") == "tool_result":
                parts.append(_text_of(blk.get("content", "")))
        return " ".join(p for p in parts if p)
    return ""


def _assistant_turns(body: Mapping[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    n = 0
    prev = ""
    for m in messages:
        role = m.get("role") if isinstance(m, Mapping) else None
        if role == "assistant" and prev != "assistant":
            n += 1
        if role in ("user", "assistant"):
            prev = str(role)
    # a trailing assistant message is a prefill, not a finished turn
    if isinstance(messages, list) and messages and isinstance(messages[-1], Mapping):
        if messages[-1].get("role") == "assistant":
            n -= 1
    return max(n, 0)


def _first_user_text(messages: Any) -> str:
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, Mapping) and m.get("role") == "user":
                return _text_of(m.get("content"))
    return ""


def _run_key(text: str) -> str:
    return hashlib.blake2b(" ".join(text.split()).encode(), digest_size=12).hexdigest()


def conversation_key(messages: Any) -> str:
    """What the model sees in ``messages``: roles and canonical blocks, no cache markers."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(messages, list):
        for m in messages:
            if not isinstance(m, Mapping):
                continue
            h.update(str(m.get("role", "")).encode() + b"\x00")
            content = m.get("content")
            if isinstance(content, str):
                h.update(b"text\x00" + canonical_json({"text": content}) + b"\x01")
            elif isinstance(content, list):
                for blk in content:
                    if isinstance(blk, Mapping):
                        kind, data = block_canonical(blk)
                        h.update(kind.encode() + b"\x00" + data + b"\x01")
            h.update(b"\x02")
    return h.hexdigest()


class EchoResponder:
    """Deterministic text from the input: the first words of the last user turn, quoted back."""

    def reply(self, body: Mapping[str, Any]) -> Reply:
        messages = body.get("messages")
        last = ""
        if isinstance(messages, list):
            for m in reversed(messages):
                if isinstance(m, Mapping) and m.get("role") == "user":
                    last = _text_of(m.get("content"))
                    break
        words = last.split()
        quoted = " ".join(words[:ECHO_WORDS]) + (" ..." if len(words) > ECHO_WORDS else "")
        n = len(messages) if isinstance(messages, list) else 0
        text = f"Echo (turn {_assistant_turns(body) + 1}, {n} messages): {quoted}" if quoted else "Echo."
        return Reply(content=({"type": "text", "text": text},))


def _turn(item: Any, where: str) -> Reply:
    """One assistant turn in the script format."""
    stop: str | None = None
    content: Any = item
    if isinstance(item, Mapping):
        if "message" in item and isinstance(item["message"], Mapping):  # {"message": {...}} wrappers
            item = item["message"]
        content = item.get("content")
        sr = item.get("stop_reason")
        stop = sr if isinstance(sr, str) else None
    if isinstance(content, str):
        return Reply(content=({"type": "text", "text": content},), stop_reason=stop)
    if isinstance(content, list) and all(
        isinstance(b, Mapping) and isinstance(b.get("type"), str) for b in content
    ):
        blocks = tuple(_with_tool_id(dict(b), where, i) for i, b in enumerate(content))
        return Reply(content=blocks, stop_reason=stop)
    raise InputError(
        f"{where}: an assistant turn must be a string, a list of content blocks, or an object with "
        "'content'; fix that entry of the file"
    )


def _with_tool_id(block: dict[str, Any], where: str, index: int) -> dict[str, Any]:
    if block.get("type") in ("tool_use", "server_tool_use") and not block.get("id"):
        seed = f"{where}:{index}:{canonical_json(block).decode()}".encode()
        block["id"] = "toolu_" + hashlib.blake2b(seed, digest_size=12).hexdigest()
    if block.get("type") == "tool_use" and not isinstance(block.get("input"), Mapping):
        block["input"] = {}
    return block


def _read_items(path: Path) -> list[Any]:
    """A JSON document (a list, or an object with ``turns``) or JSON lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}; check the path after script:/replay:") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        return list(doc)
    items: list[Any] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as e:
            if lineno == 1 and stripped.startswith("{"):
                try:  # one JSON object spread over several lines
                    doc = json.loads(text)
                except json.JSONDecodeError:
                    raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                turns = doc.get("turns") if isinstance(doc, Mapping) else None
                return list(turns) if isinstance(turns, list) else [doc]
            raise InputError(
                f"{path}:{lineno}: not valid JSON ({e.msg}); expected one JSON object per line"
            ) from None
    if len(items) == 1 and isinstance(items[0], Mapping) and isinstance(items[0].get("turns"), list):
        return list(items[0]["turns"])
    return items


class ScriptResponder:
    """The k-th scripted turn for a conversation that already holds k assistant turns."""

    def __init__(self, turns: Sequence[Reply], source: str) -> None:
        if not turns:
            raise InputError(f"{source}: the script holds no assistant turns; add at least one")
        self.turns = tuple(turns)
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptResponder:
        p = Path(path)
        items = _read_items(p)
        return cls([_turn(item, f"{p}: turn {i}") for i, item in enumerate(items)], str(p))

    def reply(self, body: Mapping[str, Any]) -> Reply:
        k = _assistant_turns(body)
        if k >= len(self.turns):
            raise ApiRequestError(
                f"script {self.source}: the conversation already holds {k} assistant turns and the script "
                f"has {len(self.turns)}; add turns to the script or start a new conversation"
            )
        return self.turns[k]


class ReplayResponder:
    """Recorded turns: by exact conversation state first, then by run and position."""

    def __init__(self, exact: Mapping[str, Reply], runs: Mapping[str, Sequence[Reply]], source: str) -> None:
        if not exact and not any(runs.values()):
            raise InputError(
                f"{source}: no recorded assistant turns found; expected a request log, an OpenHands "
                "output.jsonl, a Claude Code session or a list of turns (see docs/emulator.md)"
            )
        self.exact = dict(exact)
        self.runs = {k: tuple(v) for k, v in runs.items() if v}
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path) -> ReplayResponder:
        p = Path(path)
        items = _read_items(p)
        exact: dict[str, Reply] = {}
        runs: dict[str, list[Reply]] = {}
        claude_code: list[Mapping[str, Any]] = []
        plain: list[Reply] = []
        openhands: list[Mapping[str, Any]] = []
        for i, item in enumerate(items):
            where = f"{p}: entry {i}"
            if isinstance(item, Mapping) and isinstance(item.get("request"), Mapping):
                _add_request_log(item, exact, where)
            elif isinstance(item, Mapping) and isinstance(item.get("history"), list):
                openhands.append(item)
            elif (
                isinstance(item, Mapping)
                and "sessionId" in item
                or (
                    isinstance(item, Mapping)
                    and item.get("type") in ("user", "assistant", "summary", "system")
                    and "message" in item
                )
            ):
                claude_code.append(item)
            elif isinstance(item, Mapping) and item.get("type") in (
                "file-history-snapshot",
                "progress",
                "summary",
            ):
                continue
            else:
                plain.append(_turn(item, where))
        if openhands:
            runs.update(_openhands_runs(p, openhands, exact))
        if claude_code:
            runs.update(_claude_code_runs(claude_code))
        if plain:
            runs[""] = plain
        return cls(exact, runs, str(p))

    def reply(self, body: Mapping[str, Any]) -> Reply:
        messages = body.get("messages")
        if self.exact:
            hit = self.exact.get(conversation_key(messages))
            if hit is not None:
                return hit
        run = self.runs.get(_run_key(_first_user_text(messages)))
        if run is None and len(self.runs) == 1:
            run = next(iter(self.runs.values()))
        if run is not None:
            k = _assistant_turns(body)
            if k < len(run):
                return run[k]
            raise ApiRequestError(
                f"replay {self.source}: the conversation already holds {k} assistant turns and the "
                f"recorded run has {len(run)}; the replay is over"
            )
        raise ApiRequestError(
            f"replay {self.source}: no recorded turn matches this request (its messages differ from every "
            "recorded request, and its first user message starts no recorded run)"
        )


def _add_request_log(item: Mapping[str, Any], exact: dict[str, Reply], where: str) -> None:
    if item.get("endpoint") not in (None, "messages"):
        return
    response = item.get("response")
    if not isinstance(response, Mapping) or not isinstance(response.get("content"), list):
        return
    exact[conversation_key(item["request"].get("messages"))] = _turn(response, where)


def _openhands_runs(
    path: Path, lines: Sequence[Mapping[str, Any]], exact: dict[str, Reply]
) -> dict[str, list[Reply]]:
    """OpenHands trajectories as ``tokenomy.sources`` converts them: turn *i*'s request is
    answered with the assistant blocks turn *i+1*'s request adds after it (the last turn, which
    has no successor, with its recorded response run through the same conversion)."""
    from tokenomy.sources import load_runs

    responses: dict[str, Mapping[str, Any]] = {}
    for line in lines:
        for event in line["history"]:
            meta = event.get("tool_call_metadata") if isinstance(event, Mapping) else None
            response = meta.get("model_response") if isinstance(meta, Mapping) else None
            if isinstance(response, Mapping) and response.get("id"):
                responses.setdefault(str(response["id"]), response)
    runs: dict[str, list[Reply]] = {}
    for run in load_runs([path], source="openhands", use_index=False).runs:
        messages = [
            t.request.body.get("messages") if t.request and t.request.body else None for t in run.turns
        ]
        replies: list[Reply] = []
        for i, turn in enumerate(run.turns):
            before = messages[i]
            if not isinstance(before, list):
                continue
            after = messages[i + 1] if i + 1 < len(run.turns) else None
            if isinstance(after, list):
                blocks = _added_assistant_blocks(before, after)
            else:
                response = responses.get(turn.message_id or "")
                blocks = _response_blocks(response) if response is not None else []
            reply = Reply(
                content=tuple(blocks),
                stop_reason="tool_use" if any(b.get("type") == "tool_use" for b in blocks) else "end_turn",
            )
            exact.setdefault(conversation_key(before), reply)
            replies.append(reply)
        if replies and isinstance(messages[0], list):
            runs[_run_key(_first_user_text(messages[0]))] = replies
    return runs


def _response_blocks(response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """One recorded OpenAI-style response as the assistant blocks the sources' converter makes
    of it (the converter's own function: one rule for both)."""
    from tokenomy.sources.trajectories import _add_assistant, _Conversation

    conv = _Conversation()
    _add_assistant(conv, response)
    return [b for m in conv.messages for b in m["content"]]


def _added_assistant_blocks(before: list[Any], after: list[Any]) -> list[Mapping[str, Any]]:
    """The assistant blocks ``after`` holds beyond ``before`` (which it extends): the reply the
    recorded agent got. A trailing assistant message in ``before`` is continued, not repeated."""
    start, skip = len(before), 0
    if before and isinstance(before[-1], Mapping) and before[-1].get("role") == "assistant":
        start, skip = start - 1, len(before[-1].get("content") or ())
    blocks: list[Mapping[str, Any]] = []
    for msg in after[start:]:
        if not isinstance(msg, Mapping) or msg.get("role") != "assistant":
            break
        content = msg.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}] if content else []
        blocks.extend(b for b in list(content or ())[skip:] if isinstance(b, Mapping))
        skip = 0
    return blocks


def _claude_code_runs(lines: list[Mapping[str, Any]]) -> dict[str, list[Reply]]:
    """Claude Code transcripts: merge assistant lines by message id, one run per session."""
    sessions: dict[str, list[Mapping[str, Any]]] = {}
    for line in lines:
        if line.get("isSidechain"):
            continue
        sessions.setdefault(str(line.get("sessionId", "")), []).append(line)
    out: dict[str, list[Reply]] = {}
    for entries in sessions.values():
        first_user = ""
        turns: list[tuple[str, list[Mapping[str, Any]], str | None]] = []
        for line in entries:
            msg = line.get("message")
            if not isinstance(msg, Mapping):
                continue
            if line.get("type") == "user" and not first_user:
                first_user = _text_of(msg.get("content"))
            if line.get("type") != "assistant" or not isinstance(msg.get("content"), list):
                continue
            mid = str(msg.get("id", ""))
            blocks = [b for b in msg["content"] if isinstance(b, Mapping) and b.get("type")]
            sr = msg.get("stop_reason") if isinstance(msg.get("stop_reason"), str) else None
            if turns and turns[-1][0] == mid:
                turns[-1][1].extend(blocks)
                turns[-1] = (mid, turns[-1][1], sr or turns[-1][2])
            else:
                turns.append((mid, blocks, sr))
        replies = [Reply(content=tuple(blocks), stop_reason=sr) for _, blocks, sr in turns if blocks]
        if replies:
            out[_run_key(first_user)] = replies
    return out


def load_responder(mode: str) -> Responder:
    """``echo``, ``script:FILE`` or ``replay:FILE``."""
    kind, sep, arg = mode.partition(":")
    kind = kind.strip().lower()
    if kind == "echo" and not sep:
        return EchoResponder()
    if kind in ("script", "replay") and arg:
        return ScriptResponder.from_file(arg) if kind == "script" else ReplayResponder.from_file(arg)
    raise UserError(f"--responses {mode!r}: use 'echo', 'script:FILE' or 'replay:FILE'")


def iter_text(content: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    for blk in content:
        if blk.get("type") == "text":
            yield str(blk.get("text", ""))
