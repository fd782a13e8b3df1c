"""A tee over a Messages SSE stream: the bytes pass on untouched, usage is read on the side.

Only ``message_start``, ``message_delta`` and ``error`` events are decoded (spec §7.4); text
deltas are never parsed, so a chunk that holds none of them costs two ``in`` scans here.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SSETap"]

_WANTED = (b"message_start", b"message_delta", b"message_stop", b"error")
_MAX_PENDING = 4 * 1024 * 1024  # one event never legitimately needs more buffering than this


class SSETap:
    """Feed it every chunk; read ``usage``, ``message_id``, ``stopped`` and ``error`` after."""

    __slots__ = ("_pending", "_event", "usage", "message_id", "model", "stopped", "error", "events")

    def __init__(self) -> None:
        self._pending = b""
        self._event = b""
        self.usage: dict[str, Any] = {}
        self.message_id: str | None = None
        self.model: str | None = None
        self.stopped = False
        self.error: dict[str, Any] | None = None
        self.events = 0

    def feed(self, chunk: bytes) -> None:
        if not self._pending and b"message_" not in chunk and b"error" not in chunk:
            # the usual chunk (text deltas, pings): no line in it can be one we decode, since every
            # wanted event's name and payload type contain one of those two words
            cut = chunk.rfind(b"\n") + 1
            if cut:
                self._event = b""
            self._pending = chunk[cut:]
            self.events += chunk.count(b"event:")
            return
        data = self._pending + chunk if self._pending else chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > _MAX_PENDING:
            self._pending = b""
        for line in lines:
            if line.startswith(b"event:"):
                self._event = line[6:].strip()
                self.events += 1
            elif line.startswith(b"data:"):
                if self._event in _WANTED or (not self._event and b'"type":"message_' in line):
                    self._data(line[5:].strip())
            elif not line.strip():
                self._event = b""

    def _data(self, payload: bytes) -> None:
        try:
            obj = json.loads(payload)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind == "message_start":
            msg = obj.get("message")
            if isinstance(msg, dict):
                mid, model, usage = msg.get("id"), msg.get("model"), msg.get("usage")
                self.message_id = mid if isinstance(mid, str) else None
                self.model = model if isinstance(model, str) else None
                if isinstance(usage, dict):
                    self.usage.update(usage)
        elif kind == "message_delta":
            usage = obj.get("usage")
            if isinstance(usage, dict):
                # counts in message_delta are cumulative: they replace, never add (spec §7.4)
                self.usage.update({k: v for k, v in usage.items() if v is not None})
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            err = obj.get("error")
            self.error = err if isinstance(err, dict) else {"type": "api_error", "message": str(err)}
