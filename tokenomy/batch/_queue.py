"""``BatchQueue``: half-price Messages calls for code that can wait, one future per request.

An eval loop that would call ``client.messages.create(**params)`` calls ``queue.create(**params)``
instead and gets a ``concurrent.futures.Future`` (or ``await queue.acreate(**params)``). Requests
are gathered and sent as one batch when ``max_batch_size`` are waiting or the oldest has waited
``max_age_s``; one background thread polls the open batches with backoff and resolves each future
with the SDK's ``Message``, or with ``BatchRequestError`` for an errored, canceled or expired line.
Each request is checked when it is queued, with the same rules as ``tokenomy batch submit``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from tokenomy.batch._client import Upstream
from tokenomy.batch._input import (
    CUSTOM_ID_RE,
    MAX_BATCH_BYTES,
    MAX_BATCH_REQUESTS,
    check_params,
    request_bytes,
)
from tokenomy.errors import InputError, TokenomyError

__all__ = ["BatchQueue", "BatchRequestError"]

_BODY_OVERHEAD = len(b'{"requests":[]}')


class BatchRequestError(TokenomyError):
    """A queued request came back ``errored``, ``canceled`` or ``expired`` (``result_type``)."""

    def __init__(self, custom_id: str, result_type: str, error: Mapping[str, Any] | None = None) -> None:
        self.custom_id = custom_id
        self.result_type = result_type
        self.error = dict(error) if error else None
        detail = ""
        if self.error:
            inner = self.error.get("error", self.error)
            if isinstance(inner, Mapping):
                detail = f": {inner.get('type', '')}: {inner.get('message', '')}"
        super().__init__(f"batch request {custom_id} {result_type}{detail}")


@dataclass(slots=True)
class _Pending:
    custom_id: str
    params: dict[str, Any]
    size: int
    future: Future[Any]
    queued_at: float


class BatchQueue:
    """Queue Messages requests into batches; see the module docstring. Use as a context manager,
    or call ``close()``: it sends what is still queued and waits for every result."""

    def __init__(
        self,
        client: Any,
        *,
        max_batch_size: int = 1000,
        max_age_s: float = 30.0,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        poll_initial_s: float = 5.0,
        poll_max_s: float = 60.0,
        poll_factor: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= max_batch_size <= MAX_BATCH_REQUESTS:
            raise InputError(f"max_batch_size {max_batch_size}: use 1 to {MAX_BATCH_REQUESTS:,}")
        self.upstream = Upstream(client)
        self.client = client
        self.max_batch_size = max_batch_size
        self.max_age_s = max_age_s
        self.max_batch_bytes = max_batch_bytes
        self.poll_initial_s = poll_initial_s
        self.poll_max_s = poll_max_s
        self.poll_factor = poll_factor
        self.clock = clock
        self.batch_ids: list[str] = []
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._active: dict[str, dict[str, Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._used: set[str] = set()
        self._flush_now = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._next_poll = 0.0
        self._delay = poll_initial_s

    # -- the caller's side -----------------------------------------------------------------

    def submit(self, params: Mapping[str, Any], *, custom_id: str | None = None) -> Future[Any]:
        """Queue one Messages body; the future resolves to the SDK's ``Message``."""
        body = {k: v for k, v in params.items() if k != "tokenomy"}
        problems = check_params(body, "batch")
        with self._cond:
            if self._closed:
                raise InputError("BatchQueue is closed; create a new queue to send more requests")
            cid = custom_id if custom_id is not None else f"q{next(self._ids):08d}"
            if not isinstance(cid, str) or not CUSTOM_ID_RE.match(cid):
                problems.append(f"custom_id {cid!r} is invalid; use 1-64 letters, digits, '-' or '_'")
            elif cid in self._used:
                problems.append(f"custom_id {cid!r} was already used in this queue; ids must be unique")
            size = request_bytes(cid, body)
            if size + _BODY_OVERHEAD > self.max_batch_bytes:
                problems.append(
                    f"request is {size:,} bytes, over the batch limit of {self.max_batch_bytes:,}"
                )
            if problems:
                raise InputError("BatchQueue.submit: " + "; ".join(problems))
            self._used.add(cid)
            fut: Future[Any] = Future()
            self._pending.append(_Pending(cid, body, size, fut, self.clock()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="tokenomy-batch-queue")
                self._thread.start()
            self._cond.notify_all()
        return fut

    def create(self, **params: Any) -> Future[Any]:
        """``client.messages.create(**params)``, but queued: returns a future of the ``Message``."""
        return self.submit(params)

    async def acreate(self, **params: Any) -> Any:
        """Await the ``Message`` of one queued request from asyncio code."""
        return await asyncio.wrap_future(self.submit(params))

    def flush(self) -> None:
        """Send everything queued now, without waiting for size or age."""
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()

    def close(self, *, wait: bool = True) -> None:
        with self._cond:
            self._closed = True
            self._flush_now = True
            self._cond.notify_all()
            thread = self._thread
        if wait and thread is not None:
            thread.join()

    def __enter__(self) -> BatchQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(wait=True)

    # -- the worker thread -----------------------------------------------------------------

    def _due(self, now: float) -> tuple[list[_Pending], bool]:
        """Under the lock: the requests to send now, and whether a poll is due."""
        take: list[_Pending] = []
        p = self._pending
        if p and (
            len(p) >= self.max_batch_size
            or now - p[0].queued_at >= self.max_age_s
            or self._flush_now
            or self._closed
        ):
            size = _BODY_OVERHEAD
            for item in p:
                if len(take) >= self.max_batch_size or (take and size + item.size + 1 > self.max_batch_bytes):
                    break
                take.append(item)
                size += item.size + 1
            del p[: len(take)]
            if not p:
                self._flush_now = False
        return take, bool(self._active) and now >= self._next_poll

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = self.clock()
                    take, poll = self._due(now)
                    if take or poll:
                        break
                    if self._closed and not self._pending and not self._active:
                        return
                    waits = []
                    if self._pending:
                        waits.append(self._pending[0].queued_at + self.max_age_s - now)
                    if self._active:
                        waits.append(self._next_poll - now)
                    self._cond.wait(max(min(waits), 0.001) if waits else None)
            if take:
                self._send(take)
            if poll:
                self._poll()

    def _send(self, take: list[_Pending]) -> None:
        try:
            info = self.upstream.create_batch([{"custom_id": p.custom_id, "params": p.params} for p in take])
        except Exception as e:  # every future of the batch learns why
            for p in take:
                p.future.set_exception(e)
            return
        with self._cond:
            self.batch_ids.append(info.id)
            self._active[info.id] = {p.custom_id: p.future for p in take}
            self._next_poll = self.clock() + self.poll_initial_s
            self._delay = self.poll_initial_s

    def _poll(self) -> None:
        for batch_id in list(self._active):
            try:
                info = self.upstream.retrieve(batch_id)
                if not info.ended:
                    continue
                futures = self._active[batch_id]
                for line in self.client.messages.batches.results(batch_id):
                    fut = futures.pop(line.custom_id, None)
                    if fut is None:
                        continue
                    result = line.result
                    if result.type == "succeeded":
                        fut.set_result(result.message)
                    else:
                        err = result.error.to_dict() if result.type == "errored" else None
                        fut.set_exception(BatchRequestError(line.custom_id, result.type, err))
                for cid, fut in futures.items():
                    fut.set_exception(BatchRequestError(cid, "missing"))
            except Exception as e:
                for fut in self._active[batch_id].values():
                    if not fut.done():
                        fut.set_exception(e)
            with self._cond:
                self._active.pop(batch_id, None)
        with self._cond:
            self._next_poll = self.clock() + self._delay
            self._delay = min(self._delay * self.poll_factor, self.poll_max_s)
