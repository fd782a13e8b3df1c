"""Label the "needles" of a tool output: what an agent must not lose when the output is pruned.

Deliberately separate from the pruner (tokenomy/context/prune.py) and written without looking at
its rules: a needle is an error or warning line, a file path (with its line number when given),
or a test name. Each needle is a substring of the output; "kept" means it appears verbatim in the
pruned text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

ERROR_LINE = re.compile(
    r"(?i)(?:^|[\s:\[(])(error|errors|fatal|exception|traceback|failed|failure|panic|warning|"
    r"segmentation fault|undefined reference|no such file or directory|unable to locate)(?:$|[\s:\]),.!])"
)
# a path: at least one directory, a file name, an extension starting with a letter; a segment must
# hold a letter (so "136M/1.42G" from a progress bar is not a path)
PATH = re.compile(
    r"(?<![\w/])(?:\.{0,2}/)?(?:[A-Za-z0-9_.-]*[A-Za-z_][A-Za-z0-9_.-]*/)+[A-Za-z0-9_-][A-Za-z0-9_.-]*\.[A-Za-z][A-Za-z0-9]{0,5}(?::\d+)?"
)
TEST_NAME = re.compile(r"(?<!\w)(?:test_[A-Za-z0-9_]+|[A-Za-z0-9_]+_test|Test[A-Z][A-Za-z0-9_]*)(?!\w)")


def needles(text: str) -> set[str]:
    found: set[str] = set()
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if ERROR_LINE.search(stripped):
            found.add(stripped[:200])
        for m in PATH.finditer(stripped):
            found.add(m.group())
        for m in TEST_NAME.finditer(stripped):
            found.add(m.group())
    return found


def tool_outputs(workloads: Path) -> Iterator[tuple[str, str]]:
    """(origin, text) of every tool output in the workloads: OpenHands observations and Claude
    Code tool results."""
    oh = workloads / "openhands-multi-swe-bench" / "output.jsonl"
    if oh.exists():
        for line in oh.open(encoding="utf-8"):
            rec = json.loads(line)
            for ev in rec.get("history", []):
                if ev.get("observation") and isinstance(ev.get("content"), str):
                    yield f"openhands:{ev['observation']}", ev["content"]
    for f in sorted(workloads.glob("claude-code-*/**/*.jsonl")):
        for line in f.open(encoding="utf-8", errors="replace"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            msg = rec.get("message") if isinstance(rec, dict) else None
            content = msg.get("content") if isinstance(msg, dict) else None
            if rec.get("type") != "user" or not isinstance(content, list):
                continue
            for blk in content:
                if isinstance(blk, dict) and blk.get("type") == "tool_result":
                    c = blk.get("content")
                    if isinstance(c, list):
                        c = "\n".join(str(x.get("text", "")) for x in c if isinstance(x, dict))
                    if isinstance(c, str):
                        yield "claude-code:tool_result", c
