"""Helpers shared by the batch tests: input files, a flaky responder, a runner wired to an emulator."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenomy.emulator import EchoResponder, Reply, VirtualClock
from tokenomy.errors import ApiRequestError

MODEL = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"
# far above Sonnet 4.6's 1,024-token minimum
LONG_SYSTEM = "You are a careful grader. " + " ".join(
    f"Rule {i}: check item {i} twice and report what changed." for i in range(250)
)


def params(text: str, *, model: str = MODEL, **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": text}], **extra}


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any] | str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


class FlakyResponder:
    """Echo, except that a request whose last user text contains ``FLAKY`` fails the first time
    it is seen (an ``api_error`` line in a batch) and succeeds when it comes again."""

    def __init__(self) -> None:
        self.echo = EchoResponder()
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def reply(self, body: Mapping[str, Any]) -> Reply:
        text = json.dumps(body.get("messages", [])[-1])
        if "FLAKY" in text:
            with self.lock:
                first = text not in self.seen
                self.seen.add(text)
            if first:
                raise ApiRequestError("Internal server error (flaky)", status=500, error_type="api_error")
        return self.echo.reply(body)


class Emu:
    def __init__(self, url: str, app: Any, clock: VirtualClock | None) -> None:
        self.url = url
        self.app = app
        self.clock = clock

    def client(self, key: str = "sk-batch-test", **kw: Any) -> Any:
        import anthropic

        kw.setdefault("max_retries", 0)
        return anthropic.Anthropic(base_url=self.url, api_key=key, **kw)
