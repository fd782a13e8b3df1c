"""Message Batches (spec §4): create, retrieve, list, cancel, delete, results as JSONL.

A batch's requests are spread evenly over ``duration`` seconds from its creation and are
processed lazily, whenever the batch is looked at, in the app's clock (``virtual``) or in real
seconds (``wall``). Each is priced by the same cache engine at the batch tier. Requests of one
batch do not read each other's cache writes (observed behaviour, DESIGN.md): each one's writes
become readable only when the whole batch ends. A batch not done 24 h after creation ends
with its remaining requests ``expired``; cancelling ends the rest ``canceled``. Errored,
canceled and expired requests are not billed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tokenomy.errors import ApiRequestError

__all__ = ["Batch", "BatchStore", "rfc3339"]

EXPIRY_SECONDS = 24 * 3600.0
RESULTS_RETENTION_SECONDS = 29 * 24 * 3600.0

# run(params, workspace, at, ttft) -> Message dict, or raises ApiRequestError
Runner = Callable[[Mapping[str, Any], str, float, float], dict[str, Any]]


def rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Batch:
    id: str
    workspace: str
    created_at: float
    created_wall: float
    duration: float
    requests: list[tuple[str, Mapping[str, Any] | None]]
    results: list[bytes] = field(default_factory=list)
    done: int = 0  # requests resolved so far (results[: done])
    counts: dict[str, int] = field(default_factory=dict)
    status: Literal["in_progress", "canceling", "ended"] = "in_progress"
    cancel_initiated_at: float | None = None
    cancel_progress: float | None = None  # processing seconds elapsed when cancel came
    ended_at: float | None = None

    @property
    def expires_at(self) -> float:
        return self.created_at + EXPIRY_SECONDS

    def to_api(self, now: float) -> dict[str, Any]:
        ended = self.status == "ended"
        counts = {k: self.counts.get(k, 0) for k in ("succeeded", "errored", "canceled", "expired")}
        counts = {
            "processing": 0 if ended else len(self.requests),
            **(counts if ended else dict.fromkeys(counts, 0)),
        }
        archived = now >= self.created_at + RESULTS_RETENTION_SECONDS
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": counts,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "ended_at": rfc3339(self.ended_at),
            "cancel_initiated_at": rfc3339(self.cancel_initiated_at),
            "archived_at": rfc3339(self.created_at + RESULTS_RETENTION_SECONDS) if archived else None,
            "results_url": f"/v1/messages/batches/{self.id}/results" if ended and not archived else None,
        }


class BatchStore:
    """All batches of one emulator, by workspace."""

    def __init__(
        self,
        runner: Runner,
        *,
        clock: Callable[[], float],
        duration: float,
        time_mode: Literal["virtual", "wall"],
    ) -> None:
        self.runner = runner
        self.clock = clock
        self.duration = duration
        self.time_mode = time_mode
        self._batches: dict[str, Batch] = {}

    def create(self, batch_id: str, workspace: str, requests: list[tuple[str, Mapping[str, Any]]]) -> Batch:
        now = self.clock()
        batch = Batch(
            id=batch_id,
            workspace=workspace,
            created_at=now,
            created_wall=time.time(),
            duration=self.duration,
            requests=list(requests),
        )
        self._batches[batch_id] = batch
        return batch

    def get(self, batch_id: str, workspace: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None or batch.workspace != workspace:
            raise ApiRequestError(
                f"message_batch_id: no batch with id {batch_id!r}", status=404, error_type="not_found_error"
            )
        self.advance(batch)
        return batch

    def list(self, workspace: str) -> list[Batch]:
        """Newest first."""
        out = [b for b in self._batches.values() if b.workspace == workspace]
        for b in out:
            self.advance(b)
        out.reverse()
        return out

    def cancel(self, batch_id: str, workspace: str) -> Batch:
        batch = self.get(batch_id, workspace)
        if batch.status == "in_progress":
            batch.status = "canceling"
            batch.cancel_initiated_at = self.clock()
            batch.cancel_progress = self._progress(batch)
        return batch

    def delete(self, batch_id: str, workspace: str) -> None:
        batch = self.get(batch_id, workspace)
        if batch.status != "ended":
            raise ApiRequestError(
                f"Batch {batch_id} cannot be deleted while it is still {batch.status}; cancel it and wait for it to end."
            )
        del self._batches[batch_id]

    def results(self, batch_id: str, workspace: str) -> bytes:
        batch = self.get(batch_id, workspace)
        if batch.status != "ended":
            raise ApiRequestError(
                f"Batch {batch_id} has not finished processing (processing_status {batch.status!r}); "
                "poll it until it has ended"
            )
        if self.clock() >= batch.created_at + RESULTS_RETENTION_SECONDS:
            raise ApiRequestError(
                f"Results of batch {batch_id} have been archived", status=404, error_type="not_found_error"
            )
        return b"".join(batch.results)

    # -- progress ---------------------------------------------------------------------------

    def _progress(self, batch: Batch) -> float:
        """Seconds of processing elapsed since creation, in the batch's time mode."""
        if self.time_mode == "wall":
            return time.time() - batch.created_wall
        return self.clock() - batch.created_at

    def _finish_time(self, batch: Batch, i: int) -> float:
        n = len(batch.requests)
        return batch.duration * (i + 1) / n

    def advance(self, batch: Batch) -> None:
        if batch.status == "ended":
            return
        elapsed = self._progress(batch)
        limit = EXPIRY_SECONDS
        if batch.status == "canceling" and batch.cancel_progress is not None:
            limit = min(limit, batch.cancel_progress)
        n = len(batch.requests)
        while batch.done < n and self._finish_time(batch, batch.done) <= min(elapsed, limit):
            self._run_one(batch, batch.done)
            batch.done += 1
        if batch.done == n:
            self._end(batch, batch.created_at + min(batch.duration, elapsed))
        elif batch.status == "canceling" or elapsed >= EXPIRY_SECONDS:
            outcome = "canceled" if batch.status == "canceling" else "expired"
            for cid, _ in batch.requests[batch.done :]:
                batch.results.append(_line(cid, {"type": outcome}))
                batch.counts[outcome] = batch.counts.get(outcome, 0) + 1
            batch.done = n
            end = batch.cancel_initiated_at if outcome == "canceled" else batch.expires_at
            self._end(batch, end if end is not None else self.clock())

    def _end(self, batch: Batch, at: float) -> None:
        batch.status = "ended"
        batch.ended_at = at
        batch.requests = [(cid, None) for cid, _ in batch.requests]  # free the bodies

    def _run_one(self, batch: Batch, i: int) -> None:
        cid, params = batch.requests[i]
        n = len(batch.requests)
        start = batch.created_at + batch.duration * i / n
        end = batch.created_at + batch.duration
        try:
            assert params is not None
            message = self.runner(params, batch.workspace, start, max(end - start, 1e-6))
            result: dict[str, Any] = {"type": "succeeded", "message": message}
            kind = "succeeded"
        except ApiRequestError as e:
            result = {"type": "errored", "error": e.to_api(None)}
            kind = "errored"
        batch.results.append(_line(cid, result))
        batch.counts[kind] = batch.counts.get(kind, 0) + 1


def _line(custom_id: str, result: Mapping[str, Any]) -> bytes:
    return json.dumps({"custom_id": custom_id, "result": result}, separators=(",", ":")).encode() + b"\n"
