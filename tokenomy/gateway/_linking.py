"""Run linking: which recent request does this one continue?

A request belongs to an earlier request's run when its message list *extends* that request's
(same model, tools and system; the earlier messages are a prefix of the new ones). The running
prefix hash of ``tokenomy.blocks`` already covers tools, system, roles and every block before
it, so "messages 0..k equal" is one hash lookup per message boundary. An explicit
``x-tokenomy-run`` header wins.

When nothing matches that strictly, the messages alone are compared (any model, any system and
tools): a conversation whose system prompt carries a timestamp, whose tools were re-ordered or
which switched model is still one run, so the live doctor can name what changed instead of
seeing a new run every turn.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable

from tokenomy.model import Request

__all__ = ["RunLinker", "message_end_hashes", "messages_only_hashes"]


def message_end_hashes(request: Request) -> list[bytes]:
    """The running prefix hash at the end of each message, in order (messages without blocks
    are skipped: they add nothing the model sees)."""
    out: list[bytes] = []
    last_msg: object = None
    for b in request.blocks:
        if b.section != "messages":
            continue
        if b.path[1] == last_msg:
            out[-1] = b.prefix_hash
        else:
            out.append(b.prefix_hash)
            last_msg = b.path[1]
    return out


def messages_only_hashes(request: Request) -> list[bytes]:
    """Like ``message_end_hashes``, over the messages alone: system, tools and model left out."""
    out: list[bytes] = []
    h = hashlib.blake2b(digest_size=16)
    last_msg: object = None
    for b in request.blocks:
        if b.section != "messages":
            continue
        h.update(b.kind.encode())
        h.update(len(b.data).to_bytes(8, "little"))
        h.update(b.data)
        if b.path[1] == last_msg:
            out[-1] = h.digest()
        else:
            out.append(h.digest())
            last_msg = b.path[1]
    return out


class RunLinker:
    """Remembers the message-boundary hashes of recent requests, bounded in time and size."""

    def __init__(
        self, *, window_s: float = 3600.0, max_entries: int = 20_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str, bytes], tuple[str, float]] = OrderedDict()
        self._last: dict[str, tuple[str, str, bytes]] = {}  # run id -> its newest key
        self._last_loose: dict[str, tuple[str, str, bytes]] = {}  # the same, for messages-only keys

    @staticmethod
    def new_run_id() -> str:
        return "run_" + os.urandom(8).hex()

    def link(self, request: Request, *, scope: str = "", explicit: str | None = None) -> str:
        """The run this request belongs to, registering it so later requests can extend it."""
        now = self.clock()
        hashes = message_end_hashes(request)
        run_id = explicit
        if run_id is None:
            for h in reversed(hashes):
                hit = self._seen.get((scope, request.model, h))
                if hit is not None and now - hit[1] <= self.window_s:
                    run_id = hit[0]
                    break
        loose = messages_only_hashes(request) if hashes else []
        if run_id is None:
            for h in reversed(loose[:-1] or loose):  # an earlier request's messages, edited prefix or not
                hit = self._seen.get((scope, "", h))
                if hit is not None and now - hit[1] <= self.window_s:
                    run_id = hit[0]
                    break
        if run_id is None:
            run_id = self.new_run_id()
        if loose:
            self._remember((scope, "", loose[-1]), run_id, now, loose_key=True)
        if hashes:
            key = (scope, request.model, hashes[-1])
            # a run is extended from its newest request: older ones of the same run are dropped,
            # so memory follows the number of live runs, not of requests
            old = self._last.get(run_id)
            if old is not None and old != key and self._seen.get(old, ("",))[0] == run_id:
                del self._seen[old]
            self._last[run_id] = key
            self._seen[key] = (run_id, now)
            self._seen.move_to_end(key)
            while len(self._seen) > self.max_entries:
                gone_key, (gone, _) = self._seen.popitem(last=False)
                if self._last.get(gone) == gone_key:
                    del self._last[gone]
            if len(self._last) > 2 * self.max_entries:  # runs whose key another run took over
                self._last = {r: k for r, k in self._last.items() if self._seen.get(k, ("",))[0] == r}
        return run_id

    def _remember(self, key: tuple[str, str, bytes], run_id: str, now: float, *, loose_key: bool) -> None:
        """Register a messages-only key, dropping the run's previous one (memory follows runs)."""
        last = self._last_loose
        old = last.get(run_id)
        if old is not None and old != key and self._seen.get(old, ("",))[0] == run_id:
            del self._seen[old]
        last[run_id] = key
        self._seen[key] = (run_id, now)
        self._seen.move_to_end(key)
        if len(last) > 2 * self.max_entries:
            self._last_loose = {r: k for r, k in last.items() if self._seen.get(k, ("",))[0] == r}
